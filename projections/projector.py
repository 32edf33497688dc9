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
from collections.abc import Callable, Coroutine, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import Counter, Histogram
from psycopg import sql

from projections import tables
from projections.rows import CHILD_ROWS, COLUMNS, Batch, Row, profile_row
from runtime.catalog import Catalog
from runtime.health import CONSUMER_LAG, Health, lag_reason
from runtime.kafka import fetch_max_wait_ms, silence_reason
from runtime.reconnect import reconnecting
from runtime.settings import BrokerFlavor

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
DEAD_LETTERS = Counter(
    "subledger_projection_dead_letters_total",
    "Records the projector could not apply, kept in projection_dead_letters",
)
OUTCOMES_PRUNED = Counter(
    "subledger_projection_outcomes_pruned_total", "Command outcomes past their topic's retention"
)
Connection = psycopg.AsyncConnection[tuple[Any, ...]]
T = TypeVar("T")
ERASED = [t.name for t in (tables.profiles, tables.profile_events, *tables.PROFILE_CHILDREN)]


@dataclass(frozen=True)
class Written:
    records: int
    rows: int


def _staging(table: str) -> str:
    return f"incoming_{table}"


async def prepare(connection: Connection) -> None:
    """Temporary tables shaped like their targets, emptied at every commit."""
    # The read models are rebuilt from the topics, and each transaction stores its own
    # offsets: a commit lost in a server crash is read again, so it need not wait for disk.
    await connection.execute("SET synchronous_commit = off")
    # A batch's staging rows stay in memory (set before the first temporary table is used).
    await connection.execute("SET temp_buffers = '64MB'")
    async with connection.transaction():
        for table in (
            "profiles",
            "profile_events",
            "command_outcomes",
            "transaction_ids",
            *CHILD_ROWS,
        ):
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
            await copy.write_row(tuple(map(_storable, row)))
            count += 1
    return count


def _storable(value: object) -> object:
    """A value PostgreSQL's text keeps: NUL (which it refuses, raw or as a JSON escape)
    becomes U+FFFD. The boundaries refuse NUL; this keeps a record that got past them
    (written by an older version, say) from stopping the read models for good."""
    if isinstance(value, str) and ("\x00" in value or "\\u0000" in value):
        return value.replace("\x00", "\ufffd").replace("\\u0000", "\\ufffd")
    if isinstance(value, list) and any(isinstance(v, str) and "\x00" in v for v in value):
        return [v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in value]
    return value


# An event read twice (a redelivery) is kept as first read, with its lower sequence.
STORE_EVENTS = f"""
        INSERT INTO profile_events
        SELECT DISTINCT ON (profile_event_id) i.* FROM {_staging("profile_events")} i
        WHERE NOT EXISTS (SELECT 1 FROM profile_tombstones t WHERE t.profile_id = i.profile_id)
        ORDER BY profile_event_id, sequence
"""
# Each newly stored event fans out to the webhook endpoints that want it (an event stored
# before, as in a redelivery or replay, is never sent again). An erased profile's events
# are not stored, but its deletion notice still goes out, whether its tombstone came
# before it or after (they travel on different topics); the delivery's id keeps it to
# one delivery per endpoint.
INSERT_EVENTS = f"""
    WITH inserted AS ({STORE_EVENTS}
        ON CONFLICT (profile_event_id) DO NOTHING
        RETURNING profile_event_id, profile_id, event_type, sequence, environment, event
    ), notices AS (
        SELECT profile_event_id, profile_id, event_type, sequence, environment, event
        FROM {_staging("profile_events")} i
        WHERE event_type = 'profile_deleted' AND EXISTS (
            SELECT 1 FROM profile_tombstones t WHERE t.profile_id = i.profile_id)
    )
    INSERT INTO webhook_deliveries (
        webhook_id, endpoint_id, profile_event_id, profile_id, event_type, sequence, payload,
        status, attempts, next_attempt_at, created_at)
    SELECT 'msg_' || md5(w.endpoint_id::text || i.profile_event_id::text), w.endpoint_id,
           i.profile_event_id, i.profile_id, i.event_type, i.sequence, i.event::text,
           'pending', 0, now(), now()
    FROM (SELECT * FROM inserted UNION ALL SELECT * FROM notices) i JOIN webhook_endpoints w
      ON w.disabled_at IS NULL
     AND (cardinality(w.event_types) = 0 OR i.event_type = ANY(w.event_types))
     AND w.environment IN ('both', lower(coalesce(i.environment, 'Production')))
    ON CONFLICT DO NOTHING
"""
# Wakes the webhook dispatcher once the transaction commits.
NOTIFY_DELIVERIES = "NOTIFY subledger_webhooks"
# Wakes API calls waiting to read their own writes (api/commands.py) once it commits.
PROJECTED = "subledger_projected"


