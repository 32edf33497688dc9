"""Topic records as the processor would publish them, made by the in-memory ledger.

After each input, the snapshot of every profile whose version moved, and the events and
outcomes the folds emitted: the three topics the projector reads, in a valid order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import psycopg

from processors.core.ledger import Ledger
from processors.core.view import profile_view
from projections.projector import prepare, write_batch
from projections.rows import Batch
from schemas.base import to_json
from schemas.messages import Input, instant_of


@dataclass(frozen=True)
class Record:
    topic: str
    value: bytes
    # Where it sits in its topic (the offset a projector would see).
    sequence: int = 0
    # When it was appended (a Kafka record's timestamp).
    appended_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    @property
    def raw(self) -> str:
        return self.value.decode()

    @property
    def json(self) -> dict[str, object]:
        parsed: dict[str, object] = orjson.loads(self.value)
        return parsed


def records(inputs: Iterable[Input], until: datetime | None = None) -> list[Record]:
    ledger = Ledger()
    out: list[Record] = []
    versions: dict[object, tuple[int, object]] = {}
    seen_events = 0
    for item in inputs:
        ledger.submit(item)
        out += _emitted(ledger, seen_events)
        seen_events = len(ledger.published)
        out += _snapshots(ledger, instant_of(item), versions)
    if until is not None:
        ledger.advance(until)
        out += _emitted(ledger, seen_events)
        out += _snapshots(ledger, until, versions)
    return out


def _emitted(ledger: Ledger, after: int) -> list[Record]:
    return [
        Record("profile_events", to_json(e), sequence)
        for sequence, e in enumerate(ledger.published[after:], start=after)
    ]


def _snapshots(
    ledger: Ledger, now: datetime, versions: dict[object, tuple[int, object]]
) -> list[Record]:
    out = []
    for profile_id, state in sorted(ledger.profiles.items()):
        if not state.exists or state.as_of is None:
            continue
        mark = (state.version, state.as_of)
        if versions.get(profile_id) == mark:
            continue
        versions[profile_id] = mark
        view = profile_view(state, state.as_of, ledger.config)
        out.append(Record("profile_snapshots", to_json(view)))
    return out


async def project(url: str, batches: Sequence[Sequence[Record]]) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await prepare(connection)
        for number, chunk in enumerate(batches):
            batch = Batch()
            for record in chunk:
                value = record.json
                if record.topic == "profile_snapshots":
                    batch.add_snapshot(value, record.raw)
                elif record.topic == "profile_events":
                    batch.add_event(value, record.raw, record.sequence)
                else:
                    batch.add_outcome(value, record.raw, record.appended_at)
            await write_batch(connection, batch, {("t", 0): number})
