"""A worker's table store: each key's state, and the records kept beside it.

Faust recovers a table by handing its store the changelog records of the partitions the
worker owns (`apply_changelog_batch`). This store tells a state's record from the records
kept beside it by their key (`codecs.beside`): states are decoded when first loaded,
records beside them kept as the bytes they were written as and decoded only when a fold
asks for them (a chain's history, for input that arrives late) or, for a profile's
payments, once, when the profile is first loaded. Only the most recently used states stay
decoded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import faust.stores
from faust.stores import memory
from prometheus_client import Counter

from processors.core.facts import observation_order
from processors.stream.codecs import (
    LAYOUTS,
    OBSERVATION,
    PAYMENT,
    SEPARATOR,
    TRANSACTION,
    WHOLE,
    Layout,
    encode,
)
from processors.stream.wakeups import WakeIndex
from schemas.state import Observation, TransactionFact

SCHEME = "subledger"

RECOVERED = Counter(
    "subledger_table_records_recovered_total",
    "Changelog records a worker read back into its tables",
    ["table"],
)


class Written(NamedTuple):
    """A state as a batch wrote it to its changelog, with the records beside it."""

    key: bytes
    partition: int
    records: Mapping[bytes, bytes]
    state: Any


class Tables(Protocol):
    """What the agents ask of a table's store, in memory (`StateStore`) or on disk
    (`rocks.DiskStateStore`)."""

    @property
    def layout(self) -> Layout: ...

    def load(self, key: bytes) -> Any: ...

    def history(self, key: bytes, staged: Mapping[bytes, Any] | None) -> StoredHistory: ...

    def write(self, written: Iterable[Written], offsets: Mapping[int, int]) -> None: ...

    def due(self, now: datetime) -> list[tuple[bytes, datetime]]: ...

    def reindex(self) -> None: ...

    def pending_wakeups(self) -> int: ...


# Set by the processor before Faust opens its tables (`configure`).
_cached_states = 5_000


def configure(cached_states: int) -> None:
    global _cached_states
    _cached_states = cached_states


class StateStore(memory.Store):  # type: ignore[type-arg]
    """The `memory://` store with records kept beside the states, and only the most
    recently used states decoded.

    `data` holds every key's state: decoded for the `cached_states` most recently used,
    else as bytes, either a changelog head (completed from the records beside it when
    next loaded) or the whole state a batch wrote (`WHOLE`, read back in one decode). A
    profile of ten renewals takes about a fifth of the memory as bytes that it takes
    decoded."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.beside: dict[bytes, dict[bytes, bytes]] = {}
        self.wakeups = WakeIndex()
        # Every profile's next wake-up, which `reindex` indexes again.
        self._next: dict[bytes, datetime] = {}
        # The keys whose state is decoded in `data`, least recently used first.
        self._decoded: OrderedDict[bytes, None] = OrderedDict()
        self._limit = _cached_states

    @property
    def layout(self) -> Layout:
        return LAYOUTS[self.table_name]

    def apply_changelog_batch(
        self, batch: Iterable[Any], to_key: Any = None, to_value: Any = None
    ) -> None:
        count = 0
        for event in batch:
            count += 1
            key: bytes = event.message.key
            value: bytes | None = event.message.value
            state_key, separator, sub = key.partition(SEPARATOR)
            self._key_partition[state_key] = event.message.partition
            if separator:
                records = self.beside.setdefault(state_key, {})
                if value is None:
                    records.pop(sub, None)
                else:
                    records[sub] = value
                continue
            self._decoded.pop(key, None)
            if value is None:
                self.data.pop(key, None)
                self._next.pop(key, None)
                continue
            # Kept as written; completed from the records beside it when first loaded.
            if self.layout.wakes:
                self._wakes_at(key, self.layout.decode_head(value).next_wakeup_at)
            else:
                self.layout.check(value)
            self.data[key] = value
        RECOVERED.labels(self.table_name).inc(count)

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        for key in [k for k in self.beside if k not in self._key_partition]:
            del self.beside[key]

    def load(self, key: bytes) -> Any:
        """The state at `key`, with the records that belong in it."""
        state = self.data.get(key)
        if state is None:
            return None
        if not isinstance(state, bytes):
            self._decoded.move_to_end(key)
            return state
        if state[:1] == WHOLE:
            state = self.layout.decode_state(state[1:])
        else:
            records = self.beside.setdefault(key, {})
            state = self.layout.assemble(self.layout.decode_head(state), records)
            # Payments live in the state from now on.
            for sub in [s for s in records if s[:1] == PAYMENT]:
                del records[sub]
        self._remember(key, state)
        return state

    def _remember(self, key: bytes, state: Any) -> None:
        """Keep `state` decoded; the least recently used beyond the limit go to bytes."""
        self.data[key] = state
        self._decoded[key] = None
        self._decoded.move_to_end(key)
        while len(self._decoded) > self._limit:
            old, _ = self._decoded.popitem(last=False)
            self.data[old] = WHOLE + encode(self.data[old])

    def write(self, written: Iterable[Written], offsets: Mapping[int, int]) -> None:
        """A batch's states, once their changelog acknowledged them (the changelog is all
        this store recovers from, so the offsets are not kept)."""
        for item in written:
            self._key_partition[item.key] = item.partition
            # Payments live in the state itself.
            kept = {sub: data for sub, data in item.records.items() if sub[:1] != PAYMENT}
            if kept:
                self.beside.setdefault(item.key, {}).update(kept)
            self._remember(item.key, item.state)
            if self.layout.wakes:
                self._wakes_at(item.key, item.state.next_wakeup_at)

    # --- the timer index: in memory, rebuilt from the states' wake-ups --------------

    def _wakes_at(self, key: bytes, at: datetime | None) -> None:
        if at is None:
            self._next.pop(key, None)
        else:
            self._next[key] = at
        self.wakeups.set(key, at)

    def due(self, now: datetime) -> list[tuple[bytes, datetime]]:
        return self.wakeups.pop_due(now)

    def reindex(self) -> None:
        """Index every state's next wake-up again (due ones not yet folded included)."""
        self.wakeups.clear()
        for key, at in self._next.items():
            self.wakeups.set(key, at)

    def pending_wakeups(self) -> int:
        return len(self.wakeups)

    def history(self, key: bytes, staged: Mapping[bytes, Any] | None) -> StoredHistory:
        return StoredHistory(self.layout, self.beside.get(key, {}), staged or {})