def _assignments(columns: Sequence[str], skip: str) -> str:
    return ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != skip)


# A rebuild (projections/rebuild.py) stores events without fanning them out, and when it
# rewrites a copy of the live model it lets what it reads replace what is there.
STORE_EVENTS_QUIETLY = STORE_EVENTS + " ON CONFLICT (profile_event_id) DO NOTHING"
REWRITE_EVENTS = (
    STORE_EVENTS
    + " ON CONFLICT (profile_event_id) DO UPDATE SET "
    + _assignments(COLUMNS["profile_events"], "profile_event_id")
)


@dataclass(frozen=True)
class Mode:
    """How a batch is written: live (fan out, keep newer rows) or by a rebuild."""

    fan_out: bool = True
    # Replace a stored row by one of the same version (a rebuild rewriting a copy).
    overwrite: bool = False


LIVE = Mode()


@dataclass(frozen=True)
class Prepared:
    """A batch's rows, made ahead of the transaction that writes them."""

    rows: dict[str, list[Row]]
    erased: list[tuple[str, int, str]]
    offsets: dict[tuple[str, int], int]
    records: int


def prepare_rows(batch: Batch, offsets: dict[tuple[str, int], int]) -> Prepared:
    live = list(batch.live())
    rows: dict[str, list[Row]] = {"profiles": [profile_row(v, raw) for v, raw in live]}
    for table, rows_of in CHILD_ROWS.items():
        rows[table] = [r for v, _ in live for r in rows_of(v)]
    rows["profile_events"] = batch.events
    rows["command_outcomes"] = list(batch.outcomes.values())
    rows["transaction_ids"] = sorted(batch.transaction_ids)
    return Prepared(rows, batch.erased(), dict(offsets), len(batch))


UPSERT_PROFILES = f"""
    WITH upserted AS (
        INSERT INTO profiles AS p SELECT i.* FROM {_staging("profiles")} i
        WHERE NOT EXISTS (SELECT 1 FROM profile_tombstones t WHERE t.profile_id = i.profile_id)
        ON CONFLICT (profile_id) DO UPDATE
        SET {_assignments(COLUMNS["profiles"], "profile_id")}
        WHERE (p.version, p.as_of) {{newer}} (EXCLUDED.version, EXCLUDED.as_of)
        RETURNING p.profile_id
    )
    INSERT INTO changed_profiles SELECT profile_id FROM upserted
"""
REPLACE_CHILDREN = "".join(
    f"""
    DELETE FROM {table} USING changed_profiles c WHERE {table}.profile_id = c.profile_id;
    INSERT INTO {table} SELECT i.* FROM {_staging(table)} i
        JOIN changed_profiles c ON c.profile_id = i.profile_id;"""
    for table in CHILD_ROWS
)
# A profile is found by every store id its events have named; only its erasure forgets them.
INSERT_TRANSACTION_IDS = f"""
    INSERT INTO transaction_ids SELECT i.* FROM {_staging("transaction_ids")} i
    WHERE NOT EXISTS (SELECT 1 FROM profile_tombstones t WHERE t.profile_id = i.profile_id)
    ON CONFLICT DO NOTHING
"""
INSERT_OUTCOMES = (
    f"INSERT INTO command_outcomes SELECT * FROM {_staging('command_outcomes')} "
    "ON CONFLICT (command_id) DO NOTHING"
)
REWRITE_OUTCOMES = (
    f"INSERT INTO command_outcomes SELECT * FROM {_staging('command_outcomes')} "
    "ON CONFLICT (command_id) DO UPDATE SET "
    + _assignments(COLUMNS["command_outcomes"], "command_id")
)
# Every live write holds this lock shared; a rebuild takes it alone to swap its tables in
# between two of the projector's transactions.
WRITE_LOCK = 0x5B1ED6E2


