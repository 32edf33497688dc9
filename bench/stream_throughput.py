"""Fold throughput of one stream worker, beside two baselines measured in the same run.

    python -m bench.stream_throughput [--events 1000000] [--profiles 100000]

It loads synthetic renewals (round-robin over the profiles) into the embedded broker, then
measures, on the same broker and input:

- subledger: one `subledger worker` folding chains and profiles, from start until the
  snapshot of every profile's last event is out (and from its first snapshot on);
- naive Faust: an agent that decodes and writes its table once per event (no batching);
- empty Faust: an agent that takes batches and does nothing: Faust's own cost per record,
  the ceiling of any Faust agent that reads each event as a record;
- ceiling: a plain aiokafka consumer that decodes and updates a dict, no output at all.

It ends with the worker's time per event beside the empty agent's per record, the budget
the targets (0.6 of the empty agent, 1.5x the naive one) leave beyond Faust's own cost,
and the pure steps of `bench.fold_costs` measured in the same run at the same history.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.fold_costs import TARGET, measure
from bench.traffic import renewals
from runtime.broker import EmbeddedBroker
from runtime.catalog import load_catalog
from runtime.collector import collect_seldom
from runtime.topics import apply_topics
from schemas.base import to_json

ROOT = Path(__file__).resolve().parents[1]


async def load(bootstrap: str, topic: str, events: int, profiles: int) -> dict[str, str]:
    """Produce the traffic; return each profile's last instant (what its last snapshot shows)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=262_144
    )
    await producer.start()
    last: dict[str, str] = {}
    started = time.perf_counter()
    for event in renewals(events, profiles):
        await producer.send(topic, to_json(event), key=event.chain_key.encode())
        last[str(event.profile.profile_id)] = event.received_at.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    await producer.flush()
    await producer.stop()
    print(f"loaded {events:,} events in {time.perf_counter() - started:.1f}s", flush=True)
    return last


async def wait_for_snapshots(
    bootstrap: str, topic: str, last: dict[str, str]
) -> tuple[float, float]:
    """Block until every profile's snapshot is as of its last event: (first seen, done)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
        max_poll_records=20_000,
    )
    await consumer.start()
    pending = dict(last)
    first = 0.0
    try:
        while pending:
            for messages in (await consumer.getmany(timeout_ms=500, max_records=20_000)).values():
                if not first:
                    first = time.perf_counter()
                for m in messages:
                    snap = orjson.loads(m.value)
                    pid = snap["profile_id"]
                    if pid in pending and snap["as_of"] >= pending[pid]:
                        del pending[pid]
        return first, time.perf_counter()
    finally:
        await consumer.stop()


async def ceiling(bootstrap: str, topic: str, events: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    revenue: dict[bytes, float] = {}
    seen = 0
    started = 0.0
    try:
        while seen < events:
            for messages in (await consumer.getmany(timeout_ms=500, max_records=20_000)).values():
                if not started:
                    started = time.perf_counter()
                for m in messages:
                    event = orjson.loads(m.value)
                    key = m.key
                    revenue[key] = revenue.get(key, 0.0) + float(event["transaction"]["price_usd"])
                seen += len(messages)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def faust_baseline(bootstrap: str, topic: str, events: int, mode: str) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.naive_faust",
            bootstrap,
            topic,
            f"{mode}-{os.getpid()}",
            str(events),
            mode,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    # Faust sends a worker's stdout to its log, so the figure may come on either stream.
    found = re.search(rf"\b{events} (\d+\.\d+)", out.stdout + out.stderr)
    if found:
        return float(found.group(1))
    raise RuntimeError(f"{mode} Faust baseline failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")


def _rss(pid: int) -> tuple[int, int]:
    """A process's resident and peak resident memory, in bytes (Linux /proc)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024)


