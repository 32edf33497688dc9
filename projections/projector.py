"""The read-model projector: profile snapshots, events and command outcomes into PostgreSQL.

It reads every partition of its topics itself (no consumer group) from the offsets stored
in the database, and writes each batch in one transaction:

1. COPY the batch into temporary tables (newest snapshot per profile);
2. upsert profiles whose (version, as_of) is newer than the stored row, and replace the
   child rows (access levels, subscriptions, ...) of exactly those profiles;
3. erase profiles whose snapshot says deleted, and remember them in `profile_tombstones`
   so that no replay or redelivery brings a row back;
4. insert events and outcomes by their ids (a duplicate is skipped);
5. store the next offsets.

So a redelivered or replayed record changes nothing, and a crash between two batches
resumes exactly after the last committed one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import Counter, Histogram

from projections import tables
from projections.rows import CHILD_ROWS, COLUMNS, Batch, Row, profile_row
from runtime.catalog import Catalog

log = logging.getLogger(__name__)

NAME = "read_models"
SOURCES = ("profile_snapshots", "profile_events", "profile_outcomes")

ROWS_WRITTEN = Counter("subledger_projection_rows_total", "Rows copied into the read models")
BATCH_RECORDS = Histogram(
    "subledger_projection_batch_records",
    "Records per projection transaction",
    buckets=(1, 10, 100, 500, 1000, 5000, 20000),
)
BATCH_SECONDS = Histogram("subledger_projection_batch_seconds", "Time to write one batch")
Connection = psycopg.AsyncConnection[tuple[Any, ...]]
ERASED = [t.name for t in (tables.profiles, tables.profile_events, *tables.PROFILE_CHILDREN)]


@dataclass(frozen=True)
class Written:
    records: int
    rows: int


def _staging(table: str) -> str:
    return f"incoming_{table}"


async def prepare(connection: Connection) -> None:
    """Temporary tables shaped like their targets, emptied at every commit."""
    async with connection.transaction():
        for table in ("profiles", "profile_events", "command_outcomes", *CHILD_ROWS):
            await connection.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_staging(table)} "
                f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
        await connection.execute(
            "CREATE TEMP TABLE IF NOT EXISTS changed_profiles (profile_id uuid PRIMARY KEY) "
            "ON COMMIT DELETE ROWS"
        )


async def _copy(connection: Connection, table: str, rows: Iterable[Row]) -> int:
    count = 0
    columns = ", ".join(COLUMNS[table])
    async with connection.cursor().copy(f"COPY {_staging(table)} ({columns}) FROM STDIN") as copy:
        for row in rows:
            await copy.write_row(row)
            count += 1
    return count


def _assignments(columns: Sequence[str], skip: str) -> str:
    return ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != skip)


async def write_batch(
    connection: Connection,
    batch: Batch,
    offsets: dict[tuple[str, int], int],
    projection: str = NAME,
) -> Written:
    """One transaction: the batch's rows and the offsets after it."""
    rows = 0
    async with connection.transaction():
        live = list(batch.live())
        rows += await _copy(connection, "profiles", (profile_row(v, raw) for v, raw in live))
        for table, rows_of in CHILD_ROWS.items():
            rows += await _copy(connection, table, (r for v, _ in live for r in rows_of(v)))
        rows += await _copy(connection, "profile_events", batch.events.values())
        rows += await _copy(connection, "command_outcomes", batch.outcomes.values())
        await connection.execute(
            f"""
            WITH upserted AS (
                INSERT INTO profiles AS p SELECT i.* FROM {_staging("profiles")} i
                WHERE NOT EXISTS (
                    SELECT 1 FROM profile_tombstones t WHERE t.profile_id = i.profile_id)
                ON CONFLICT (profile_id) DO UPDATE
                SET {_assignments(COLUMNS["profiles"], "profile_id")}
                WHERE (p.version, p.as_of) < (EXCLUDED.version, EXCLUDED.as_of)
                RETURNING p.profile_id
            )
            INSERT INTO changed_profiles SELECT profile_id FROM upserted
            """
        )
        for table in CHILD_ROWS:
            await connection.execute(
                f"DELETE FROM {table} USING changed_profiles c "
                f"WHERE {table}.profile_id = c.profile_id"
            )
            await connection.execute(
                f"INSERT INTO {table} SELECT i.* FROM {_staging(table)} i "
                "JOIN changed_profiles c ON c.profile_id = i.profile_id"
            )
        await connection.execute(
            f"""
            INSERT INTO profile_events SELECT i.* FROM {_staging("profile_events")} i
            WHERE NOT EXISTS (
                SELECT 1 FROM profile_tombstones t WHERE t.profile_id = i.profile_id)
            ON CONFLICT (profile_event_id) DO NOTHING
            """
        )
        await connection.execute(
            f"INSERT INTO command_outcomes SELECT * FROM {_staging('command_outcomes')} "
            "ON CONFLICT (command_id) DO NOTHING"
        )
        erased = batch.erased()
        if erased:
            await _erase(connection, erased)
        await _store_offsets(connection, projection, offsets)
    ROWS_WRITTEN.inc(rows)
    return Written(len(batch), rows)


