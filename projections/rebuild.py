"""Rebuilding a read model from the topics beside the live one, then swapping it in.

    subledger replay --projection read_models [--from-beginning | --since ISO]

1. A shadow schema gets the derived tables (`tables.DERIVED`), empty; with `--since`,
   a copy of the live rows and the offsets they were projected up to.
2. The replayer reads the topics itself (no Faust, no consumer group) from the start,
   up to where the live projector has got: what lies beyond is the projector's to write
   and to fan out to webhooks, so a rebuild sends none. Topics no projector has read
   (a first build, or a new processor version's, `subledger reprocess`) are read to
   their end, and the projector goes on from there after the swap. With `--since`, records older
   than the instant are skipped where the copy holds them already; the rest are written
   over the copy. Each batch is one transaction with the shadow's own offsets, so an
   interrupted rebuild resumes where it stopped, and any batching gives the same rows.
3. Holding the projector between two of its transactions (`WRITE_LOCK`), it reads the
   last records up to the live offsets, and in one transaction the shadow's tables take
   the live ones' place. The query API reads the live tables until that commit.

A rebuild from scratch (no `--since`) loads what is there when it starts in bulk: large
chunks, each one transaction with its offsets, newest snapshot per profile in a chunk,
events copied straight into a table without its key. Duplicated events and those of
erased profiles are removed once, and the key made, before the rebuild reads on as above.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from projections import tables
from projections.projector import (
    NAME,
    SOURCES,
    WRITE_LOCK,
    Connection,
    Mode,
    Writer,
    collect,
    prepare,
    prepare_rows,
    source_consumer,
    stored_offsets,
    write_rows,
)
from projections.rows import COLUMNS, Batch
from runtime.catalog import Catalog
from runtime.kafka import end_offsets, fetch_max_wait_ms
from runtime.settings import BrokerFlavor

PROJECTIONS = (NAME,)
# Only one rebuild of a projection at a time.
REBUILD_LOCK = 0x5B1ED6E3
# How often the first phase looks again at how far the live projector has got.
FOLLOW_SECONDS = 2.0
# A bulk chunk holds this many batches' worth of records.
BULK_BATCHES = 25

Offsets = dict[tuple[str, int], int]


class RebuildError(Exception):
    """A rebuild that cannot start: another one runs, or the projection is unknown."""


@dataclass
class Progress:
    """How far a rebuild has read: records done out of those it has to read."""

    done: int = 0
    total: int = 0
    written: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None


def shadow_of(projection: str) -> str:
    return f"rebuild_{projection}"


def _ddl(schema: str) -> tuple[list[str], list[str]]:
    """CREATE statements for the derived tables and the offsets in `schema`, and for their
    secondary indexes, with the very names the migrations give them in public. The
    indexes are made once the bulk of the rows is in: one sort each instead of an update
    per row."""
    copy = MetaData()
    made = [
        table.to_metadata(copy, schema=schema)
        for table in (*tables.DERIVED, tables.projection_offsets)
    ]
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    create = [str(CreateTable(table).compile(dialect=dialect)) for table in made]
    indexes = [
        str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
        for table in made
        for index in table.indexes
    ]
    return create, indexes


class Rebuild:
    def __init__(
        self,
        catalog: Catalog,
        bootstrap: str,
        dsn: str,
        *,
        projection: str = NAME,
        since: datetime | None = None,
        batch_size: int = 2000,
        bulk_size: int | None = None,
        flavor: BrokerFlavor = BrokerFlavor.TANSU,
        report: Callable[[Progress], None] | None = None,
    ) -> None:
        if projection not in PROJECTIONS:
            raise RebuildError(f"no projection {projection!r}; there is {', '.join(PROJECTIONS)}")
        self.catalog = catalog
        self.bootstrap = bootstrap
        self.dsn = dsn
        self.projection = projection
        self.since = since
        self.batch_size = batch_size
        self.bulk_size = bulk_size or batch_size * BULK_BATCHES
        self.flavor = flavor
        self.fetch_wait_ms = fetch_max_wait_ms(flavor)
        self.report = report or (lambda _: None)
        self.shadow = shadow_of(projection)
        self.partitions = [
            TopicPartition(catalog[t].name, p)
            for t in SOURCES
            for p in range(catalog[t].partitions)
        ]
        self.topics = {catalog[t].name: t for t in SOURCES}
        self.progress = Progress()
        self.following = True

    async def run(self) -> Progress:
        admin = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        writes = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        consumer = source_consumer(self.bootstrap, self.fetch_wait_ms)
        writer: _Sink | None = None
        try:
            locked = await _fetch(admin, "SELECT pg_try_advisory_lock(%s)", (REBUILD_LOCK,))
            if not locked:
                raise RebuildError(f"another rebuild of {self.projection} is running")
            copied, bulk = await self._shadow(admin)
            await writes.execute(f"SET search_path TO {self.shadow}, public")
            await prepare(writes)
            positions = await stored_offsets(writes, self.projection)
            await consumer.start()
            consumer.assign(self.partitions)
            for tp in self.partitions:
                consumer.seek(tp, positions.get((tp.topic, tp.partition), 0))
            live = await stored_offsets(admin, self.projection)
            self.following = any((tp.topic, tp.partition) in live for tp in self.partitions)
            reader = _Reader(self, consumer, positions, copied)
            if bulk:
                reader.sink = writer = loader = _Bulk(self, writes)
                await reader.read_to(await self._bounds(admin, consumer))
                await loader.finish()
            reader.sink = writer = _Batches(self, writes)
            # First phase: follow the live projector, which keeps running.
            while True:
                bounds = await self._bounds(admin, consumer)
                if not await reader.read_to(bounds, for_seconds=FOLLOW_SECONDS):
                    break
            for statement in _ddl(self.shadow)[1]:
                await admin.execute(statement)
            # Then hold it between two transactions, read the rest and take its place.
            await admin.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
            try:
                await reader.read_to(await self._bounds(admin, consumer))
                await self._swap(admin)
            finally:
                await admin.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))
            await admin.execute(f"DROP SCHEMA IF EXISTS retired_{self.projection} CASCADE")
            return self.progress
        finally:
            if writer is not None:
                await writer.abandon()
            await consumer.stop()
            await writes.close()
            await admin.close()

    async def _shadow(self, admin: Connection) -> tuple[Offsets, bool]:
        """Create the shadow schema, or find the one an interrupted rebuild left; return
        the offsets a `--since` copy of the live rows was taken at, and whether the bulk
        load of a rebuild from scratch is still to do."""
        wanted = {
            "since": self.since.isoformat() if self.since else None,
            "sources": sorted(self.topics),
        }
        exists = await _fetch(
            admin,
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)",
            (self.shadow,),
        )
        if exists:
            found = await _fetch(admin, f"SELECT plan FROM {self.shadow}.rebuild_plan")
            if found is not None and {k: found.get(k) for k in wanted} == wanted:
                kept = {(t, int(p)): o for t, p, o in found["copied"]}
                return kept, bool(found.get("bulk"))
        async with admin.transaction():
            await admin.execute(f"DROP SCHEMA IF EXISTS {self.shadow} CASCADE")
            await admin.execute(f"CREATE SCHEMA {self.shadow}")
            for statement in _ddl(self.shadow)[0]:
                await admin.execute(statement)
            if self.since is None:
                # Events are copied in without their key, which is made after the load.
                await admin.execute(
                    f"ALTER TABLE {self.shadow}.profile_events DROP CONSTRAINT profile_events_pkey"
                )
            await admin.execute(f"CREATE TABLE {self.shadow}.rebuild_plan (plan jsonb NOT NULL)")
        copied: Offsets = {}
        async with admin.transaction():
            if self.since is not None:
                # The live rows and the offsets they were projected up to, as one snapshot.
                await admin.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                for table in tables.DERIVED:
                    await admin.execute(
                        f"INSERT INTO {self.shadow}.{table.name} SELECT * FROM public.{table.name}"
                    )
                copied = await stored_offsets(admin, self.projection)
            # Written last: a shadow without its plan is made again from scratch.
            plan = {
                **wanted,
                "copied": [[t, p, o] for (t, p), o in copied.items()],
                "bulk": self.since is None,
            }
            await admin.execute(
                f"INSERT INTO {self.shadow}.rebuild_plan VALUES (%s)", (json.dumps(plan),)
            )
        return copied, self.since is None

    async def _bounds(self, admin: Connection, consumer: AIOKafkaConsumer) -> Offsets:
        """Where to read to: where the live projector has got; or, when no projector reads
        these topics (the first build of a model, or the topics of a new processor
        version), their ends."""
        if self.following:
            return await stored_offsets(admin, self.projection)
        ends = await end_offsets(self.bootstrap, self.partitions, self.flavor)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def _swap(self, admin: Connection) -> None:
        """The shadow's tables take the live ones' place, and its offsets are the live
        projector's from then on (the same ones, unless it read topics no projector did)."""
        retired = f"retired_{self.projection}"
        async with admin.transaction():
            await admin.execute(
                "INSERT INTO public.projection_offsets AS o "
                f"SELECT * FROM {self.shadow}.projection_offsets WHERE projection = %s "
                "ON CONFLICT (projection, topic, partition) DO UPDATE "
                "SET next_offset = EXCLUDED.next_offset",
                (self.projection,),
            )
            await admin.execute(f"DROP SCHEMA IF EXISTS {retired} CASCADE")
            await admin.execute(f"CREATE SCHEMA {retired}")
            for table in tables.DERIVED:
                await admin.execute(f"ALTER TABLE public.{table.name} SET SCHEMA {retired}")
                await admin.execute(f"ALTER TABLE {self.shadow}.{table.name} SET SCHEMA public")
            await admin.execute(f"DROP SCHEMA {self.shadow} CASCADE")


