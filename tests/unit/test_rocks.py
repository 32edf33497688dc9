"""The RocksDB table store: what a batch writes is what a load, a chain's history, the
timer and a recovery read back, with a bounded number of states in memory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import faust
import pytest

from processors.stream import codecs, rocks
from processors.stream.codecs import LAYOUTS
from processors.stream.rocks import DiskStateStore, decode_instant, encode_instant
from processors.stream.store import Written
from schemas.base import replace
from tests.builders import ALICE, BOB, Chain, day
from tests.helpers import run

PARTITIONS = 4


@dataclass
class _Message:
    key: bytes
    value: bytes | None
    partition: int
    offset: int


@dataclass
class _Event:
    message: _Message


def _store(tmp_path: Path, name: str, cached: int = 1000) -> DiskStateStore:
    rocks.register()
    rocks.configure(16 << 20, 8 << 20, cached)
    app = faust.App(f"test-{name}", store=f"{rocks.SCHEME}://", tabledir=tmp_path)
    table = app.Table(name, default=None, key_type=bytes, partitions=PARTITIONS)
    store: DiskStateStore = table.data
    # Every partition is this worker's (no consumer group in a unit test).
    store._active_partitions = lambda: list(range(PARTITIONS))  # type: ignore[method-assign]
    return store


def _written(store: DiskStateStore, key: bytes, state: Any, beside: dict[bytes, Any]) -> Written:
    records = {sub: codecs.encode(record) for sub, record in beside.items()}
    return Written(key, store.partition_of(key), records, state)


def _profile(renewals: int = 10) -> Any:
    chain = Chain()
    ledger = run(
        [chain.buy(f"t{i}", day(30 * i), day(30 * (i + 1))) for i in range(renewals)], day(1)
    )
    return ledger, chain


def test_a_profile_written_is_loaded_with_its_payments_once_out_of_memory(
    tmp_path: Path,
) -> None:
    ledger, _ = _profile()
    state = ledger.profiles[ALICE]
    store = _store(tmp_path, "profiles", cached=100)
    key = str(ALICE).encode()
    payments = {codecs.PAYMENT + p.key.encode(): p for p in state.payments.values()}
    store.write([_written(store, key, state, payments)], {store.partition_of(key): 41})
    # Push it out of the states kept in memory: it is read from disk.
    other = replace(state, profile_id=BOB, next_wakeup_at=None)
    for n in range(150):
        filler = f"filler-{n}".encode()
        store.write([_written(store, filler, other, {})], {})
    assert key not in store._cache
    assert len(store._cache) == 100
    assert store.load(key) == state
    assert store.persisted_offset(faust.types.TP("x", store.partition_of(key))) == 41


def test_a_chain_history_is_read_from_disk(tmp_path: Path) -> None:
    ledger, chain = _profile()
    key = chain.key.encode()
    book = ledger.facts[chain.key]
    beside = {
        **{codecs.TRANSACTION + t.encode(): f for t, f in book.transactions.items()},
        **{codecs.OBSERVATION + e.encode(): o for e, o in book.observations.items()},
    }
    store = _store(tmp_path, "chains")
    store.write([_written(store, key, ledger.chains[chain.key], beside)], {})
    store._cache.clear()
    assert store.load(key) == ledger.chains[chain.key]
    history = store.history(key, None)
    assert history.facts() == book.facts()
    assert history.has_event(next(iter(book.observations)))
    assert not history.has_event("never-seen")
    assert history.transaction("t3") == book.transactions["t3"]


def test_the_timer_index_follows_each_profiles_next_wake_up(tmp_path: Path) -> None:
    ledger, _ = _profile()
    state = ledger.profiles[ALICE]
    store = _store(tmp_path, "profiles")
    at = day(400)
    keys = [f"p{n}".encode() for n in range(6)]
    states = [replace(state, next_wakeup_at=at + timedelta(days=n)) for n in range(len(keys))]
    store.write([_written(store, k, s, {}) for k, s in zip(keys, states, strict=True)], {})
    assert store.pending_wakeups() == 6
    assert sorted(k for k, _ in store.due(at + timedelta(days=2))) == sorted(keys[:3])
    # Handed out once until the index is read again, or the profile moves on.
    assert store.due(at + timedelta(days=2)) == []
    store.reindex()
    assert sorted(k for k, _ in store.due(at + timedelta(days=2))) == sorted(keys[:3])
    moved = replace(state, next_wakeup_at=at + timedelta(days=30))
    done = replace(state, next_wakeup_at=None)
    store.write([_written(store, keys[0], moved, {}), _written(store, keys[1], done, {})], {})
    assert store.pending_wakeups() == 5
    store.reindex()
    due = dict(store.due(at + timedelta(days=30)))
    assert sorted(due) == sorted(k for k in keys if k != keys[1])
    assert due[keys[0]] == at + timedelta(days=30)


def test_recovery_writes_what_the_changelog_holds_and_where_it_reached(tmp_path: Path) -> None:
    ledger, _ = _profile()
    state = ledger.profiles[ALICE]
    layout = LAYOUTS["profiles"]
    key = str(ALICE).encode()
    store = _store(tmp_path, "profiles")
    partition = store.partition_of(key)
    events = [
        _Event(_Message(codecs.beside(key, codecs.PAYMENT, p.key), codecs.encode(p), partition, n))
        for n, p in enumerate(state.payments.values())
    ]
    events.append(_Event(_Message(key, layout.encode_head(state), partition, len(events))))
    store.apply_changelog_batch(events)
    assert store.load(key) == state
    assert store.persisted_offset(faust.types.TP("x", partition)) == len(events) - 1
    assert [k for k, _ in store.due(day(10_000))] == [key]
    # A tombstone removes the state and its wake-up.
    store.apply_changelog_batch([_Event(_Message(key, None, partition, len(events)))])
    assert store.load(key) is None
    assert store.pending_wakeups() == 0


def test_a_changelog_of_an_earlier_processor_is_refused(tmp_path: Path) -> None:
    earlier = b'{"profile_id":"00000000-0000-4000-8000-00000000a11c","exists":true}'
    store = _store(tmp_path, "identities")
    with pytest.raises(codecs.StaleStateError):
        store.apply_changelog_batch([_Event(_Message(b"k", earlier, 0, 0))])


def test_instants_sort_as_bytes() -> None:
    instants = [day(-30_000), day(0), day(1), day(1) + timedelta(microseconds=1), day(90_000)]
    encoded = [encode_instant(at) for at in instants]
    assert encoded == sorted(encoded)
    assert [decode_instant(data) for data in encoded] == instants
