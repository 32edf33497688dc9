"""The stream processor: four Faust agents, each a thin shell over one pure function.

    raw store topics ──▶ normalize   (normalizers)                      ──▶ chain/identity inputs
    chain inputs     ──▶ chains      (evolve_chain,    table chains)    ──▶ profile inputs
    profile cmds+in  ──▶ profiles    (evolve_profile,  table profiles)  ──▶ chain/identity/
                                                                            profile inputs,
                                                                            events, snapshots,
                                                                            outcomes
    identity inputs  ──▶ identities  (evolve_identity, table identities)──▶ profile/chain inputs

Each agent takes a batch, folds it message by message keeping changed states aside, then
(1) sends what the folds emitted and waits for the broker's acknowledgement, (2) writes
each changed key's state once, to its table and its changelog. Faust acknowledges the
batch's records after that, and commits their offsets later. Messages between the
folds travel in packs (`packs.py`). A timer wakes profiles whose next change is due by
sending a Tick through the profile's own partition, so every fold stays in its agent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import msgspec
from aiokafka import AIOKafkaProducer, TopicPartition
from mode import CrashingSupervisor
from prometheus_client import Counter, Gauge, Histogram
from pydantic import TypeAdapter, ValidationError

from processors.core.chain import evolve_chain
from processors.core.config import FoldConfig
from processors.core.identity import customer_of, evolve_identity
from processors.core.integration import published
from processors.core.ledger import Fold, route
from processors.core.profile import evolve_profile
from processors.core.view import profile_view
from processors.normalize import apple, google_play, stripe
from processors.normalize.money import Rates
from processors.stream import codecs, commits, rocks, store
from processors.stream.commits import GaplessConsumer
from processors.stream.packs import PackError, is_pack, unpack
from processors.stream.sender import Partitioner, Sender
from processors.stream.store import Tables, Written
from runtime.catalog import Catalog
from runtime.health import CONSUMER_LAG, Health, lag_reason
from runtime.kafka import (
    end_offsets,
    exact_changelog_tails,
    faust_settings,
    silence_reason,
    stream_producer_settings,
    tune_faust_fetches,
)
from runtime.settings import Settings
from schemas.base import to_json
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
from schemas.state import IdentityState

log = logging.getLogger(__name__)

EVENTS_IN = Counter("subledger_events_in_total", "Messages consumed", ["topic"])
EVENTS_OUT = Counter("subledger_events_out_total", "Messages produced", ["topic"])
DEAD_LETTERS = Counter("subledger_dead_letters_total", "Records sent to dead letters", ["topic"])
FOLD_SECONDS = Histogram("subledger_fold_seconds", "Time to fold one batch", ["agent"])
BATCH_SIZE = Histogram(
    "subledger_batch_size",
    "Messages per batch",
    ["agent"],
    buckets=(1, 10, 100, 500, 1000, 5000, 20000),
)
COMMIT_AGE = Gauge("subledger_commit_age_seconds", "Seconds since consumed offsets last advanced")
# How long after sending due wake-ups the worker waits to call itself caught up.
WAKE_SETTLE_SECONDS = 2.0
TIMERS_DUE = Gauge("subledger_timers_indexed", "Profiles with a pending wake-up on this worker")
REREADS = Counter(
    "subledger_unfolded_rereads_total",
    "Partitions read again from a record that was read but not folded",
    ["topic"],
)
UNNORMALIZED = Counter(
    "subledger_unnormalized_total", "Raw notifications kept for a normalizer to come", ["store"]
)

REINDEX_SECONDS = 10.0
# A partition read again from a record is not sent back there sooner than this.
REREAD_SECONDS = 10.0
# The exit status of a worker whose fetcher crashed (EX_SOFTWARE).
EXIT_STALLED = 70
# A batch of packs may hold many thousands of messages: its work is written every so many,
# which bounds what is held in memory and gives the event loop a turn (the consumer's
# keepalive, timers and commits run meanwhile).
ROUND = 2000
RAW_TOPICS = ("raw_app_store", "raw_play_store", "raw_stripe")
INTERNAL_TOPICS = ("chain_inputs", "profile_inputs", "identity_inputs")
STATE_TOPICS = ("chain_state", "profile_state", "identity_state")
NORMALIZERS = {
    Store.APP_STORE: apple.normalize,
    Store.PLAY_STORE: google_play.normalize,
    Store.STRIPE: stripe.normalize,
}

_RAW = TypeAdapter(RawNotification)


class _Messages:
    """Decodes one kind of message: a record's JSON, or a pack item's."""

    def __init__(self, kind: Any) -> None:
        self._decoder = msgspec.json.Decoder(kind)

    def decode(self, data: bytes) -> Any:
        return self._decoder.decode(data)


class _Raw:
    def decode(self, data: bytes) -> Any:
        return _RAW.validate_json(data)


_COMMANDS = _Messages(Command)
_PROFILE_MESSAGES = _Messages(ProfileMessage)
_CHAIN_MESSAGES = _Messages(ChainMessage)
_IDENTITY_MESSAGES = _Messages(IdentityMessage)
_RAWS = _Raw()
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, ValidationError)
_PACK = msgspec.json.Decoder(list[msgspec.Raw])


def _bytes(value: object) -> bytes:
    return str(value).encode()


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return str(error.errors()[:3])
    return str(error)


AGENT_INPUTS = ("chain_inputs", "profile_commands", "profile_inputs", "identity_inputs")


class Processor:
    def __init__(self, settings: Settings, catalog: Catalog, bootstrap: str) -> None:
        store.register()
        rocks.register()
        self.settings = settings
        self.catalog = catalog
        self.config: FoldConfig = settings.fold_config()
        self.rates = Rates.load(settings.rates_file)
        self.partitions = catalog["profile_inputs"].partitions
        self.app = faust.App(
            settings.processor_app_id,
            broker=f"kafka://{bootstrap}",
            topic_partitions=self.partitions,
            # Topics come from topics.yaml (`subledger topics apply`), never from Faust.
            topic_allow_declare=False,
            topic_disable_leader=True,
            web_enabled=False,
            **self._store_settings(settings),
            **faust_settings(settings.broker_flavor),
        )
        # Commits nothing past a record that was read but not folded (commits.py).
        commits.install(self.app)
        self.names = {tid: catalog[tid].name for tid in catalog.topics}
        self.chains = self._table("chains", "chain_state")
        self.profiles = self._table("profiles", "profile_state")
        self.identities = self._table("identities", "identity_state")
        # Outputs and state go through a producer of our own, batch by batch (sender.py);
        # it starts with the first batch, inside the worker's event loop.
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._bootstrap = bootstrap
        # Bounded: a key hashed again costs microseconds, a key kept costs ~150 bytes.
        self._partitioner = Partitioner(limit=1 << 17)
        self._topic_partitions = {spec.name: spec.partitions for spec in catalog.topics.values()}
        self._packed = frozenset(self.names[t] for t in INTERNAL_TOPICS)
        self._exact_tails = (
            frozenset(self.names[t] for t in STATE_TOPICS)
            if exact_changelog_tails(settings.broker_flavor)
            else frozenset()
        )
        self.health = Health("worker")
        # What the agents read: the topics whose lag says whether this worker is ready.
        self._sources = frozenset(self.names[t] for t in (*RAW_TOPICS, *AGENT_INPUTS))
        self._indexed_at = float("-inf")
        self._woken_at = float("-inf")
        self._reread_pending = False
        # Per partition, the record it was last read again from, and when.
        self._reread_at: dict[Any, tuple[int, float]] = {}
        self._last_commit = time.monotonic()
        self._committed: dict[Any, int] = {}
        self._in = {name: EVENTS_IN.labels(name) for name in self.names.values()}
        self._out = {name: EVENTS_OUT.labels(name) for name in self.names.values()}
        profile_channel = self.app.topic(
            self.names["profile_commands"], self.names["profile_inputs"], **_RAW_BYTES
        )
        raw_channel = self.app.topic(*(self.names[t] for t in RAW_TOPICS), **_RAW_BYTES)
        self._agent(raw_channel, "normalize", self._normalize_batch)
        self._agent(
            self.app.topic(self.names["chain_inputs"], **_RAW_BYTES), "chains", self._chain_batch
        )
        self._agent(profile_channel, "profiles", self._profile_batch)
        self._agent(
            self.app.topic(self.names["identity_inputs"], **_RAW_BYTES),
            "identities",
            self._identity_batch,
        )
        self.app.timer(settings.timer_interval_seconds)(self._on_timer)
        self.app.on_rebalance_complete.connect(self._on_rebalance)
        self.app.on_before_shutdown.connect(self._on_shutdown)

    # --- wiring --------------------------------------------------------------------------

    async def discard_stale_tables(self) -> list[Path]:
        """Table databases that hold more of a changelog than the broker does were written
        against another log (a broker that lost its data, a topic made again): they are
        deleted before Faust opens them, and rebuilt from the changelog as it is."""
        directory = self.settings.table_dir
        if not self.settings.tables_on_disk or not directory.is_dir():
            return []
        held = rocks.persisted_offsets(directory)
        names = {
            table.name: table.changelog_topic.get_topic_name()
            for table in (self.chains, self.profiles, self.identities)
        }
        where: dict[Path, TopicPartition] = {}
        for path in held:
            table, _, partition = path.stem.rpartition("-")
            if table in names and partition.isdigit():
                where[path] = TopicPartition(names[table], int(partition))
        if not where:
            return []
        ends = await end_offsets(self._bootstrap, list(where.values()), self.settings.broker_flavor)
        stale = [
            path
            for path, offset in held.items()
            if path in where and offset is not None and offset >= ends.get(where[path], 0)
        ]
        for path in stale:
            log.warning(
                "%s holds %s[%d] to offset %d, which the broker does not have: rebuilding it",
                path,
                where[path].topic,
                where[path].partition,
                held[path],
            )
            rocks.discard(path)
        return stale

    @staticmethod
    def _store_settings(settings: Settings) -> dict[str, Any]:
        if not settings.tables_on_disk:
            store.configure(settings.cached_states)
            return {"store": f"{store.SCHEME}://"}
        # A third of the budget is for memtables, the rest for the block cache.
        budget = settings.rocksdb_memory_mb << 20
        rocks.configure(budget, budget // 3, settings.cached_states)
        settings.table_dir.mkdir(parents=True, exist_ok=True)
        return {"store": f"{rocks.SCHEME}://", "tabledir": settings.table_dir}

    def _table(self, name: str, topic_id: str) -> Any:
        spec = self.catalog[topic_id]
        # Records are bytes on the changelog: the store decodes them (store.py, codecs.py).
        # acks=False, as Faust declares its own changelogs: no stream reads a changelog
        # outside recovery, and a topic with acks on is watched as one that a stream
        # should be processing (Faust logs "Stream has not started processing" for each
        # of its partitions, every few seconds, from five minutes after start).
        changelog = self.app.topic(
            spec.name,
            partitions=spec.partitions,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            acks=False,
        )
        # use_partitioner: a key's state lives in the changelog partition its key hashes
        # to, the partition its input topics put it in (the sender hashes the same way).
        table: Any = self.app.Table(
            name,
            default=None,
            key_type=bytes,
            partitions=spec.partitions,
            changelog_topic=changelog,
            use_partitioner=True,
        )
        return table

    def _agent(
        self, channel: Any, name: str, handle: Callable[[list[Any]], Awaitable[int]]
    ) -> None:
        size, within = self.settings.batch_size, self.settings.batch_within_seconds

        async def agent(stream: Any) -> None:
            async for events in stream.take_events(size, within=within):
                started = time.perf_counter()
                count = await handle(events)
                BATCH_SIZE.labels(name).observe(count)
                FOLD_SECONDS.labels(name).observe(time.perf_counter() - started)

        # One instance per worker (Faust #606), and an agent that fails takes the worker
        # down with it instead of dying silently (Faust #175).
        self.app.agent(channel, name=name, concurrency=1, supervisor_strategy=CrashingSupervisor)(
            agent
        )

    async def _sender(self) -> Sender:
        if self._producer is None:
            async with self._producer_lock:
                if self._producer is None:
                    producer = AIOKafkaProducer(
                        bootstrap_servers=self._bootstrap,
                        **stream_producer_settings(self.settings.broker_flavor),
                    )
                    await producer.start()
                    self._producer = producer
        return Sender(
            self._producer,
            self._topic_partitions,
            self._partitioner,
            packed=self._packed,
            exact_tails=self._exact_tails,
            patience=self.settings.patience_seconds,
            waiting=self.health.set,
        )

    async def _on_shutdown(self, *args: Any, **kwargs: Any) -> None:
        if self._producer is not None:
            await self._producer.stop()

    # --- decoding, routing checks and dead letters ---------------------------------------

    async def _messages(
        self,
        events: list[Any],
        decoder: Callable[[str], Any],
        work: Work,
    ) -> AsyncIterator[tuple[Any, Any]]:
        """Each message of each record (one, or a pack), decoded with the decoder for its
        topic; bad ones dead-lettered. Every ROUND messages the work so far is written."""
        count = 0
        for event in events:
            value = event.value
            topic = event.message.topic
            count += 1
            if count % ROUND == 0:
                await work.flush()
            if not is_pack(value):
                self._in[topic].inc()
                try:
                    message = decoder(topic).decode(value)
                except _DECODE_ERRORS as error:
                    self._dead_letter(event, f"invalid: {_reason(error)}", work.sender)
                    continue
                yield event, message
                continue
            try:
                items = unpack(value)
            except PackError as error:
                self._dead_letter(event, str(error), work.sender)
                continue
            self._in[topic].inc(len(items))
            for index, item in enumerate(items):
                count += 1
                if count % ROUND == 0:
                    await work.flush()
                try:
                    message = decoder(topic).decode(item)
                except _DECODE_ERRORS as error:
                    reason = f"message {index} of the pack is invalid: {_reason(error)}"
                    self._dead_letter(event, reason, work.sender, item)
                    continue
                yield event, message

    def _keyed(self, event: Any, message: Any, key: object, sender: Sender) -> bool:
        """A message must reach the partition of what it is about: applied from another
        partition, it could race the worker that owns the key."""
        raw = _bytes(key)
        record = event.message
        if is_pack(event.value):
            owner = self._partitioner(raw, self._topic_partitions[record.topic])
            if owner == record.partition:
                return True
            reason = f"packed for partition {record.partition}, but {key} belongs to {owner}"
            self._dead_letter(event, reason, sender, to_json(message))
            return False
        if event.key == raw:
            return True
        self._dead_letter(event, f"keyed {event.key!r}, but it is about {key}", sender)
        return False

    def _dead_letter(
        self, event: Any, reason: str, sender: Sender, item: bytes | None = None
    ) -> None:
        message = event.message
        DEAD_LETTERS.labels(message.topic).inc()
        log.warning(
            "dead letter %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason
        )
        value = bytes(event.value) if item is None else item
        letter = DeadLetter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=event.key.decode(errors="replace") if event.key else None,
            value=value.decode(errors="replace"),
            reason=reason,
            failed_at=datetime.now(UTC),
        )
        self._send(sender, "dead_letters", f"{message.topic}:{message.offset}", letter)

    def _send(self, sender: Sender, topic_id: str, key: object, value: object) -> None:
        name = self.names[topic_id]
        self._out[name].inc()
        sender.send(name, _bytes(key), to_json(value))

    def _fold(self, event: Any, sender: Sender, fold: Callable[[], None]) -> None:
        """Run one fold step; a programming error dead-letters the input, not the stream."""
        try:
            fold()
        except Exception as error:  # the folds raise only for programming errors
            log.exception("fold failed on %s@%d", event.message.topic, event.message.offset)
            self._dead_letter(event, f"fold failed: {error!r}", sender)

    # --- the agents ----------------------------------------------------------------------

    async def _normalize_batch(self, events: list[Any]) -> int:
        work = await self._work(None, None)
        count = 0
        async for event, raw in self._messages(events, lambda _: _RAWS, work):
            count += 1
            normalizer = NORMALIZERS.get(raw.store)
            if normalizer is None:
                # Kept on its raw topic: a later version normalizes it on reprocess.
                UNNORMALIZED.labels(raw.store.value).inc()
                continue
            try:
                canonical = normalizer(raw, self.rates)
            except (ValueError, KeyError, TypeError) as error:
                self._dead_letter(event, f"cannot normalize: {error!r}", work.sender)
                continue
            for store_event in canonical:
                if route(store_event) is Fold.IDENTITY:
                    work.send("identity_inputs", customer_of(store_event), store_event)
                else:
                    work.send("chain_inputs", store_event.chain_key, store_event)
        await work.flush()
        return count

    async def _chain_batch(self, events: list[Any]) -> int:
        work = await self._work(self.chains, "chain_state")
        chains: Tables = self.chains.data
        staged, beside = work.staged, work.beside
        count = 0
        async for event, message in self._messages(events, lambda _: _CHAIN_MESSAGES, work):
            count += 1
            if route(message) is Fold.IDENTITY:
                work.send("identity_inputs", customer_of(message), message)
                continue
            if not self._keyed(event, message, message.chain_key, work.sender):
                continue

            def step(message: Any = message) -> None:
                key = message.chain_key.encode()
                state = staged[key] if key in staged else chains.load(key)
                history = chains.history(key, beside.get(key))
                outcome = evolve_chain(state, message, history, self.config)
                if outcome.state is not None and outcome.state is not state:
                    staged[key] = outcome.state
                if outcome.transactions or outcome.observations:
                    records = beside.setdefault(key, {})
                    for fact in outcome.transactions:
                        records[codecs.TRANSACTION + fact.info.transaction_id.encode()] = fact
                    for observation in outcome.observations:
                        records[codecs.OBSERVATION + observation.event_id.encode()] = observation
                for change in outcome.to_profiles:
                    work.send("profile_inputs", change.profile_id, change)

            self._fold(event, work.sender, step)
        await work.flush()
        return count

    async def _profile_batch(self, events: list[Any]) -> int:
        work = await self._work(self.profiles, "profile_state", self._snapshots)
        profiles: Tables = self.profiles.data
        staged, beside = work.staged, work.beside
        commands_topic = self.names["profile_commands"]

        def decoder(topic: str) -> Any:
            return _COMMANDS if topic == commands_topic else _PROFILE_MESSAGES

        count = 0
        async for event, message in self._messages(events, decoder, work):
            count += 1
            if event.message.topic == commands_topic and route(message) is Fold.IDENTITY:
                work.send("identity_inputs", customer_of(message), message)
                continue
            if not self._keyed(event, message, message.profile_id, work.sender):
                continue

            def step(message: Any = message) -> None:
                key = _bytes(message.profile_id)
                state = staged[key] if key in staged else profiles.load(key)
                now = instant_of(message)
                outcome = evolve_profile(state, message, now, self.config)
                staged[key] = outcome.state
                if outcome.payments:
                    records = beside.setdefault(key, {})
                    for payment in outcome.payments:
                        records[codecs.PAYMENT + payment.key.encode()] = payment
                for to_chain in outcome.to_chains:
                    work.send("chain_inputs", to_chain.chain_key, to_chain)
                for to_profile in outcome.to_profiles:
                    work.send("profile_inputs", to_profile.profile_id, to_profile)
                for release in outcome.to_identity:
                    work.send("identity_inputs", release.customer_user_id, release)
                # With the profile as each event left it: the same whatever the batching.
                for integration in published(outcome.state, outcome.events, self.config):
                    work.send("profile_events", integration.profile_id, integration)
                for rejection in outcome.rejections:
                    work.send("profile_outcomes", rejection.profile_id, rejection)
                if outcome.applied is not None:
                    work.send("profile_outcomes", message.profile_id, outcome.applied)

            self._fold(event, work.sender, step)
        await work.flush()
        return count

    def _snapshots(self, work: Work) -> None:
        """The latest view of each profile a round changed."""
        for state in work.staged.values():
            if state.exists and state.as_of is not None:
                view = profile_view(state, state.as_of, self.config)
                work.send("profile_snapshots", state.profile_id, view)

    async def _identity_batch(self, events: list[Any]) -> int:
        work = await self._work(self.identities, "identity_state")
        identities: Tables = self.identities.data
        staged = work.staged
        count = 0
        async for event, message in self._messages(events, lambda _: _IDENTITY_MESSAGES, work):
            count += 1
            customer = customer_of(message)
            if customer is None or not self._keyed(event, message, customer, work.sender):
                continue

            def step(message: Any = message, key: bytes = customer.encode()) -> None:
                state = staged.get(key) or identities.load(key)
                state = state or IdentityState(customer_user_id=key.decode())
                outcome = evolve_identity(state, message)
                staged[key] = outcome.state
                for command in outcome.to_profiles:
                    work.send("profile_inputs", command.profile_id, command)
                for store_event in outcome.to_chains:
                    work.send("chain_inputs", store_event.chain_key, store_event)
                for resolved in outcome.resolved:
                    work.send("profile_outcomes", resolved.profile_id, resolved)

            self._fold(event, work.sender, step)
        await work.flush()
        return count

    async def _work(
        self,
        table: Any,
        state_topic: str | None,
        before_flush: Callable[[Work], None] | None = None,
    ) -> Work:
        return Work(self, await self._sender(), table, state_topic, before_flush)

    # --- timers and watchdog -------------------------------------------------------------

    def _on_rebalance(self, *args: Any, **kwargs: Any) -> None:
        self._indexed_at = float("-inf")
        self._reread_pending = True

    async def _reread_after_rebalance(self) -> None:
        """Read every source partition again from its committed offset once a rebalance
        has ended.

        Faust ends a rebalance by seeking its partitions to their committed offsets and
        then resuming flow control, which empties its stream queues: records fetched in
        between are dropped, yet counted as read, and never fetched again (seen on the
        development broker after a worker was killed: the last records of a partition
        were never folded). Reading again from the committed offsets brings them back;
        the records that were not dropped are folded again and change nothing (the folds
        know the ids they have seen)."""
        if not self._reread_pending or self.app.rebalancing or self.app.in_recovery:
            return
        self._reread_pending = False
        consumer: Any = self.app.consumer
        committed = consumer._committed_offset
        for tp in consumer.assignment():
            if tp.topic in self._sources:
                await consumer.seek(tp, committed.get(tp) or 0)

    async def _reread_unfolded(self) -> None:
        """Read a partition again from the record its commit waits for: one that was read
        but never folded (`commits.py`)."""
        consumer: Any = self.app.consumer
        if not isinstance(consumer, GaplessConsumer):
            return
        if self.app.rebalancing or self.app.in_recovery:
            return
        assigned = consumer.assignment()
        unknown = [
            tp
            for tp in assigned
            if tp.topic in self._sources
            and consumer._committed_offset.get(tp) is None
            and tp not in consumer.log_start
        ]
        if unknown:
            try:
                consumer.log_start.update(await consumer.earliest_offsets(*unknown))
            except Exception as error:  # asked again at the next tick
                log.warning("earliest offsets unknown: %r", error)
        now = time.monotonic()
        for tp, head in list(consumer.unfolded.items()):
            del consumer.unfolded[tp]
            last = self._reread_at.get(tp)
            if tp not in assigned or (
                last is not None and last[0] == head and now - last[1] < REREAD_SECONDS
            ):
                continue
            self._reread_at[tp] = (head, now)
            REREADS.labels(tp.topic).inc()
            log.warning(
                "%s[%d]: the record at %d was read but not folded; reading again from it",
                tp.topic,
                tp.partition,
                head,
            )
            await consumer.seek(tp, head)

    def _index_wakeups(self) -> None:
        """Index the wake-ups of the profiles this worker holds again, due ones not yet
        folded included: after every rebalance (once recovery has filled the table) and
        now and then besides, which also covers a rebalance whose recovery ended late.
        In memory it reads one field a profile; on disk the index is kept with the states."""
        if self.app.in_recovery or time.monotonic() - self._indexed_at < REINDEX_SECONDS:
            return
        self.profiles.data.reindex()
        self._indexed_at = time.monotonic()

    def _exit_if_stalled(self) -> None:
        """A crashed fetcher reads nothing again (Faust restarts it only on a rebalance):
        exit, as a kill would, for the supervisor to start the worker again; nothing is
        lost, since no offset commits before what it caused (docs/stream.md, Delivery)."""
        fetcher = self.app._fetcher
        if fetcher.crashed and not self.app.rebalancing:
            log.error(
                "the fetcher crashed (%r): exiting to be started again",
                getattr(fetcher, "crash_reason", None),
            )
            logging.shutdown()
            os._exit(EXIT_STALLED)

    async def _on_timer(self) -> None:
        self._exit_if_stalled()
        tune_faust_fetches(self.app, self.settings.broker_flavor)
        await self._reread_after_rebalance()
        await self._reread_unfolded()
        self._index_wakeups()
        now = datetime.now(UTC)
        profiles = self.profiles.data
        TIMERS_DUE.set(profiles.pending_wakeups())
        due = profiles.due(now)
        if due:
            sender = await self._sender()
            for key, at in due:
                profile_id = key.decode()
                self._send(sender, "profile_inputs", profile_id, Tick(profile_id=profile_id, at=at))
            await sender.deliver()
            self._woken_at = time.monotonic()
        self._watch_commits()
        self._watch_lag()

    def _watch_commits(self) -> None:
        committed = dict(getattr(self.app.consumer, "_committed_offset", {}) or {})
        if committed != self._committed:
            self._committed = committed
            self._last_commit = time.monotonic()
        COMMIT_AGE.set(time.monotonic() - self._last_commit)

    def _watch_lag(self) -> None:
        """Lag per source partition, and readiness: recovered, and caught up to within
        one batch of every partition this worker reads."""
        if self.app.in_recovery or self.app.rebalancing:
            self.health.set("recovering" if self.app.in_recovery else "rebalancing")
            return
        consumer: Any = self.app.consumer
        reading = getattr(getattr(consumer, "_thread", None), "_consumer", None)
        if reading is not None and (reason := silence_reason(reading)):
            self.health.set(reason)
            return
        behind = 0
        for tp in consumer.assignment():
            if tp.topic not in self._sources:
                continue
            end = consumer.highwater(tp)
            if end is None:
                self.health.set(f"no offsets yet for {tp.topic}[{tp.partition}]")
                return
            read = consumer._read_offset.get(tp)
            committed = consumer._committed_offset.get(tp)
            position = read + 1 if read is not None else (committed or 0)
            lag = max(end - position, 0)
            CONSUMER_LAG.labels("worker", tp.topic, tp.partition).set(lag)
            behind += lag
        strict = self.settings.ready_lag == 0
        if strict and time.monotonic() - self._woken_at < WAKE_SETTLE_SECONDS:
            # Caught up to nothing left (as a rebuild asks): the wake-ups that came due
            # while it read are folded too.
            self.health.set("waking profiles whose next change is due")
            return
        self.health.set(lag_reason(behind, self.settings.ready_lag))


_RAW_BYTES: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class Work:
    """An agent's round of work: what its messages sent and the states they changed.

    `flush` writes it in the one safe order, outputs first and acknowledged, then each
    changed key's state, once, with the records kept beside it, to its changelog
    (acknowledged too) and to the table Faust recovers from that changelog; then a new
    round starts.
    """

    def __init__(
        self,
        processor: Processor,
        sender: Sender,
        table: Any,
        state_topic: str | None,
        before_flush: Callable[[Work], None] | None,
    ) -> None:
        self.processor = processor
        self.sender = sender
        self.table = table
        self.state_topic = state_topic
        self.before_flush = before_flush
        # Kept as one object for the whole batch: the agents' fold steps hold it.
        self.staged: dict[bytes, Any] = {}
        # Records to keep beside each changed state (by key, then by record key).
        self.beside: dict[bytes, dict[bytes, Any]] = {}

    def send(self, topic_id: str, key: object, value: object) -> None:
        self.processor._send(self.sender, topic_id, key, value)

    async def flush(self) -> None:
        if self.before_flush is not None:
            self.before_flush(self)
        await self.sender.deliver()
        if self.staged and self.state_topic is not None:
            changelog = await self.processor._sender()
            name = self.processor.names[self.state_topic]
            states: Tables = self.table.data
            layout = states.layout
            written: list[Written] = []
            for key, state in self.staged.items():
                partition = changelog.partition_of(name, key)
                records = {
                    sub: codecs.encode(record) for sub, record in self.beside.get(key, {}).items()
                }
                for sub, data in records.items():
                    changelog.send_to(name, partition, key + codecs.SEPARATOR + sub, data)
                changelog.send_to(name, partition, key, layout.encode_head(state))
                written.append(Written(key, partition, records, state))
            await changelog.deliver()
            offsets = {p: at for (topic, p), at in changelog.acknowledged.items() if topic == name}
            states.write(written, offsets)
        self.sender = await self.processor._sender()
        self.staged.clear()
        self.beside.clear()
