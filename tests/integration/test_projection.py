"""The read-model projector on real PostgreSQL: version-guarded, idempotent, erasing."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
import psycopg
import pytest

from projections import tables
from projections.projector import PROJECTED, Projector, Writer, prune_outcomes
from runtime.catalog import load_catalog
from schemas.commands import AddNote, DeleteProfile
from tests.builders import T0
from tests.corpus import corpus, profile_id
from tests.helpers import create
from tests.history import Record, project, records

pytestmark = pytest.mark.integration

TABLES = [t.name for t in tables.metadata.sorted_tables if t.name != "projection_offsets"]


def history(profiles: int = 15) -> list[Record]:
    creates, rest = corpus(profiles)
    erase = DeleteProfile(
        command_id="erase-2", issued_at=T0 + timedelta(days=90), profile_id=profile_id(2)
    )
    return records([*creates, *rest, erase], until=T0 + timedelta(days=120))


def chunks(items: list[Record], size: int) -> list[list[Record]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def dump(url: str) -> dict[str, list[Any]]:
    async with await psycopg.AsyncConnection.connect(url) as connection:
        out = {}
        for table in TABLES:
            cursor = await connection.execute(f"SELECT to_jsonb(t)::text FROM {table} t")
            out[table] = sorted(row[0] for row in await cursor.fetchall())
        return out


async def test_redelivery_and_any_batching_leave_the_read_model_unchanged(
    database: str,
) -> None:
    log = history()
    await project(database, chunks(log, 7))
    once = await dump(database)
    assert len(once["profiles"]) == 14
    assert once["profile_events"]
    # Redelivered in other batch sizes, then a stale tail again: nothing moves.
    await project(database, chunks(log, 50))
    await project(database, [log[: len(log) // 2]])
    assert await dump(database) == once


async def test_a_batch_in_any_order_keeps_the_newest_snapshot(database: str) -> None:
    log = history()
    await project(database, [log])
    in_order = await dump(database)
    shuffled = list(log)
    random.Random(7).shuffle(shuffled)
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as connection:
        for table in TABLES:
            await connection.execute(f"TRUNCATE {table}")
    await project(database, chunks(shuffled, 11))
    assert await dump(database) == in_order


async def test_an_event_read_twice_in_one_batch_keeps_its_first_reading(database: str) -> None:
    event = next(r for r in history() if r.topic == "profile_events")
    later, first = Record(event.topic, event.value, 90), Record(event.topic, event.value, 40)
    await project(database, [[later, first, later]])
    async with await psycopg.AsyncConnection.connect(database) as connection:
        cursor = await connection.execute("SELECT sequence FROM profile_events")
        assert await cursor.fetchall() == [(40,)]


async def test_erasure_removes_every_row_of_the_profile_for_good(database: str) -> None:
    log = history()
    await project(database, chunks(log, 9))
    erased = str(profile_id(2))
    await project(database, [log])  # a replay from the start brings nothing back
    rows = await dump(database)
    for table in TABLES:
        if table in ("profile_tombstones", "command_outcomes"):
            continue
        assert not [r for r in rows[table] if erased in r], table
    assert [r for r in rows["profile_tombstones"] if erased in r]
    # The profile's neighbours are all there.
    assert len(rows["profiles"]) == 14


async def test_child_rows_follow_the_newest_snapshot(database: str) -> None:
    log = history()
    await project(database, [log])
    async with await psycopg.AsyncConnection.connect(database) as connection:
        cursor = await connection.execute(
            "SELECT p.profile_id, count(s.*) FROM profiles p "
            "LEFT JOIN subscriptions s USING (profile_id) GROUP BY p.profile_id"
        )
        counts = dict(await cursor.fetchall())
        cursor = await connection.execute(
            "SELECT count(*) FROM transaction_ids WHERE transaction_id = 'a0-2'"
        )
        (holders,) = await cursor.fetchone() or (0,)
    latest = {}
    for record in log:
        if record.topic == "profile_snapshots":
            latest[record.json["profile_id"]] = record.json
    for profile, view in latest.items():
        if view.get("deleted"):
            continue
        assert counts[UUID(profile)] == len(view["subscriptions"])
    assert holders >= 1


@pytest.mark.parametrize("tombstone_first", [True, False], ids=["tombstone first", "notice first"])
async def test_the_deletion_notice_goes_out_once_whichever_topic_is_read_first(
    database: str, tombstone_first: bool
) -> None:
    """The erasing snapshot and the `profile_deleted` event travel on different topics:
    either may be projected first; the notice is queued once and its row not kept."""
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as db:
        await db.execute(
            "INSERT INTO webhook_endpoints (endpoint_id, url, event_types, environment, "
            "secrets, created_at) VALUES (gen_random_uuid(), 'http://127.0.0.1:9/', '{}', "
            "'both', '{whsec_x}', now())"
        )
    log = history()
    erased = str(profile_id(2))
    notice = next(
        r
        for r in log
        if r.topic == "profile_events"
        and r.json["event_type"] == "profile_deleted"
        and r.json["profile_id"] == erased
    )
    tombstone = next(
        r for r in log if r.topic == "profile_snapshots" and r.json.get("deleted") is True
    )
    rest = [
        r
        for r in log
        if r is not notice and not (r.topic == "profile_snapshots" and r.json.get("deleted"))
    ]
    order = [tombstone, notice] if tombstone_first else [notice, tombstone]
    await project(database, [rest, [order[0]], [order[1]], [notice, tombstone]])
    async with await psycopg.AsyncConnection.connect(database) as db:
        cursor = await db.execute(
            "SELECT event_type FROM webhook_deliveries WHERE profile_id = %s", (erased,)
        )
        assert [row[0] for row in await cursor.fetchall()] == ["profile_deleted"]
        cursor = await db.execute(
            "SELECT count(*) FROM profile_events WHERE profile_id = %s", (erased,)
        )
        assert (await cursor.fetchone()) == (0,)


async def test_a_commit_that_writes_profiles_or_outcomes_is_notified(database: str) -> None:
    """What wakes a server-side API call waiting to read its own write."""
    log = history(2)
    snapshots = [r for r in log if r.topic == "profile_snapshots"]
    events = [r for r in log if r.topic == "profile_events"]
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as listener:
        await listener.execute(f"LISTEN {PROJECTED}")
        await project(database, [events])  # events alone: nothing a call waits for
        await project(database, [snapshots[:1]])
        heard = [n.channel async for n in listener.notifies(timeout=1.0)]
    assert heard == [PROJECTED]


async def test_outcomes_go_once_their_topic_would_have_dropped_them(database: str) -> None:
    """A rebuild finds only the outcomes `profile.outcomes` still holds; the live read model
    keeps no more than that."""
    projector = Projector(load_catalog(), "unused:9092", database)
    retention_ms = projector.outcome_retention_ms
    assert retention_ms == 86_400_000  # topics.yaml
    now = datetime.now(UTC)
    ages = {
        "older": timedelta(days=3),
        "old": timedelta(days=2),
        "edge": timedelta(hours=23),
        "new": timedelta(0),
    }
    outcomes = [
        Record(
            "profile_outcomes",
            orjson.dumps(
                {
                    "kind": "applied",
                    "command_id": name,
                    "profile_id": str(profile_id(0)),
                    "version": 1,
                }
            ),
            appended_at=now - age,
        )
        for name, age in ages.items()
    ]
    await project(database, [outcomes])
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as connection:
        assert await prune_outcomes(connection, retention_ms, chunk=1) == 1  # a chunk at a time
        assert await prune_outcomes(connection, retention_ms) == 1
        assert await prune_outcomes(connection, retention_ms) == 0
        cursor = await connection.execute("SELECT command_id FROM command_outcomes")
        assert sorted(row[0] for row in await cursor.fetchall()) == ["edge", "new"]

        await project(database, [[dataclasses.replace(outcomes[0], appended_at=now - ages["old"])]])
        await projector._prune(Writer(connection))  # what the projector runs between batches
        cursor = await connection.execute("SELECT command_id FROM command_outcomes")
        assert sorted(row[0] for row in await cursor.fetchall()) == ["edge", "new"]


async def test_a_nul_character_that_reached_a_snapshot_does_not_stop_the_read_models(
    database: str,
) -> None:
    """The boundaries refuse NUL; a record holding one anyway (from a producer that did
    not) is stored with U+FFFD in its place, and the records after it are applied."""
    me = profile_id(7)
    noted = AddNote(
        command_id="note-nul",
        issued_at=T0 + timedelta(hours=1),
        profile_id=me,
        note_id="n1",
        text="call\x00first",
    )
    later = AddNote(
        command_id="note-after",
        issued_at=T0 + timedelta(hours=2),
        profile_id=me,
        note_id="n2",
        text="fine",
    )
    log = records([create(me, "nul-user"), noted, later])
    await project(database, [log[: len(log) - 1], log[-1:]])
    async with await psycopg.AsyncConnection.connect(database) as connection:
        cursor = await connection.execute(
            "SELECT view->'notes' FROM profiles WHERE profile_id = %s", (me,)
        )
        (notes,) = await cursor.fetchone()  # type: ignore[misc]
    assert [n["text"] for n in notes] == ["call\ufffdfirst", "fine"]