class _Sink(Protocol):
    """Where a reader's records go, and when they are written."""

    def written(self) -> int: ...

    def add(self, records: list[ConsumerRecord]) -> None: ...

    async def submit(self, offsets: Offsets) -> None: ...

    async def drain(self) -> None: ...

    async def abandon(self) -> None: ...


class _Batches:
    """Each fetch is one batch, written as the live projector writes it (but sending no
    webhook, and with `--since` writing over the copy)."""

    def __init__(self, rebuild: Rebuild, writes: Connection) -> None:
        self.topics = rebuild.topics
        self.batch = Batch()
        self.writer = Writer(
            writes, rebuild.projection, Mode(fan_out=False, overwrite=rebuild.since is not None)
        )

    def written(self) -> int:
        return self.writer.rows

    def add(self, records: list[ConsumerRecord]) -> None:
        collect(records, self.topics, self.batch)

    async def submit(self, offsets: Offsets) -> None:
        batch, self.batch = self.batch, Batch()
        await self.writer.submit(batch, offsets)

    async def drain(self) -> None:
        await self.writer.drain()

    async def abandon(self) -> None:
        await self.writer.abandon()


class _Bulk:
    """Chunks of many batches, each one transaction with the offsets after it: events
    copied straight into their table, the newest snapshot of each profile in the chunk
    upserted. The next chunk is read while PostgreSQL writes one."""

    COPY_EVENTS = f"COPY profile_events ({', '.join(COLUMNS['profile_events'])}) FROM STDIN"

    def __init__(self, rebuild: Rebuild, writes: Connection) -> None:
        self.rebuild = rebuild
        self.connection = writes
        self._new_chunk()
        self._pending: asyncio.Task[int] | None = None
        self.rows = 0

    def written(self) -> int:
        return self.rows

    def _new_chunk(self) -> None:
        self.batch = Batch()
        self.offsets: Offsets = {}
        self.records = 0

    def add(self, records: list[ConsumerRecord]) -> None:
        self.records += len(records)
        collect(records, self.rebuild.topics, self.batch)

    async def submit(self, offsets: Offsets) -> None:
        self.offsets.update(offsets)
        if self.records >= self.rebuild.bulk_size:
            await self._flush()

    async def _flush(self) -> None:
        if not self.offsets:
            return
        # The chunk's events go straight into their table, not through staging.
        events, self.batch.events = self.batch.events, []
        prepared = prepare_rows(self.batch, self.offsets)
        self._new_chunk()
        await self._wait()
        self._pending = asyncio.create_task(self._write(prepared, events))

    async def _write(self, prepared: Any, events: list[tuple[Any, ...]]) -> int:
        async with self.connection.transaction():
            async with self.connection.cursor().copy(self.COPY_EVENTS) as copy:
                for row in events:
                    await copy.write_row(row)
            written = await write_rows(
                self.connection, prepared, self.rebuild.projection, Mode(fan_out=False)
            )
        return written.rows + len(events)

    async def drain(self) -> None:
        await self._flush()
        await self._wait()

    async def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.rows += await pending

    async def abandon(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                await self._pending
            self._pending = None

    async def finish(self) -> None:
        """Write the last chunk; then remove what the live projector would never have
        stored (an event twice: the first read stays; events of erased profiles) and make
        the events' key, in one transaction with the end of the bulk load."""
        await self.drain()
        shadow = self.rebuild.shadow
        async with self.connection.transaction():
            await self.connection.execute(
                "DELETE FROM profile_events e USING profile_tombstones t "
                "WHERE e.profile_id = t.profile_id"
            )
            try:
                async with self.connection.transaction():
                    await self.connection.execute(ADD_EVENTS_KEY)
            except psycopg.errors.UniqueViolation:
                await self.connection.execute(
                    "DELETE FROM profile_events a USING profile_events b "
                    "WHERE a.profile_event_id = b.profile_event_id "
                    "AND (a.sequence, a.ctid) > (b.sequence, b.ctid)"
                )
                await self.connection.execute(ADD_EVENTS_KEY)
            await self.connection.execute(
                f"UPDATE {shadow}.rebuild_plan SET plan = plan || '{{\"bulk\": false}}'"
            )


ADD_EVENTS_KEY = "ALTER TABLE profile_events ADD PRIMARY KEY (profile_event_id)"


class _Reader:
    """Reads the source partitions up to given offsets into its sink."""

    def __init__(
        self,
        rebuild: Rebuild,
        consumer: AIOKafkaConsumer,
        positions: Offsets,
        copied: Offsets,
    ) -> None:
        self.rebuild = rebuild
        self.consumer = consumer
        self.positions = {
            (tp.topic, tp.partition): positions.get((tp.topic, tp.partition), 0)
            for tp in rebuild.partitions
        }
        self.start = dict(self.positions)
        self.copied = copied
        since = rebuild.since
        self.since_ms = int(since.timestamp() * 1000) if since is not None else None
        self._sink: _Sink | None = None
        self._written = 0  # by the sinks before this one

    @property
    def sink(self) -> _Sink:
        assert self._sink is not None
        return self._sink

    @sink.setter
    def sink(self, sink: _Sink) -> None:
        if self._sink is not None:
            self._written += self._sink.written()
        self._sink = sink

    async def read_to(self, bounds: Offsets, for_seconds: float | None = None) -> bool:
        """Read every partition up to its bound (a partition the live projector has not
        read has bound 0). With `for_seconds`, give up after that long and answer whether
        there is more to read; without, read it all."""
        progress = self.rebuild.progress
        behind = {
            where: bounds.get(where, 0)
            for where, position in self.positions.items()
            if position < bounds.get(where, 0)
        }
        progress.total = progress.done + sum(b - self.positions[w] for w, b in behind.items())
        deadline = None if for_seconds is None else time.monotonic() + for_seconds
        while behind and (deadline is None or time.monotonic() < deadline):
            self.consumer.pause(
                *(tp for tp in self.rebuild.partitions if (tp.topic, tp.partition) not in behind)
            )
            self.consumer.resume(
                *(tp for tp in self.rebuild.partitions if (tp.topic, tp.partition) in behind)
            )
            fetched = await self.consumer.getmany(
                timeout_ms=200, max_records=self.rebuild.batch_size
            )
            offsets = {}
            for tp, records in fetched.items():
                where = (tp.topic, tp.partition)
                bound = behind.get(where)
                if bound is None:
                    continue
                kept = [r for r in records if self.positions[where] <= r.offset < bound]
                if not kept:
                    continue
                self.sink.add(self._wanted(where, kept))
                progress.done += kept[-1].offset + 1 - self.positions[where]
                self.positions[where] = offsets[where] = kept[-1].offset + 1
                if self.positions[where] >= bound:
                    del behind[where]
                if kept[-1].offset + 1 < records[-1].offset + 1:
                    # Read past the bound: start there again when there is more to read.
                    self.consumer.seek(tp, self.positions[where])
            if offsets:
                await self.sink.submit(offsets)
                self.rebuild.report(progress)
        await self.sink.drain()
        progress.written = self._written + self.sink.written()
        self.rebuild.report(progress)
        return bool(behind)

    def _wanted(self, where: tuple[str, int], records: list[ConsumerRecord]) -> list[Any]:
        """With `--since`, a record the copy holds already and older than the instant is
        skipped; otherwise every record is written."""
        if self.since_ms is None:
            return records
        copied = self.copied.get(where, 0)
        return [r for r in records if r.offset >= copied or r.timestamp >= self.since_ms]


async def _fetch(connection: Connection, query: str, params: tuple[Any, ...] = ()) -> Any:
    cursor = await connection.execute(query, params)
    row = await cursor.fetchone()
    return None if row is None else row[0]
