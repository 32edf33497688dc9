"""Rebuilding the read models from the topics: the same rows, no webhook, resumable."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from projections import tables
from projections.projector import Projector
from projections.rebuild import Progress, Rebuild, shadow_of
from schemas.commands import DeleteProfile
from tests.builders import T0
from tests.corpus import corpus, profile_id
from tests.history import Record, records
from tests.integration.stack import Stack
from tests.postgres import fresh_database

pytestmark = pytest.mark.integration

DERIVED = [t.name for t in tables.DERIVED]


class Interrupted(Exception):
    pass


async def publish(stack: Stack, log: list[Record]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for record in log:
            key = str(record.json["profile_id"]).encode()
            await producer.send(stack.catalog[record.topic].name, record.value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def project_all(stack: Stack, batch_size: int = 50, url: str | None = None) -> Projector:
    """The live projector, run until it has read everything there is."""
    projector = Projector(stack.catalog, stack.bootstrap, url or stack.database_url, batch_size)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    await asyncio.wait_for(projector.caught_up.wait(), 60)
    stop.set()
    await task
    return projector


async def dump(url: str) -> dict[str, list[Any]]:
    async with await psycopg.AsyncConnection.connect(url) as connection:
        out = {}
        for table in [*DERIVED, "webhook_deliveries", "projection_offsets"]:
            cursor = await connection.execute(f"SELECT to_jsonb(t)::text FROM {table} t")
            out[table] = sorted(row[0] for row in await cursor.fetchall())
        return out


async def endpoint(url: str) -> None:
    """An endpoint that wants every event: the live projector queues a delivery each."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await connection.execute(
            "INSERT INTO webhook_endpoints (endpoint_id, url, event_types, environment, "
            "secrets, created_at) VALUES (gen_random_uuid(), 'http://127.0.0.1:9/', '{}', "
            "'both', '{whsec_x}', now())"
        )


def history() -> list[Record]:
    creates, rest = corpus(12)
    erase = DeleteProfile(
        command_id="erase-3", issued_at=T0 + timedelta(days=90), profile_id=profile_id(3)
    )
    return records([*creates, *rest, erase], until=T0 + timedelta(days=120))


@pytest.fixture
async def live(stack: Stack) -> dict[str, list[Any]]:
    """A live read model projected from the topics, with webhook deliveries queued."""
    await endpoint(stack.database_url)
    await publish(stack, history())
    await project_all(stack)
    state = await dump(stack.database_url)
    assert state["profiles"]
    assert state["webhook_deliveries"]
    return state


def rebuild(stack: Stack, **options: Any) -> Rebuild:
    return Rebuild(stack.catalog, stack.bootstrap, stack.database_url, batch_size=40, **options)


async def shadow_exists(url: str, projection: str = "read_models") -> bool:
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (shadow_of(projection),)
        )
        row = await cursor.fetchone()
        return bool(row and row[0])


async def test_a_rebuild_gives_the_live_rows_and_queues_no_webhook(
    stack: Stack, live: dict[str, list[Any]]
) -> None:
    progress = await rebuild(stack).run()
    assert progress.done == progress.total > 0
    assert progress.written >= sum(len(live[table]) for table in DERIVED)
    assert await dump(stack.database_url) == live
    assert not await shadow_exists(stack.database_url)


async def test_an_interrupted_rebuild_resumes_to_the_same_rows(
    stack: Stack, live: dict[str, list[Any]]
) -> None:
    seen: list[int] = []

    def interrupt(progress: Progress) -> None:
        seen.append(progress.done)
        if len(seen) == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        # Small bulk chunks, so that some are in when it stops.
        await rebuild(stack, report=interrupt, bulk_size=40).run()
    assert await shadow_exists(stack.database_url)
    assert await dump(stack.database_url) == live  # the live model is untouched meanwhile
    resumed = await rebuild(stack).run()
    assert 0 < resumed.done < sum(len(rows) for rows in live.values())  # only the rest
    assert await dump(stack.database_url) == live


async def test_a_rebuild_keeps_one_of_each_event_read_twice(stack: Stack) -> None:
    """Redelivered events: the live projector keeps the first; so does the bulk load,
    which copies events in without their key and removes the second reads after."""
    log = history()
    events = [record for record in log if record.topic == "profile_events"]
    await publish(stack, [*log, *events[::2]])
    await project_all(stack)
    live = await dump(stack.database_url)
    await rebuild(stack, bulk_size=100).run()
    assert await dump(stack.database_url) == live


async def test_a_rebuild_since_an_instant_rewrites_what_was_projected_after_it(
    stack: Stack, live: dict[str, list[Any]]
) -> None:
    async with await psycopg.AsyncConnection.connect(stack.database_url, autocommit=True) as db:
        await db.execute("UPDATE profiles SET subscription_state = 'garbled'")
    since = datetime.now(UTC) - timedelta(hours=1)  # every record was written after it
    await rebuild(stack, since=since).run()
    assert await dump(stack.database_url) == live


async def test_topics_no_projector_reads_are_rebuilt_to_their_end_and_handed_over(
    stack: Stack, postgres_server: str
) -> None:
    """A first build, or the topics of a new processor version: read to the end, no
    webhook queued, and the projector takes over from where the rebuild stopped."""
    await endpoint(stack.database_url)
    await publish(stack, history())
    progress = await rebuild(stack).run()
    assert progress.done == progress.total > 0
    rows = await dump(stack.database_url)
    assert not rows["webhook_deliveries"]
    with fresh_database(postgres_server) as reference:
        await project_all(stack, url=reference)
        expected = await dump(reference)
    for table in [*DERIVED, "projection_offsets"]:
        assert rows[table] == expected[table], table