def _script(prepared: Prepared, projection: str, mode: Mode) -> sql.Composed:
    """Everything after the COPYs, as one round trip."""
    newer = "<=" if mode.overwrite else "<"
    if mode.fan_out:
        events = INSERT_EVENTS + ";" + NOTIFY_DELIVERIES
    else:
        events = REWRITE_EVENTS if mode.overwrite else STORE_EVENTS_QUIETLY
    outcomes = REWRITE_OUTCOMES if mode.overwrite else INSERT_OUTCOMES
    parts: list[sql.Composable] = [
        sql.SQL(UPSERT_PROFILES.replace("{newer}", newer) + ";" + REPLACE_CHILDREN),
        sql.SQL(outcomes + ";"),
    ]
    if prepared.rows.get("profile_events"):
        parts.append(sql.SQL(events + ";"))
    if prepared.rows.get("transaction_ids"):
        parts.append(sql.SQL(INSERT_TRANSACTION_IDS + ";"))
    if mode.fan_out and (prepared.rows["profiles"] or prepared.rows["command_outcomes"]):
        parts.append(sql.SQL(f"NOTIFY {PROJECTED};"))
    if prepared.erased:
        # GDPR erasure: every row of the profile goes; the tombstone keeps it gone.
        tombstones = sql.SQL(", ").join(
            sql.SQL("({}::uuid, {}, {}::timestamptz)").format(*map(sql.Literal, row))
            for row in prepared.erased
        )
        ids = sql.Literal([profile_id for profile_id, _, _ in prepared.erased])
        parts.append(
            sql.SQL(
                "INSERT INTO profile_tombstones (profile_id, version, deleted_at) VALUES {} "
                "ON CONFLICT (profile_id) DO NOTHING;"
            ).format(tombstones)
        )
        parts += [
            sql.SQL("DELETE FROM {} WHERE profile_id = ANY({}::uuid[]);").format(
                sql.Identifier(table), ids
            )
            for table in ERASED
        ]
        # Webhooks not yet sent carry personal data; the deletion notice itself still goes.
        parts.append(
            sql.SQL(
                "DELETE FROM webhook_deliveries WHERE profile_id = ANY({}::uuid[]) "
                "AND event_type <> 'profile_deleted';"
            ).format(ids)
        )
    if prepared.offsets:
        values = sql.SQL(", ").join(
            sql.SQL("({}, {}, {}, {})").format(*map(sql.Literal, (projection, t, p, o)))
            for (t, p), o in prepared.offsets.items()
        )
        parts.append(
            sql.SQL(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset) "
                "VALUES {} ON CONFLICT (projection, topic, partition) "
                "DO UPDATE SET next_offset = EXCLUDED.next_offset;"
            ).format(values)
        )
    return sql.Composed(parts)


async def write_rows(
    connection: Connection,
    prepared: Prepared,
    projection: str = NAME,
    mode: Mode = LIVE,
    copied: asyncio.Event | None = None,
) -> Written:
    """One transaction: the batch's rows and the offsets after it. `copied` is set once
    the rows are sent, as PostgreSQL starts on the statements that merge them in."""
    rows = 0
    async with connection.transaction():
        if mode.fan_out:
            await connection.execute("SELECT pg_advisory_xact_lock_shared(%s)", (WRITE_LOCK,))
        for table, table_rows in prepared.rows.items():
            rows += await _copy(connection, table, table_rows)
        if copied is not None:
            copied.set()
        await connection.execute(_script(prepared, projection, mode))
    ROWS_WRITTEN.inc(rows)
    return Written(prepared.records, rows)


async def write_batch(
    connection: Connection,
    batch: Batch,
    offsets: dict[tuple[str, int], int],
    projection: str = NAME,
    mode: Mode = LIVE,
) -> Written:
    return await write_rows(connection, prepare_rows(batch, offsets), projection, mode)