class StoredHistory:
    """A chain's facts as the store holds them, with those a batch has not yet written."""

    def __init__(
        self, layout: Layout, records: Mapping[bytes, bytes], staged: Mapping[bytes, Any]
    ) -> None:
        self._layout = layout
        self._records = records
        self._staged = staged

    def _get(self, sub: bytes) -> Any:
        found = self._staged.get(sub)
        if found is not None:
            return found
        data = self._records.get(sub)
        return None if data is None else self._layout.decode(sub[:1], data)

    def transaction(self, transaction_id: str) -> TransactionFact | None:
        fact: TransactionFact | None = self._get(TRANSACTION + transaction_id.encode())
        return fact

    def has_event(self, event_id: str) -> bool:
        sub = OBSERVATION + event_id.encode()
        return sub in self._staged or sub in self._records

    def facts(self) -> tuple[Mapping[str, TransactionFact], list[Observation]]:
        transactions: dict[str, TransactionFact] = {}
        observations: list[Observation] = []
        for sub in {*self._records, *self._staged}:
            record = self._get(sub)
            if sub[:1] == TRANSACTION:
                transactions[record.info.transaction_id] = record
            elif sub[:1] == OBSERVATION:
                observations.append(record)
        observations.sort(key=observation_order)
        return transactions, observations


def register() -> None:
    faust.stores.STORES.aliases[SCHEME] = f"{__name__}:StateStore"