def subledger(bootstrap: str, prefix: str, last: dict[str, str]) -> tuple[float, float, int]:
    env = {
        **os.environ,
        "SUBLEDGER_KAFKA_BOOTSTRAP": bootstrap,
        "SUBLEDGER_TOPIC_PREFIX": prefix,
        "SUBLEDGER_APP_ID": f"bench-{os.getpid()}",
        # The memory store: bench.state compares it with tables on disk.
        "SUBLEDGER_TABLE_STORE": "memory",
    }
    with open(ROOT / "bench" / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker", "--loglevel", "warning"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        launched = time.perf_counter()
        try:
            catalog = load_catalog().with_prefix(prefix)
            first, done = asyncio.run(
                wait_for_snapshots(bootstrap, catalog["profile_snapshots"].name, last)
            )
            rss, peak = _rss(worker.pid)
        finally:
            worker.terminate()
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    print(
        f"subledger worker: {done - launched:.1f}s from launch, {done - first:.1f}s from its "
        "first snapshot",
        flush=True,
    )
    print(f"subledger worker: RSS {rss / 2**20:,.0f} MiB at the end, peak {peak / 2**20:,.0f} MiB")
    return done - launched, done - first, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--profiles", type=int, default=100_000)
    args = parser.parse_args()
    n = args.events
    print(f"$ python -m bench.stream_throughput --events {n} --profiles {args.profiles}")
    with EmbeddedBroker(log_path=ROOT / "bench" / "broker.log") as broker:
        prefix = f"bench{os.getpid()}."
        catalog = load_catalog().with_prefix(prefix)
        asyncio.run(apply_topics(catalog, broker.bootstrap))
        inputs = catalog["chain_inputs"].name
        last = asyncio.run(load(broker.bootstrap, inputs, n, args.profiles))
        total, steady, peak = subledger(broker.bootstrap, prefix, last)
        print(f"subledger worker: {n / total:,.0f} events/s from launch", flush=True)
        naive_seconds = faust_baseline(broker.bootstrap, inputs, n, "naive")
        empty_seconds = faust_baseline(broker.bootstrap, inputs, n, "empty")
        ceiling_seconds = asyncio.run(ceiling(broker.bootstrap, inputs, n))
    rows = [
        ("subledger worker, from launch", n / total),
        ("subledger worker, from first snapshot", n / steady),
        ("naive Faust agent, a table write per event", n / naive_seconds),
        ("empty Faust agent, batches and no work", n / empty_seconds),
        ("aiokafka consume + dict update (ceiling)", n / ceiling_seconds),
    ]
    top, empty, naive = n / ceiling_seconds, n / empty_seconds, n / naive_seconds
    print(f"\n{'run':45} {'events/s':>10} {'of empty':>9} {'of naive':>8} {'of ceiling':>11}")
    for name, rate in rows:
        print(f"{name:45} {rate:10,.0f} {rate / empty:9.2f} {rate / naive:8.2f} {rate / top:10.1%}")
    per_profile = peak / args.profiles
    print(
        f"\nworker peak RSS per profile: {per_profile / 1024:,.1f} KiB "
        f"({n // args.profiles} events a profile; the process's own ~100 MiB included)"
    )
    budget(n / steady, empty, naive, n // args.profiles)


def budget(worker: float, empty: float, naive: float, history: int) -> None:
    """Where the worker's time per event goes, beside what the targets leave for it."""
    collect_seldom()  # as in a worker
    steps, _, _ = measure(max(history, 1), 1_000)
    record, per_event = 1e6 / empty, 1e6 / worker
    pure = sum(steps.values())
    print(f"\nµs per event (the worker from its first snapshot; {history} events a profile)")
    rows = [
        ("subledger worker", per_event),
        ("  Faust's own cost per record (empty agent)", record),
        ("  beyond it", per_event - record),
        ("    the pure steps in process (bench.fold_costs)", pure),
        ("      of which fold + view + state encoding", sum(steps[s] for s in TARGET)),
        ("    the rest: records between agents, sender, changelogs", per_event - record - pure),
        ("target 0.6 of the empty agent: beyond Faust's record", 1e6 / (0.6 * empty) - record),
        ("target 1.5x the naive agent: beyond Faust's record", 1e6 / (1.5 * naive) - record),
    ]
    for name, micros in rows:
        print(f"{name:56} {micros:8.1f}")


if __name__ == "__main__":
    main()
