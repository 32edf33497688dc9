"""Replay throughput: rebuilding the read models from the topics, beside the live projector.

    python -m bench.replay_throughput [--profiles 70000] [--versions 6]

Loads the embedded broker with `--profiles` profiles cloned from the scenario corpus
(`bench.projection_throughput.clones`): each profile's snapshot published `--versions`
times (version 1, 2, ... as a profile's snapshots follow its inputs) and its events,
over 1M records by default. Measured in one run, on one PostgreSQL:

- projector: the live `Projector` from the first offset to the last (the baseline);
- replay: `subledger replay`'s `Rebuild` of the same records into a shadow schema, up to
  where the projector got, swap included.

Uses DATABASE_URL when set (a fresh database is made on that server), else an embedded
PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import orjson
import psycopg
from aiokafka import AIOKafkaProducer

from bench.cpu import CpuSince
from bench.projection_throughput import clones, fresh
from projections.projector import Projector, stored_offsets
from projections.rebuild import Rebuild
from runtime.broker import EmbeddedBroker
from runtime.catalog import Catalog, load_catalog
from runtime.postgres import embedded_postgres
from runtime.topics import apply_topics


def records(profiles: int, versions: int) -> list[tuple[str, bytes, bytes]]:
    """(topic id, key, value): each snapshot in `versions` versions, then its events."""
    out: list[tuple[str, bytes, bytes]] = []
    for topic, record in clones(profiles):
        key = record["profile_id"].encode()
        if topic == "profile_snapshots":
            for version in range(1, versions + 1):
                out.append((topic, key, orjson.dumps({**record, "version": version})))
        else:
            out.append((topic, key, orjson.dumps(record)))
    return out


async def load(bootstrap: str, catalog: Catalog, items: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1_048_576, acks="all"
    )
    await producer.start()
    try:
        for topic, key, value in items:
            await producer.send(catalog[topic].name, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def project(catalog: Catalog, bootstrap: str, url: str, expected: int, size: int) -> float:
    projector = Projector(catalog, bootstrap, url, size)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(projector.run(stop))
    async with await psycopg.AsyncConnection.connect(url) as connection:
        while sum((await stored_offsets(connection)).values()) < expected:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return elapsed


async def main(profiles: int, versions: int, size: int) -> None:
    items = records(profiles, versions)
    snapshots = sum(1 for topic, _, _ in items if topic == "profile_snapshots")
    print(
        f"{len(items):,} records: {snapshots:,} snapshots ({profiles:,} profiles x {versions} "
        f"versions) and {len(items) - snapshots:,} events; batch {size}",
        flush=True,
    )
    with ExitStack() as stack:
        server = os.environ.get("DATABASE_URL") or stack.enter_context(
            embedded_postgres(Path(tempfile.mkdtemp()) / "pg", delete=True)
        )
        broker = stack.enter_context(EmbeddedBroker())
        catalog = load_catalog().with_prefix("bench.")
        await apply_topics(catalog, broker.bootstrap)
        started = time.perf_counter()
        await load(broker.bootstrap, catalog, items)
        print(f"loaded in {time.perf_counter() - started:.1f}s", flush=True)
        url = await fresh(server, "bench_replay")
        seconds = await project(catalog, broker.bootstrap, url, len(items), size)
        live = len(items) / seconds
        print(f"projector : {len(items):,} records in {seconds:.1f}s = {live:,.0f} records/s")
        rebuild = Rebuild(catalog, broker.bootstrap, url, batch_size=size)
        started, mine = time.perf_counter(), time.process_time()
        database, kafka = CpuSince.of_command("postgres"), CpuSince.of_command("tansu")
        progress = await rebuild.run()
        seconds = time.perf_counter() - started
        rate = progress.done / seconds
        print(
            f"replay    : {progress.done:,} records in {seconds:.1f}s = {rate:,.0f} records/s "
            f"({progress.written:,} rows; {rate / live:.1f}x the projector; target 100,000/s)"
        )
        print(
            f"CPU during the replay: replay process {time.process_time() - mine:.1f}s, "
            f"PostgreSQL {database.used():.1f}s, broker {kafka.used():.1f}s, "
            f"in {seconds:.1f}s on {os.cpu_count()} cores"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=70_000)
    parser.add_argument("--versions", type=int, default=6)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.profiles, args.versions, args.batch))
