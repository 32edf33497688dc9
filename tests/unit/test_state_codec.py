"""Fold state on the changelogs: what a change writes, and what recovery reads back."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bench.traffic import renewals
from processors.core.ledger import Ledger
from processors.stream import codecs, store
from processors.stream.codecs import LAYOUTS, StaleStateError
from processors.stream.processor import Processor
from processors.stream.store import StateStore, Written
from runtime.catalog import load_catalog
from runtime.settings import Settings
from tests.builders import ALICE, Chain, day
from tests.helpers import run


@dataclass
class _Message:
    key: bytes
    value: bytes | None
    partition: int = 0


@dataclass
class _Event:
    message: _Message


def _store(table: str, cached: int = 5_000) -> StateStore:
    store.configure(cached)
    try:
        return StateStore("subledger://", None, None, table_name=table)
    finally:
        store.configure(5_000)


def _profiles(count: int) -> dict[bytes, object]:
    ledger = Ledger()
    ledger.submit_all(renewals(10 * count, count))
    return {str(k).encode(): state for k, state in ledger.profiles.items()}


def _changelog(ledger_states, layout, beside):  # the records a worker writes
    records = []
    for key, state in ledger_states.items():
        for sub, record in beside.get(key, {}).items():
            records.append(_Event(_Message(key + codecs.SEPARATOR + sub, codecs.encode(record))))
        records.append(_Event(_Message(key, layout.encode_head(state))))
    return records


def test_a_profile_is_written_without_its_payments_and_recovered_with_them() -> None:
    chain = Chain()
    ledger = run([chain.buy(f"t{i}", day(30 * i), day(30 * (i + 1))) for i in range(10)], day(1))
    state = ledger.profiles[ALICE]
    assert len(state.payments) == 10
    layout = LAYOUTS["profiles"]
    key = str(ALICE).encode()
    # The payments are records of their own.
    assert layout.decode_head(layout.encode_head(state)).payments == {}
    beside = {key: {codecs.PAYMENT + p.key.encode(): p for p in state.payments.values()}}
    store = _store("profiles")
    store.apply_changelog_batch(_changelog({key: state}, layout, beside))
    assert store.load(key) == state


def test_a_chain_is_recovered_with_its_facts_beside_it() -> None:
    chain = Chain()
    ledger = run([chain.buy(f"t{i}", day(30 * i), day(30 * (i + 1))) for i in range(10)], day(1))
    key = chain.key.encode()
    book = ledger.facts[chain.key]
    layout = LAYOUTS["chains"]
    beside = {
        key: {
            **{codecs.TRANSACTION + t.encode(): f for t, f in book.transactions.items()},
            **{codecs.OBSERVATION + e.encode(): o for e, o in book.observations.items()},
        }
    }
    store = _store("chains")
    store.apply_changelog_batch(_changelog({key: ledger.chains[chain.key]}, layout, beside))
    assert store.load(key) == ledger.chains[chain.key]
    history = store.history(key, None)
    assert history.facts() == book.facts()
    assert history.has_event(next(iter(book.observations)))
    assert history.transaction("t3") == book.transactions["t3"]


def test_only_the_most_recently_used_states_stay_decoded() -> None:
    profiles = _profiles(5)
    table = _store("profiles", cached=2)
    table.write([Written(key, 0, {}, state) for key, state in profiles.items()], {})
    kept = [key for key, value in table.data.items() if not isinstance(value, bytes)]
    assert kept == list(profiles)[-2:]
    for key in list(profiles)[:3]:
        assert table.data[key][:1] == codecs.WHOLE
    # Each reads back as it was written, and becomes the most recently used.
    for key, state in profiles.items():
        assert table.load(key) == state
    assert sum(not isinstance(v, bytes) for v in table.data.values()) == 2
    first = next(iter(profiles))
    assert table.load(first) == profiles[first]
    assert not isinstance(table.data[first], bytes)


def test_the_wakeups_of_states_kept_as_bytes_are_indexed_again() -> None:
    profiles = _profiles(4)
    table = _store("profiles", cached=1)
    table.write([Written(key, 0, {}, state) for key, state in profiles.items()], {})
    expected = sorted((s.next_wakeup_at, k) for k, s in profiles.items() if s.next_wakeup_at)
    assert len(expected) == 4
    later = max(at for at, _ in expected)
    assert sorted((at, key) for key, at in table.due(later)) == expected
    assert table.due(later) == []
    table.reindex()
    assert sorted((at, key) for key, at in table.due(later)) == expected


def test_recovered_states_stay_bytes_until_loaded_and_their_wakeups_are_indexed() -> None:
    profiles = _profiles(3)
    layout = LAYOUTS["profiles"]
    beside = {
        key: {codecs.PAYMENT + p.key.encode(): p for p in state.payments.values()}
        for key, state in profiles.items()
    }
    table = _store("profiles")
    table.apply_changelog_batch(_changelog(profiles, layout, beside))
    assert all(isinstance(value, bytes) for value in table.data.values())
    later = max(s.next_wakeup_at for s in profiles.values())
    assert {key for key, _ in table.due(later)} == set(profiles)
    for key, state in profiles.items():
        assert table.load(key) == state


def test_a_changelog_of_an_earlier_processor_is_refused_with_the_way_forward() -> None:
    # Earlier processors wrote each state as a JSON document.
    earlier = b'{"profile_id":"00000000-0000-4000-8000-00000000a11c","exists":true}'
    with pytest.raises(StaleStateError, match="subledger reprocess"):
        _store("profiles").apply_changelog_batch([_Event(_Message(b"k", earlier))])


def test_the_hand_written_changelogs_are_declared_without_acks() -> None:
    """As Faust declares its own: a changelog topic with acks on is watched as a source a
    stream should be processing, and Faust logs an error for each of its partitions every
    few seconds from five minutes after start."""
    processor = Processor(Settings(), load_catalog(), "127.0.0.1:9")
    for table in (processor.chains, processor.profiles, processor.identities):
        assert table.changelog_topic.acks is False