async def test_the_live_projector_runs_on_through_a_rebuild_and_its_swap(
    stack: Stack, postgres_server: str
) -> None:
    """Records keep coming while the rebuild reads and swaps: the projector is held only
    for the swap, then writes on into the new tables, fanning out each event once."""
    log = history()
    half = len(log) // 2
    await endpoint(stack.database_url)
    projector = Projector(stack.catalog, stack.bootstrap, stack.database_url, 20)
    stop = asyncio.Event()
    running = asyncio.create_task(projector.run(stop))
    await publish(stack, log[:half])
    await asyncio.wait_for(projector.caught_up.wait(), 60)
    await asyncio.gather(rebuild(stack).run(), publish(stack, log[half:]))
    projector.caught_up.clear()
    await asyncio.sleep(0.5)
    await asyncio.wait_for(projector.caught_up.wait(), 60)
    stop.set()
    await running
    rows = await dump(stack.database_url)
    with fresh_database(postgres_server) as reference:
        await endpoint(reference)
        await project_all(stack, url=reference)
        expected = await dump(reference)
        queued = await delivered(reference)
    for table in DERIVED:
        assert rows[table] == expected[table], table
    assert await delivered(stack.database_url) == queued


async def delivered(url: str) -> list[str]:
    """The events queued for webhooks, in order, as many times as queued."""
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute(
            "SELECT profile_event_id::text FROM webhook_deliveries ORDER BY profile_event_id"
        )
        return [row[0] for row in await cursor.fetchall()]


async def _projected(url: str) -> int:
    """How many records the read models have taken, by the offsets stored with them."""
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute(
            "SELECT coalesce(sum(next_offset), 0) FROM projection_offsets"
        )
        (count,) = await cursor.fetchone()  # type: ignore[misc]
        return int(count)


async def _terminate_connections(url: str) -> int:
    """What a database restart does to its clients: every other connection to it ends
    (`AdminShutdown`, "terminating connection due to administrator command")."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        cursor = await connection.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (count,) = await cursor.fetchone()  # type: ignore[misc]
        return int(count)


async def test_the_projector_rides_out_a_database_restart_without_loss(
    stack: Stack, postgres_server: str
) -> None:
    log = history()
    half = len(log) // 2
    projector = Projector(stack.catalog, stack.bootstrap, stack.database_url, 20)
    stop = asyncio.Event()
    running = asyncio.create_task(projector.run(stop))
    await publish(stack, log[:half])
    await asyncio.wait_for(projector.caught_up.wait(), 60)
    for _ in range(50):
        if projector.health.ready:
            break
        await asyncio.sleep(0.1)
    assert projector.health.ready, projector.health.reason
    assert await _terminate_connections(stack.database_url) >= 1
    projector.caught_up.clear()
    # Noticed while idle (the connection is checked once a second), not at the next write.
    for _ in range(50):
        if not projector.health.ready:
            break
        await asyncio.sleep(0.1)
    assert not projector.health.ready
    assert "database" in (projector.health.reason or "")
    await publish(stack, log[half:])
    # Caught up with every record published: a fetch that finds nothing may come before the
    # new records reach the fetcher, right after the connection is back.
    deadline = asyncio.get_running_loop().time() + 60
    while await _projected(stack.database_url) < len(log):
        assert asyncio.get_running_loop().time() < deadline, "the projector did not catch up"
        projector.caught_up.clear()
        await asyncio.wait_for(projector.caught_up.wait(), 60)
    assert not running.done(), "the projector must not exit on a lost connection"
    stop.set()
    await running
    rows = await dump(stack.database_url)
    assert rows["profile_events"], "the records after the dead letters are applied"
    with fresh_database(postgres_server) as reference:
        await project_all(stack, url=reference)
        expected = await dump(reference)
    for table in DERIVED:
        assert rows[table] == expected[table], table


async def test_a_record_the_read_models_cannot_take_is_dead_lettered_and_the_rest_applied(
    stack: Stack, postgres_server: str
) -> None:
    log = history()
    half = len(log) // 2
    snapshot = next(r for r in log if r.topic == "profile_snapshots")
    beyond_bigint = orjson.loads(snapshot.value) | {"version": 2**70}
    poison = [
        dataclasses.replace(snapshot, value=json.dumps(beyond_bigint).encode()),
        dataclasses.replace(snapshot, topic="profile_events", value=b'{"profile_id": "x"'),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await publish(stack, log[:half])
    await producer.start()
    try:
        for record in poison:
            await producer.send(stack.catalog[record.topic].name, record.value, key=b"poison")
        await producer.flush()
    finally:
        await producer.stop()
    await publish(stack, log[half:])
    projector = await project_all(stack, batch_size=20)
    # /ready says what it kept aside.
    assert projector.health.counts == {"dead_letters": 2}
    async with await psycopg.AsyncConnection.connect(stack.database_url) as connection:
        cursor = await connection.execute(
            "SELECT topic, reason FROM projection_dead_letters ORDER BY topic"
        )
        kept = await cursor.fetchall()
    assert [(topic.rsplit(".", 1)[-1], reason.split(":")[0]) for topic, reason in kept] == [
        ("events", "JSONDecodeError"),
        ("snapshots", "InvalidTextRepresentation"),
    ]
    rows = await dump(stack.database_url)
    assert rows["profile_events"], "the records after the dead letters are applied"
    with fresh_database(postgres_server) as reference:
        await project_all(stack, url=reference)
        expected = await dump(reference)
    for table in DERIVED:
        assert rows[table] == expected[table], table