async def start_write(
    write: Callable[[asyncio.Event], Coroutine[Any, Any, T]],
) -> asyncio.Task[T]:
    """Start a write as a task, and return once it has sent its rows (`copied`).

    A task runs only while its caller waits: waiting here while the rows go out lets the
    caller prepare its next batch while PostgreSQL merges these. The write's own failure
    ends the wait too, and surfaces where the task is awaited."""
    copied = asyncio.Event()
    task = asyncio.create_task(write(copied))
    sent = asyncio.create_task(copied.wait())
    try:
        await asyncio.wait((sent, task), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # Stopped meanwhile: the write stops too (its transaction rolls back).
        task.cancel()
        with suppress(asyncio.CancelledError, psycopg.Error):
            await task
        raise
    finally:
        sent.cancel()
    return task


class Writer:
    """Writes batches in order, one transaction at a time, and lets the caller go on as
    soon as a batch's rows are sent: the caller reads and prepares the next batch while
    PostgreSQL merges the one before, so the projector's CPU and the database's overlap."""

    def __init__(self, connection: Connection, projection: str = NAME, mode: Mode = LIVE) -> None:
        self.connection = connection
        self.projection = projection
        self.mode = mode
        self._pending: asyncio.Task[Written] | None = None
        self.rows = 0

    async def submit(self, batch: Batch, offsets: dict[tuple[str, int], int]) -> None:
        prepared = prepare_rows(batch, offsets)
        await self.drain()
        self._pending = await start_write(
            lambda copied: write_rows(self.connection, prepared, self.projection, self.mode, copied)
        )

    async def drain(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.rows += (await pending).rows

    async def abandon(self) -> None:
        """Stop a write in flight (its transaction rolls back) before the connection goes."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
            with suppress(asyncio.CancelledError, psycopg.Error):
                await pending


# Outcomes leave the read model as their records leave `profile.outcomes`, a chunk at a
# time, so that a large backlog (the day after an upgrade) never holds up a batch for long.
PRUNE_OUTCOMES = """
    DELETE FROM command_outcomes WHERE command_id IN (
        SELECT command_id FROM command_outcomes
        WHERE recorded_at < now() - make_interval(secs => %s) LIMIT %s)
"""
PRUNE_EVERY = 60.0
PRUNE_CHUNK = 10_000


async def prune_outcomes(
    connection: Connection, retention_ms: int, chunk: int = PRUNE_CHUNK
) -> int:
    """Delete up to `chunk` outcomes recorded longer than `retention_ms` ago; how many went."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock_shared(%s)", (WRITE_LOCK,))
        cursor = await connection.execute(PRUNE_OUTCOMES, (retention_ms / 1000, chunk))
    OUTCOMES_PRUNED.inc(cursor.rowcount)
    return cursor.rowcount


DEAD_LETTER = """
    INSERT INTO projection_dead_letters (topic, partition, "offset", reason, value, recorded_at)
    VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT DO NOTHING
"""


async def dead_letter(
    connection: Connection,
    record: ConsumerRecord,
    error: Exception,
    offsets: dict[tuple[str, int], int],
) -> None:
    """Keep a record the read models cannot take, with why, and move past it: its offset
    commits with it. The log names the record, not what it holds."""
    reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    async with connection.transaction():
        await connection.execute(
            DEAD_LETTER, (record.topic, record.partition, record.offset, reason, record.value)
        )
        await write_batch(connection, Batch(), offsets)
    DEAD_LETTERS.inc()
    log.warning(
        "dead-lettered %s[%d]@%d: %s",
        record.topic,
        record.partition,
        record.offset,
        type(error).__name__,
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
        kind = topics[record.topic]
        if kind == "profile_events":
            batch.add_event(orjson.loads(record.value), raw, record.offset)
        elif kind == "profile_snapshots":
            batch.add_snapshot(orjson.loads(record.value), raw)
        else:
            recorded_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
            batch.add_outcome(orjson.loads(record.value), raw, recorded_at)


def source_consumer(bootstrap: str, fetch_wait_ms: int) -> AIOKafkaConsumer:
    """A consumer of the projector's topics, positioned by hand (offsets live in the
    database, not in a consumer group)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=fetch_wait_ms,
    )


class Projector:
    """Runs until stopped: consume, write one transaction per batch, repeat."""

    def __init__(
        self,
        catalog: Catalog,
        bootstrap: str,
        dsn: str,
        batch_size: int = 2000,
        flavor: BrokerFlavor = BrokerFlavor.TANSU,
        ready_lag: int = 1000,
    ) -> None:
        self.topics = {catalog[t].name: t for t in SOURCES}
        self.catalog = catalog
        self.bootstrap = bootstrap
        self.dsn = dsn
        self.batch_size = batch_size
        self.fetch_wait_ms = fetch_max_wait_ms(flavor)
        self.caught_up = asyncio.Event()
        self.health = Health("projector")
        self.ready_lag = ready_lag
        self._lag_at = float("-inf")
        retention = catalog["profile_outcomes"].retention_ms
        self.outcome_retention_ms = None if retention < 0 else retention
        self._pruned_at = float("-inf")
        self._checked_at = float("-inf")
        # The records of the batch whose write is in flight.
        self._in_flight: list[ConsumerRecord] = []

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Project until `stop`; a lost database connection is reopened with backoff, and
        projecting resumes from the offsets the database holds (nothing lost or doubled:
        they commit with the rows)."""
        stop = stop or asyncio.Event()
        await reconnecting("projector", self.health, lambda: self._session(stop), stop)

    async def _session(self, stop: asyncio.Event) -> None:
        connection = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        consumer = source_consumer(self.bootstrap, self.fetch_wait_ms)
        try:
            await prepare(connection)
            await consumer.start()
            await self._assign(consumer, connection)
            writer = Writer(connection)
            while not stop.is_set():
                await self._watch_lag(consumer)
                await self._prune(writer)
                fetched = await consumer.getmany(timeout_ms=100, max_records=self.batch_size)
                if not fetched:
                    await self._drain(writer)
                    await self._check(connection)
                    self.caught_up.set()
                    continue
                started = time.perf_counter()
                records = [r for batch_records in fetched.values() for r in batch_records]
                batch, offsets = Batch(), {}
                try:
                    for tp, tp_records in fetched.items():
                        collect(tp_records, self.topics, batch)
                        offsets[(tp.topic, tp.partition)] = tp_records[-1].offset + 1
                except ValueError:
                    # A record that is not a contract of ours: each is applied alone.
                    await self._drain(writer)
                    await self._one_by_one(connection, records)
                    continue
                await self._submit(writer, batch, offsets, records)
                BATCH_RECORDS.observe(len(records))
                BATCH_SECONDS.observe(time.perf_counter() - started)
            await self._drain(writer)
        finally:
            await consumer.stop()
            await connection.close()

    async def _submit(
        self,
        writer: Writer,
        batch: Batch,
        offsets: dict[tuple[str, int], int],
        records: list[ConsumerRecord],
    ) -> None:
        """Write the batch (after the one in flight); a batch the database refuses is
        applied record by record, and what it cannot take goes to the dead letters."""
        try:
            await writer.submit(batch, offsets)
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            await self._one_by_one(writer.connection, self._in_flight)
            await writer.submit(batch, offsets)
        self._in_flight = records

    async def _drain(self, writer: Writer) -> None:
        try:
            await writer.drain()
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            await self._one_by_one(writer.connection, self._in_flight)
        self._in_flight = []

    async def _one_by_one(self, connection: Connection, records: list[ConsumerRecord]) -> None:
        for record in records:
            offsets = {(record.topic, record.partition): record.offset + 1}
            try:
                batch = Batch()
                collect([record], self.topics, batch)
                await write_batch(connection, batch, offsets)
            except psycopg.OperationalError:
                raise
            except (psycopg.Error, ValueError, KeyError, TypeError) as error:
                await dead_letter(connection, record, error, offsets)
                await self._count_dead_letters(connection)

    async def _check(self, connection: Connection) -> None:
        """While idle, once a second: is the connection alive? (/ready reports the
        database, not the last statement's luck.)"""
        if time.monotonic() - self._checked_at < 1.0:
            return
        self._checked_at = time.monotonic()
        await self._count_dead_letters(connection)

    async def _count_dead_letters(self, connection: Connection) -> None:
        """How many records are kept aside, for /ready (the query also proves the
        connection alive)."""
        cursor = await connection.execute("SELECT count(*) FROM projection_dead_letters")
        (count,) = await cursor.fetchone() or (0,)
        self.health.count("dead_letters", int(count))

    async def _prune(self, writer: Writer) -> None:
        """Once a minute, the outcomes past their topic's retention go; while whole chunks
        go, a chunk between every two batches."""
        if self.outcome_retention_ms is None or time.monotonic() - self._pruned_at < PRUNE_EVERY:
            return
        await writer.drain()
        pruned = await prune_outcomes(writer.connection, self.outcome_retention_ms)
        self._pruned_at = float("-inf") if pruned == PRUNE_CHUNK else time.monotonic()

    async def _watch_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Once a second: lag per partition, and ready when within `ready_lag` records."""
        if time.monotonic() - self._lag_at < 1.0:
            return
        self._lag_at = time.monotonic()
        if reason := silence_reason(consumer):
            self.health.set(reason)
            return
        behind = 0
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is None:
                self.health.set(f"no offsets yet for {tp.topic}[{tp.partition}]")
                return
            lag = max(end - await consumer.position(tp), 0)
            CONSUMER_LAG.labels("projector", tp.topic, tp.partition).set(lag)
            behind += lag
        self.health.set(lag_reason(behind, self.ready_lag))

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
