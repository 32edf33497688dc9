"""Projection throughput into PostgreSQL over one connection, beside a naive baseline.

    python -m bench.projection_throughput [--profiles 50000] [--batch 2000]

Snapshots and events are cloned from profiles the in-memory ledger folded from the
scenario corpus (so rows have real shapes: access levels, subscriptions, purchases,
attributes, transaction ids), each clone with its own ids. Measured in one run:

- copy+upsert: `projections.projector.Writer`, straight into the database;
- naive: the same rows, one INSERT ... ON CONFLICT statement per row (executemany);
- projector: the records on the embedded broker, consumed and written by the real
  `Projector` from the first offset until every record is in.

Uses DATABASE_URL when set (a fresh database is made on that server), else an embedded
PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson
import psycopg
from aiokafka import AIOKafkaProducer

from projections.migrate import upgrade
from projections.projector import Projector, Writer, prepare, stored_offsets
from projections.rows import CHILD_ROWS, COLUMNS, Batch, profile_row
from runtime.broker import EmbeddedBroker
from runtime.catalog import load_catalog
from runtime.postgres import embedded_postgres, with_database
from runtime.topics import apply_topics
from tests.corpus import corpus
from tests.history import records


def templates() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    creates, rest = corpus(40)
    views: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    for record in records([*creates, *rest]):
        if record.topic == "profile_snapshots":
            views[str(record.json["profile_id"])] = record.json
        elif record.topic == "profile_events":
            events.append(record.json)
    return list(views.values()), events


def clones(profiles: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """(topic id, record) for `profiles` profiles: a snapshot and its events each."""
    views, events = templates()
    by_profile: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_profile.setdefault(event["profile_id"], []).append(event)
    for n in range(profiles):
        view = views[n % len(views)]
        pid = str(uuid.UUID(int=n + 1))
        suffix = f"-{n}"
        clone = {
            **view,
            "profile_id": pid,
            "customer_user_id": f"user{suffix}",
            "transaction_ids": [t + suffix for t in view.get("transaction_ids", ())],
        }
        yield "profile_snapshots", clone
        for event in by_profile.get(view["profile_id"], ()):
            yield (
                "profile_events",
                {**event, "profile_id": pid, "profile_event_id": str(uuid.uuid4())},
            )


def batches(
    items: list[tuple[str, bytes]], size: int
) -> Iterator[tuple[Batch, dict[tuple[str, int], int]]]:
    for start in range(0, len(items), size):
        batch = Batch()
        for offset, (topic, value) in enumerate(items[start : start + size], start=start):
            record = orjson.loads(value)
            if topic == "profile_snapshots":
                batch.add_snapshot(record, value.decode())
            else:
                batch.add_event(record, value.decode(), offset)
        yield batch, {("bench", 0): start + size}


async def copy_upsert(url: str, items: list[tuple[str, bytes]], size: int) -> tuple[int, float]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await prepare(connection)
        writer = Writer(connection)
        started = time.perf_counter()
        for batch, offsets in batches(items, size):
            await writer.submit(batch, offsets)
        await writer.drain()
        return writer.rows, time.perf_counter() - started


def _insert(table: str, key: tuple[str, ...]) -> str:
    columns = COLUMNS[table]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) {conflict}"
    )


KEYS = {
    "profiles": ("profile_id",),
    "profile_events": ("profile_event_id",),
    "access_levels": ("profile_id", "access_level_id"),
    "subscriptions": ("profile_id", "chain_key"),
    "non_subscriptions": ("profile_id", "purchase_id"),
    "transaction_ids": ("transaction_id", "profile_id"),
    "custom_attributes": ("profile_id", "key"),
    "notes": ("profile_id", "note_id"),
}


async def naive(url: str, items: list[tuple[str, bytes]], size: int) -> tuple[int, float]:
    """One statement per row, a transaction per batch: what an ORM-style writer does."""
    async with await psycopg.AsyncConnection.connect(url) as connection:
        rows, started = 0, time.perf_counter()
        for batch, _ in batches(items, size):
            per_table: dict[str, list[tuple[Any, ...]]] = {t: [] for t in KEYS}
            for view, raw in batch.live():
                per_table["profiles"].append(profile_row(view, raw))
                for table, rows_of in CHILD_ROWS.items():
                    per_table[table] += rows_of(view)
            per_table["profile_events"] = batch.events
            async with connection.transaction(), connection.cursor() as cursor:
                for table, table_rows in per_table.items():
                    if table_rows:
                        await cursor.executemany(_insert(table, KEYS[table]), table_rows)
                        rows += len(table_rows)
        return rows, time.perf_counter() - started


async def through_kafka(
    url: str, items: list[tuple[str, bytes]], size: int, rows: int
) -> tuple[float, float]:
    """Load the records on the embedded broker, then time the real projector over them."""
    with EmbeddedBroker() as broker:
        catalog = load_catalog().with_prefix("bench.")
        await apply_topics(catalog, broker.bootstrap)
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, linger_ms=20, max_batch_size=262_144
        )
        await producer.start()
        for topic, value in items:
            key = orjson.loads(value)["profile_id"].encode()
            await producer.send(catalog[topic].name, value, key=key)
        await producer.flush()
        await producer.stop()
        expected = len(items)
        projector = Projector(catalog, broker.bootstrap, url, size)
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(projector.run(stop))
        async with await psycopg.AsyncConnection.connect(url) as connection:
            while True:
                offsets = await stored_offsets(connection)
                if sum(offsets.values()) >= expected:
                    break
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
        return expected / elapsed, rows / elapsed


async def fresh(server: str, name: str) -> str:
    async with await psycopg.AsyncConnection.connect(server, autocommit=True) as admin:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    url = with_database(server, name)
    await asyncio.to_thread(upgrade, url)
    return url


async def main(profiles: int, size: int, naive_share: float) -> None:
    items = [(topic, orjson.dumps(record)) for topic, record in clones(profiles)]
    snapshots = sum(1 for topic, _ in items if topic == "profile_snapshots")
    print(f"{snapshots:,} snapshots and {len(items) - snapshots:,} events; batch {size}")
    with ExitStack() as stack:
        server = os.environ.get("DATABASE_URL") or stack.enter_context(
            embedded_postgres(Path(tempfile.mkdtemp()) / "pg", delete=True)
        )
        url = await fresh(server, "bench_copy")
        rows, seconds = await copy_upsert(url, items, size)
        print(f"copy+upsert : {rows:,} rows in {seconds:.2f}s = {rows / seconds:,.0f} rows/s")
        # A second pass: every row is a redelivery, guarded by version and skipped.
        again, again_seconds = await copy_upsert(url, items, size)
        print(
            f"redelivered : {again:,} rows offered in {again_seconds:.2f}s = "
            f"{again / again_seconds:,.0f} rows/s (all skipped by the version guard)"
        )
        sample = items[: int(len(items) * naive_share)]
        url = await fresh(server, "bench_naive")
        naive_rows, naive_seconds = await naive(url, sample, size)
        naive_rate = naive_rows / naive_seconds
        print(
            f"naive       : {naive_rows:,} rows in {naive_seconds:.2f}s = {naive_rate:,.0f} rows/s"
            f" (copy+upsert is {rows / seconds / naive_rate:.1f}x)"
        )
        url = await fresh(server, "bench_projector")
        records_rate, rows_rate = await through_kafka(url, items, size, rows)
        print(
            f"projector   : {records_rate:,.0f} records/s = {rows_rate:,.0f} rows/s "
            "(Kafka -> PostgreSQL, one connection)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--naive-share", type=float, default=0.2)
    args = parser.parse_args()
    asyncio.run(main(args.profiles, args.batch, args.naive_share))