async def _erase(connection: Connection, erased: list[tuple[str, int, str]]) -> None:
    """GDPR erasure: every row of the profile goes; the tombstone keeps it gone."""
    async with connection.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO profile_tombstones (profile_id, version, deleted_at) "
            "VALUES (%s, %s, %s) ON CONFLICT (profile_id) DO NOTHING",
            erased,
        )
    ids = [profile_id for profile_id, _, _ in erased]
    for table in ERASED:
        await connection.execute(f"DELETE FROM {table} WHERE profile_id = ANY(%s::uuid[])", (ids,))


async def _store_offsets(
    connection: Connection,
    projection: str,
    offsets: dict[tuple[str, int], int],
) -> None:
    async with connection.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO projection_offsets (projection, topic, partition, next_offset) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (projection, topic, partition) "
            "DO UPDATE SET next_offset = EXCLUDED.next_offset",
            [
                (projection, topic, partition, offset)
                for (topic, partition), offset in offsets.items()
            ],
        )


async def stored_offsets(
    connection: Connection, projection: str = NAME
) -> dict[tuple[str, int], int]:
    cursor = await connection.execute(
        "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = %s",
        (projection,),
    )
    return {(topic, partition): offset async for topic, partition, offset in cursor}


def collect(records: Iterable[ConsumerRecord], topics: dict[str, str], batch: Batch) -> None:
    """Add consumed records to `batch`, each by what its topic carries."""
    for record in records:
        raw = record.value.decode()
        value = orjson.loads(record.value)
        kind = topics[record.topic]
        if kind == "profile_snapshots":
            batch.add_snapshot(value, raw)
        elif kind == "profile_events":
            batch.add_event(value, raw, record.offset)
        else:
            batch.add_outcome(value, raw)


class Projector:
    """Runs until stopped: consume, write one transaction per batch, repeat."""

    def __init__(self, catalog: Catalog, bootstrap: str, dsn: str, batch_size: int = 2000) -> None:
        self.topics = {catalog[t].name: t for t in SOURCES}
        self.catalog = catalog
        self.bootstrap = bootstrap
        self.dsn = dsn
        self.batch_size = batch_size
        self.caught_up = asyncio.Event()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        connection = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        try:
            await prepare(connection)
            await consumer.start()
            await self._assign(consumer, connection)
            while not stop.is_set():
                fetched = await consumer.getmany(timeout_ms=100, max_records=self.batch_size)
                if not fetched:
                    self.caught_up.set()
                    continue
                await self._write(connection, fetched)
        finally:
            await consumer.stop()
            await connection.close()

    async def _assign(self, consumer: AIOKafkaConsumer, connection: Connection) -> None:
        partitions = [
            TopicPartition(self.catalog[t].name, p)
            for t in SOURCES
            for p in range(self.catalog[t].partitions)
        ]
        consumer.assign(partitions)
        stored = await stored_offsets(connection)
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)

    async def _write(
        self,
        connection: Connection,
        fetched: dict[TopicPartition, list[ConsumerRecord]],
    ) -> None:
        started = time.perf_counter()
        batch, offsets = Batch(), {}
        for tp, records in fetched.items():
            collect(records, self.topics, batch)
            offsets[(tp.topic, tp.partition)] = records[-1].offset + 1
        written = await write_batch(connection, batch, offsets)
        BATCH_RECORDS.observe(sum(len(r) for r in fetched.values()))
        BATCH_SECONDS.observe(time.perf_counter() - started)
        log.debug("projected %d records as %d rows", written.records, written.rows)
