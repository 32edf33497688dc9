"""Verified App Store notifications per second into one ingress process, over loopback.

    python -m bench.ingress_throughput [--notifications 20000] [--concurrency 64]

Signs notifications with a test authority the ingress trusts, posts them as fast as
`--concurrency` connections allow (accepted/s, p50, p99), then again at half that rate
(p50, p99 under a steady load). Every response must be 200: a 2xx is only given after
the broker acknowledged the write. The client shares the machine's cores with the
ingress and the broker, so it also prints the ingress process's own CPU time per
notification: the rate one ingress could accept with a core to itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import orjson

from bench.cpu import CpuSince
from bench.http import Connection
from runtime.broker import EmbeddedBroker, free_port, wait_for_port
from runtime.catalog import load_catalog
from runtime.topics import apply_topics
from tests.apple_notifications import APP_APPLE_ID, BUNDLE, notification, transaction
from tests.apple_signing import SigningAuthority

ROOT = Path(__file__).resolve().parents[1]
PATH = "/webhooks/app-store"


def sign(ca: SigningAuthority, count: int) -> list[bytes]:
    bodies = []
    for i in range(count):
        tx = transaction(
            transactionId=f"t{i}",
            originalTransactionId=f"o{i % 5000}",
            appAccountToken=str(uuid.UUID(int=i % 5000 + 1)),
        )
        bodies.append(orjson.dumps({"signedPayload": notification(ca, "DID_RENEW", None, tx=tx)}))
    return bodies


async def post_all(
    port: int, bodies: list[bytes], concurrency: int, rate: float | None
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    started = time.perf_counter()

    async def client(index: int) -> None:
        connection = await Connection.open("127.0.0.1", port)
        sent = 0
        try:
            while not queue.empty():
                body = queue.get_nowait()
                if rate is not None:  # each client paces its share of a steady rate
                    due = started + (sent * concurrency + index) / rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                t0 = time.perf_counter()
                status, answer = await connection.post(PATH, body)
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"{status}: {answer.decode(errors='replace')}")
                sent += 1
        finally:
            await connection.close()

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return time.perf_counter() - started, latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


# The server as `subledger api` runs it, and uvicorn's pure-Python stack as the baseline.
STACKS = {
    "uvloop + httptools": ["--loop", "uvloop", "--http", "httptools"],
    "asyncio + h11 (baseline)": ["--loop", "asyncio", "--http", "h11"],
}


class Run(NamedTuple):
    accepted_per_second: float
    full: list[float]  # latencies as fast as possible, seconds
    half: list[float]  # latencies at half that rate
    cpu: float  # the ingress process's CPU seconds per notification


def measure(env: dict[str, str], bodies: list[bytes], concurrency: int, options: list[str]) -> Run:
    """One ingress process started with `options`, loaded at full, then half, rate."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "api", "--port", str(port), *options],
        env=env,
        cwd=ROOT,
    )
    try:
        wait_for_port(port, timeout=60)
        asyncio.run(post_all(port, bodies[:500], concurrency, None))  # warm-up
        watch = CpuSince.of_process(server.pid)
        seconds, full = asyncio.run(post_all(port, bodies, concurrency, None))
        cpu = watch.used() / len(bodies)
        top = len(bodies) / seconds
        _, half = asyncio.run(post_all(port, bodies[: len(bodies) // 2], concurrency, top / 2))
    finally:
        server.terminate()
        server.wait(30)
    return Run(top, full, half, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(
        f"$ python -m bench.ingress_throughput --notifications {args.notifications} "
        f"--concurrency {args.concurrency}"
    )
    ca = SigningAuthority()
    bodies = sign(ca, args.notifications)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        root = Path(tmp) / "root.der"
        root.write_bytes(ca.root_der)
        prefix = f"bench{os.getpid()}."
        asyncio.run(apply_topics(load_catalog().with_prefix(prefix), broker.bootstrap))
        env = {
            **os.environ,
            "SUBLEDGER_KAFKA_BOOTSTRAP": broker.bootstrap,
            "SUBLEDGER_TOPIC_PREFIX": prefix,
            "SUBLEDGER_APPLE_BUNDLE_ID": BUNDLE,
            "SUBLEDGER_APPLE_APP_APPLE_ID": str(APP_APPLE_ID),
            "SUBLEDGER_APPLE_ENVIRONMENT": "Production",
            "SUBLEDGER_APPLE_ROOT_CERTIFICATES": f'["{root}"]',
        }
        rows = [
            (name, measure(env, bodies, args.concurrency, options))
            for name, options in STACKS.items()
        ]
    print(
        f"\n{'server':28} {'load':22} {'accepted/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>7}"
    )
    for name, run in rows:
        top = run.accepted_per_second
        print(
            f"{name:28} {'as fast as possible':22} {top:11,.0f} "
            f"{percentile(run.full, 50):8.1f} {percentile(run.full, 99):8.1f} "
            f"{run.cpu * 1000:7.2f}"
        )
        print(
            f"{'':28} {'steady, half that rate':22} {top / 2:11,.0f} "
            f"{percentile(run.half, 50):8.1f} {percentile(run.half, 99):8.1f}"
        )
    name, served = rows[0]
    print(
        f"\ningress process ({name}): {served.cpu * 1000:.2f} ms of CPU per notification, "
        f"{1 / served.cpu:,.0f} notifications/s with a core to itself"
    )


if __name__ == "__main__":
    main()
