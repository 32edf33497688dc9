"""`subledger dead-letters`: what the worker, the projector and the dispatcher could not
take, and re-driving it.

The worker keeps what it cannot fold on `subledger.deadletter` (a `DeadLetter` each: the
record as read, where from, why); the projector keeps what the read models cannot take in
`projection_dead_letters`. Re-driving publishes a record again to the topic it came from,
once whatever refused it is fixed; the folds know the ids they have seen, so a record
re-driven twice changes nothing the second time. The dispatcher's are the deliveries that
gave up (and those a disabled endpoint holds, listed only: enabling it sends them);
re-driving one sends it again under its own webhook-id.
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from enum import StrEnum
from typing import Annotated, Any

import orjson
import psycopg
import typer
from aiokafka import AIOKafkaProducer

from cli.stream import _bootstrap, _catalog, _database
from runtime.catalog import Catalog
from runtime.kafka import read_topic
from runtime.settings import Settings

dead_letters_app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True)


class Source(StrEnum):
    WORKER = "worker"
    PROJECTOR = "projector"
    DISPATCHER = "dispatcher"
    ALL = "all"


async def worker_letters(bootstrap: str, catalog: Catalog, settings: Settings) -> list[Any]:
    """Every dead letter on the worker's topic, oldest first in each partition."""
    spec = catalog["dead_letters"]
    records = await read_topic(bootstrap, spec.name, spec.partitions, settings.broker_flavor)
    return [orjson.loads(r.value) for r in records]


def projector_letters(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as connection:
        cursor = connection.execute(
            'SELECT topic, partition, "offset", reason, value, recorded_at '
            'FROM projection_dead_letters ORDER BY recorded_at, topic, partition, "offset"'
        )
        names = [c.name for c in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


UNDELIVERED = """
    SELECT d.delivery_id, d.endpoint_id, d.event_type, d.attempts, d.created_at,
           CASE WHEN d.status = 'failed' THEN coalesce(d.last_error, 'HTTP ' || d.last_status_code)
                ELSE 'the endpoint is disabled' END AS reason
    FROM webhook_deliveries d JOIN webhook_endpoints w USING (endpoint_id)
    WHERE d.status = 'failed' OR (d.status = 'pending' AND w.disabled_at IS NOT NULL)
    ORDER BY d.delivery_id
"""


def dispatcher_letters(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as connection:
        cursor = connection.execute(UNDELIVERED)
        names = [c.name for c in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dead_letters_app.command("list")
def list_letters(
    source: Annotated[Source, typer.Option(help="Whose dead letters.")] = Source.ALL,
) -> None:
    """Print each dead letter as a JSON line: where it came from, why, when (not its
    content, which may hold personal data)."""
    settings = Settings()
    catalog = _catalog(settings)
    with ExitStack() as stack:
        if source in (Source.WORKER, Source.ALL):
            bootstrap = _bootstrap(settings, stack)
            for letter in asyncio.run(worker_letters(bootstrap, catalog, settings)):
                _show("worker", letter["source_topic"], letter, letter["failed_at"])
        if source in (Source.PROJECTOR, Source.ALL):
            for row in projector_letters(_database(settings, stack)):
                _show("projector", row["topic"], row, row["recorded_at"].isoformat())
        if source in (Source.DISPATCHER, Source.ALL):
            for row in dispatcher_letters(_database(settings, stack)):
                line = {
                    "source": "dispatcher",
                    "delivery_id": row["delivery_id"],
                    "endpoint_id": str(row["endpoint_id"]),
                    "event_type": row["event_type"],
                    "attempts": row["attempts"],
                    "reason": row["reason"],
                    "at": row["created_at"].isoformat(),
                }
                typer.echo(orjson.dumps(line).decode())


def _show(source: str, topic: str, letter: dict[str, Any], at: str) -> None:
    line = {
        "source": source,
        "topic": topic,
        "partition": letter["partition"],
        "offset": letter["offset"],
        "reason": letter["reason"],
        "at": at,
    }
    typer.echo(orjson.dumps(line).decode())


@dead_letters_app.command()
def redrive(
    source: Annotated[Source, typer.Option(help="Whose dead letters.")] = Source.ALL,
) -> None:
    """Publish every dead letter again to the topic it came from; the projector's are
    removed once published (if refused again, they come back with their new offset)."""
    settings = Settings()
    catalog = _catalog(settings)
    with ExitStack() as stack:
        bootstrap = _bootstrap(settings, stack)
        records: list[tuple[str, bytes | None, bytes]] = []
        if source in (Source.WORKER, Source.ALL):
            for letter in asyncio.run(worker_letters(bootstrap, catalog, settings)):
                key = letter["key"].encode() if letter.get("key") is not None else None
                records.append((letter["source_topic"], key, letter["value"].encode()))
        rows: list[dict[str, Any]] = []
        url = None
        if source in (Source.PROJECTOR, Source.ALL):
            url = _database(settings, stack)
            rows = projector_letters(url)
            records += [(r["topic"], None, bytes(r["value"])) for r in rows]
        asyncio.run(_publish(bootstrap, records))
        if source in (Source.DISPATCHER, Source.ALL):
            with psycopg.connect(_database(settings, stack)) as connection:
                sent = connection.execute(
                    "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now() "
                    "WHERE status = 'failed'"
                ).rowcount
            typer.echo(f"re-driven: {sent} webhook deliveries", err=True)
        if url is not None and rows:
            with psycopg.connect(url) as connection:
                for r in rows:
                    connection.execute(
                        "DELETE FROM projection_dead_letters "
                        'WHERE topic = %s AND partition = %s AND "offset" = %s',
                        (r["topic"], r["partition"], r["offset"]),
                    )
    typer.echo(f"re-driven: {len(records)} records", err=True)


async def _publish(bootstrap: str, records: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
