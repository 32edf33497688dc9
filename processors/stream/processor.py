"""The stream processor: three Faust agents, each a thin shell over one pure fold.

    chain inputs    ──▶ chains agent    (evolve_chain,    table chains)    ──▶ profile inputs
    profile cmds+in ──▶ profiles agent  (evolve_profile,  table profiles)  ──▶ chain/identity/
                                                                              profile inputs,
                                                                              events, snapshots,
                                                                              outcomes
    identity inputs ──▶ identities agent(evolve_identity, table identities)──▶ profile/chain inputs

Each agent takes a batch, folds it message by message, then (1) sends what the folds
emitted and waits for the broker's acknowledgement, (2) writes each changed key's state
once. Faust commits the consumed offsets after flushing the state writes. The timer
wakes profiles whose next change is due by sending a Tick through the profile's own
partition, so every fold stays in its agent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner
from mode import CrashingSupervisor
from prometheus_client import Counter, Gauge, Histogram
from pydantic import TypeAdapter, ValidationError

from processors.core.chain import evolve_chain
from processors.core.config import FoldConfig
from processors.core.identity import customer_of, evolve_identity
from processors.core.integration import envelope
from processors.core.ledger import Fold, route
from processors.core.profile import evolve_profile
from processors.core.view import profile_view
from processors.normalize import apple, google_play, stripe
from processors.normalize.money import Rates
from processors.stream import codecs
from processors.stream.outbox import Outbox, with_retries
from processors.stream.wakeups import WakeIndex
from runtime.catalog import Catalog
from runtime.kafka import exact_changelog_tails, faust_settings, fetch_max_wait_ms
from runtime.settings import Settings
from schemas.commands import Command
from schemas.enums import Store
from schemas.messages import (
    ChainMessage,
    IdentityMessage,
    ProfileMessage,
    Tick,
    instant_of,
)
from schemas.outputs import DeadLetter
from schemas.raw import RawNotification
from schemas.state import ChainState, IdentityState, ProfileState

log = logging.getLogger(__name__)

EVENTS_IN = Counter("subledger_events_in_total", "Records consumed", ["topic"])
EVENTS_OUT = Counter("subledger_events_out_total", "Records produced", ["topic"])
DEAD_LETTERS = Counter("subledger_dead_letters_total", "Records sent to dead letters", ["topic"])
FOLD_SECONDS = Histogram("subledger_fold_seconds", "Time to fold one batch", ["agent"])
BATCH_SIZE = Histogram(
    "subledger_batch_size", "Records per batch", ["agent"], buckets=(1, 10, 100, 500, 1000, 5000)
)
COMMIT_AGE = Gauge("subledger_commit_age_seconds", "Seconds since consumed offsets last advanced")
TIMERS_DUE = Gauge("subledger_timers_indexed", "Profiles with a pending wake-up on this worker")

REINDEX_SECONDS = 10.0
RAW_TOPICS = ("raw_app_store", "raw_play_store", "raw_stripe")
NORMALIZERS = {
    Store.APP_STORE: apple.normalize,
    Store.PLAY_STORE: google_play.normalize,
    Store.STRIPE: stripe.normalize,
}
UNNORMALIZED = Counter(
    "subledger_unnormalized_total", "Raw notifications kept for a normalizer to come", ["store"]
)

_RAW = TypeAdapter(RawNotification)
_COMMANDS = TypeAdapter(Command)
_PROFILE_MESSAGES = TypeAdapter(ProfileMessage)
_CHAIN_MESSAGES = TypeAdapter(ChainMessage)
_IDENTITY_MESSAGES = TypeAdapter(IdentityMessage)


def _bytes(value: object) -> bytes:
    return str(value).encode()


class Processor:
    def __init__(self, settings: Settings, catalog: Catalog, bootstrap: str) -> None:
        codecs.register()
        self.settings = settings
        self.catalog = catalog
        self.config: FoldConfig = settings.fold_config()
        self.rates = Rates.load(settings.rates_file)
        self.partitions = catalog["profile_inputs"].partitions
        self.app = faust.App(
            settings.app_id,
            broker=f"kafka://{bootstrap}",
            store="memory://",
            topic_partitions=self.partitions,
            # Topics come from topics.yaml (`subledger topics apply`), never from Faust.
            topic_allow_declare=False,
            topic_disable_leader=True,
            web_enabled=False,
            **faust_settings(settings.broker_flavor),
        )
        self.topics = {tid: self._topic(tid) for tid in catalog.topics}
        self.chains = self._table("chains", "chain_state", "subledger-chain-state")
        self.profiles = self._table("profiles", "profile_state", "subledger-profile-state")
        self.identities = self._table("identities", "identity_state", "subledger-identity-state")
        self.wakeups = WakeIndex()
        self._indexed_at = float("-inf")
        self._partitioner = DefaultPartitioner()
        self._exact_tails = exact_changelog_tails(settings.broker_flavor)
        self._last_commit = time.monotonic()
        self._committed: dict[Any, int] = {}
        self._fetch_wait_ms = fetch_max_wait_ms(settings.broker_flavor)
        profile_channel = self.app.topic(
            catalog["profile_commands"].name,
            catalog["profile_inputs"].name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        raw_channel = self.app.topic(
            *(catalog[t].name for t in RAW_TOPICS),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self._agent(raw_channel, "normalize", self._normalize_batch)
        self._agent(self.topics["chain_inputs"], "chains", self._chain_batch)
        self._agent(profile_channel, "profiles", self._profile_batch)
        self._agent(self.topics["identity_inputs"], "identities", self._identity_batch)
        self.app.timer(settings.timer_interval_seconds)(self._on_timer)
        self.app.on_rebalance_complete.connect(self._on_rebalance)

    # --- wiring --------------------------------------------------------------------------

    def _topic(self, topic_id: str) -> Any:
        spec = self.catalog[topic_id]
        return self.app.topic(
            spec.name,
            partitions=spec.partitions,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

    def _table(self, name: str, topic_id: str, codec: str) -> Any:
        spec = self.catalog[topic_id]
        changelog = self.app.topic(
            spec.name,
            partitions=spec.partitions,
            key_type=bytes,
            key_serializer="raw",
            value_serializer=codec,
        )
        # use_partitioner: a key's state goes to the changelog partition its key hashes to,
        # the same partition its input topics put it in, whichever batch wrote it.
        table: Any = self.app.Table(
            name,
            default=None,
            key_type=bytes,
            partitions=spec.partitions,
            changelog_topic=changelog,
            use_partitioner=True,
        )
        table.value_serializer = codec
        return table

    def _agent(self, channel: Any, name: str, handle: Callable[[list[Any]], Any]) -> None:
        size, within = self.settings.batch_size, self.settings.batch_within_seconds

        async def agent(stream: Any) -> None:
            async for events in stream.take_events(size, within=within):
                started = time.perf_counter()
                BATCH_SIZE.labels(name).observe(len(events))
                await handle(events)
                FOLD_SECONDS.labels(name).observe(time.perf_counter() - started)

        # One instance per worker (Faust #606), and an agent that fails takes the worker
        # down with it instead of dying silently (Faust #175).
        self.app.agent(channel, name=name, concurrency=1, supervisor_strategy=CrashingSupervisor)(
            agent
        )

    # --- decoding and dead letters -------------------------------------------------------

    def _decode(self, adapter: TypeAdapter[Any], event: Any, outbox: Outbox) -> Any | None:
        message = event.message
        EVENTS_IN.labels(message.topic).inc()
        try:
            return adapter.validate_json(event.value)
        except ValidationError as error:
            self._dead_letter(event, f"invalid {adapter}: {error.errors()[:3]}", outbox)
            return None

    def _dead_letter(self, event: Any, reason: str, outbox: Outbox) -> None:
        message = event.message
        DEAD_LETTERS.labels(message.topic).inc()
        log.warning(
            "dead letter %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason
        )
        letter = DeadLetter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=event.key.decode(errors="replace") if event.key else None,
            value=bytes(event.value).decode(errors="replace"),
            reason=reason,
            failed_at=datetime.now(UTC),
        )
        self._send(outbox, "dead_letters", f"{message.topic}:{message.offset}", letter)

    def _send(self, outbox: Outbox, topic_id: str, key: object, value: Any) -> None:
        EVENTS_OUT.labels(topic_id).inc()
        outbox.add(self.catalog[topic_id].name, _bytes(key), value.model_dump_json().encode())

    def _keyed(self, event: Any, key: object, outbox: Outbox) -> bool:
        """A record must be keyed by what it is about: its partition is its owner's.

        Applied from another partition, it could race the worker that owns the key.
        """
        if event.key == _bytes(key):
            return True
        self._dead_letter(event, f"keyed {event.key!r}, but it is about {key}", outbox)
        return False

    def _fold(self, event: Any, outbox: Outbox, fold: Callable[[], None]) -> None:
        """Run one fold step; a programming error dead-letters the input instead of the stream."""
        try:
            fold()
        except Exception as error:  # the folds raise only for programming errors
            log.exception("fold failed on %s@%d", event.message.topic, event.message.offset)
            self._dead_letter(event, f"fold failed: {error!r}", outbox)

    # --- the agents ----------------------------------------------------------------------

    async def _normalize_batch(self, events: list[Any]) -> None:
        outbox = Outbox()
        for event in events:
            raw = self._decode(_RAW, event, outbox)
            if raw is None:
                continue
            normalizer = NORMALIZERS.get(raw.store)
            if normalizer is None:
                # Kept on its raw topic: a later version normalizes it on reprocess.
                UNNORMALIZED.labels(raw.store.value).inc()
                continue
            try:
                canonical = normalizer(raw, self.rates)
            except (ValueError, KeyError, TypeError) as error:
                self._dead_letter(event, f"cannot normalize: {error!r}", outbox)
                continue
            for store_event in canonical:
                if route(store_event) is Fold.IDENTITY:
                    self._send(outbox, "identity_inputs", customer_of(store_event), store_event)
                else:
                    self._send(outbox, "chain_inputs", store_event.chain_key, store_event)
        await outbox.deliver(self.app.producer)

    async def _chain_batch(self, events: list[Any]) -> None:
        outbox, staged = Outbox(), dict[bytes, ChainState]()
        for event in events:
            message = self._decode(_CHAIN_MESSAGES, event, outbox)
            if message is None:
                continue
            if route(message) is Fold.IDENTITY:
                self._send(outbox, "identity_inputs", customer_of(message), message)
                continue
            if not self._keyed(event, message.chain_key, outbox):
                continue

            def step(message: Any = message, key: bytes = event.key) -> None:
                state = staged[key] if key in staged else self.chains.get(key)
                new, changed = evolve_chain(state, message)
                if new is not None and new is not state:
                    staged[key] = new
                for change in changed:
                    self._send(outbox, "profile_inputs", change.profile_id, change)

            self._fold(event, outbox, step)
        await self._finish(outbox, self.chains, staged)

    async def _profile_batch(self, events: list[Any]) -> None:
        outbox, staged = Outbox(), dict[bytes, ProfileState]()
        commands_topic = self.catalog["profile_commands"].name
        for event in events:
            external = event.message.topic == commands_topic
            message = self._decode(_COMMANDS if external else _PROFILE_MESSAGES, event, outbox)
            if message is None:
                continue
            if external and route(message) is Fold.IDENTITY:
                self._send(outbox, "identity_inputs", customer_of(message), message)
                continue
            if not self._keyed(event, message.profile_id, outbox):
                continue

            def step(message: Any = message, key: bytes = event.key) -> None:
                state = staged[key] if key in staged else self.profiles.get(key)
                now = instant_of(message)
                outcome = evolve_profile(state, message, now, self.config)
                staged[key] = outcome.state
                for to_chain in outcome.to_chains:
                    self._send(outbox, "chain_inputs", to_chain.chain_key, to_chain)
                for to_profile in outcome.to_profiles:
                    self._send(outbox, "profile_inputs", to_profile.profile_id, to_profile)
                for release in outcome.to_identity:
                    self._send(outbox, "identity_inputs", release.customer_user_id, release)
                if outcome.events:
                    # The profile as each event left it: the same whatever the batching.
                    view = profile_view(outcome.state, outcome.state.as_of or now, self.config)
                    for emitted in outcome.events:
                        self._send(
                            outbox, "profile_events", emitted.profile_id, envelope(emitted, view)
                        )
                for rejection in outcome.rejections:
                    self._send(outbox, "profile_outcomes", rejection.profile_id, rejection)
                if outcome.applied is not None:
                    self._send(outbox, "profile_outcomes", message.profile_id, outcome.applied)

            self._fold(event, outbox, step)
        for state in staged.values():
            if state.exists and state.as_of is not None:
                view = profile_view(state, state.as_of, self.config)
                self._send(outbox, "profile_snapshots", state.profile_id, view)
        await self._finish(outbox, self.profiles, staged)
        for key, state in staged.items():
            self.wakeups.set(key, state.next_wakeup_at)

    async def _identity_batch(self, events: list[Any]) -> None:
        outbox, staged = Outbox(), dict[bytes, IdentityState]()
        for event in events:
            message = self._decode(_IDENTITY_MESSAGES, event, outbox)
            if message is None or not self._keyed(event, customer_of(message), outbox):
                continue

            def step(message: Any = message, key: bytes = event.key) -> None:
                state = staged.get(key) or self.identities.get(key)
                state = state or IdentityState(customer_user_id=key.decode())
                outcome = evolve_identity(state, message)
                staged[key] = outcome.state
                for command in outcome.to_profiles:
                    self._send(outbox, "profile_inputs", command.profile_id, command)
                for store_event in outcome.to_chains:
                    self._send(outbox, "chain_inputs", store_event.chain_key, store_event)
                for resolved in outcome.resolved:
                    self._send(outbox, "profile_outcomes", resolved.profile_id, resolved)

            self._fold(event, outbox, step)
        await self._finish(outbox, self.identities, staged)

    # --- writing state -------------------------------------------------------------------

    async def _finish(self, outbox: Outbox, table: Any, staged: dict[bytes, Any]) -> None:
        await outbox.deliver(self.app.producer)
        if not staged:
            return
        if not self._exact_tails:
            for key, state in staged.items():
                table[key] = state
            return
        # Each changelog partition's newest batch holds one record, so that the broker's
        # LATEST offset (base of the newest batch + 1 on Tansu) is exact for recovery.
        last: dict[int, bytes] = {}
        for key in staged:
            last[self._partition_of(key)] = key
        tails = set(last.values())
        for key, state in staged.items():
            if key not in tails:
                table[key] = state
        await with_retries(self.app.producer.flush, "flushing state")
        # One record per partition, flushed together: each is its partition's newest batch.
        for key in tails:
            table[key] = staged[key]
        await with_retries(self.app.producer.flush, "flushing state")

    def _partition_of(self, key: bytes) -> int:
        every = list(range(self.partitions))
        return int(self._partitioner(key, every, every))

    # --- timers and watchdog -------------------------------------------------------------

    def _on_rebalance(self, *args: Any, **kwargs: Any) -> None:
        self._indexed_at = float("-inf")

    def _index_wakeups(self) -> None:
        """Index the wake-ups of the profiles this worker holds. Cheap: it reads one field,
        so it runs after every rebalance (once recovery has filled the table) and now and
        then besides, which also covers a rebalance whose recovery ended late."""
        if self.app.in_recovery or time.monotonic() - self._indexed_at < REINDEX_SECONDS:
            return
        self.wakeups.clear()
        for key, state in self.profiles.items():
            if isinstance(state, ProfileState):
                self.wakeups.set(key, state.next_wakeup_at)
        self._indexed_at = time.monotonic()

    def _tune_fetches(self) -> None:
        """Faust fixes its consumer's fetch wait at 1.5 s; the broker flavor decides it here.
        The fetcher reads the value for each request, so setting it once it exists is enough."""
        thread = getattr(self.app.consumer, "_thread", None)
        fetcher = getattr(getattr(thread, "_consumer", None), "_fetcher", None)
        if fetcher is not None and fetcher._fetch_max_wait_ms != self._fetch_wait_ms:
            fetcher._fetch_max_wait_ms = self._fetch_wait_ms

    async def _on_timer(self) -> None:
        self._tune_fetches()
        self._index_wakeups()
        now = datetime.now(UTC)
        TIMERS_DUE.set(len(self.wakeups))
        for key, at in self.wakeups.pop_due(now):
            state = self.profiles.get(key)
            if state is None:
                continue
            tick = Tick(profile_id=state.profile_id, at=at)
            await self.topics["profile_inputs"].send(key=key, value=tick.model_dump_json().encode())
        self._watch_commits()

    def _watch_commits(self) -> None:
        committed = dict(getattr(self.app.consumer, "_committed_offset", {}) or {})
        if committed != self._committed:
            self._committed = committed
            self._last_commit = time.monotonic()
        COMMIT_AGE.set(time.monotonic() - self._last_commit)
