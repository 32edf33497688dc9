"""Webhook deliveries per second to a local receiver, and the lag to each first attempt.

    python -m bench.webhook_throughput [--profiles 2000] [--concurrency 500]

Projects cloned profiles' events (see bench.projection_throughput) into a database with
one endpoint, then runs the dispatcher against a receiver on loopback (a separate
process answering 200) until every delivery succeeded. Prints deliveries/s, and p50/p99
from each delivery's commit to its first attempt. Baseline in the same run: the same
receiver driven by a bare httpx loop with the same concurrency and no database.
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
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
import psycopg

from bench.projection_throughput import batches, clones, fresh
from projections.projector import Writer, prepare
from projections.webhooks import Dispatcher, Policy
from runtime.broker import free_port, wait_for_port
from runtime.postgres import embedded_postgres

RECEIVER = """
import sys
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
import uvicorn
async def hook(request):
    await request.body()
    return Response(status_code=200)
app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
uvicorn.run(app, port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


async def baseline(url: str, bodies: list[bytes], concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:

        async def worker() -> None:
            while not queue.empty():
                await http.post(url, content=queue.get_nowait())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(bodies) / (time.perf_counter() - started)


async def main(profiles: int, concurrency: int) -> None:
    items = [(topic, orjson.dumps(record)) for topic, record in clones(profiles)]
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    url = f"http://127.0.0.1:{port}/hook"
    try:
        wait_for_port(port, timeout=30)
        with ExitStack() as stack:
            server = os.environ.get("DATABASE_URL") or stack.enter_context(
                embedded_postgres(Path(tempfile.mkdtemp()) / "pg", delete=True)
            )
            dsn = await fresh(server, "bench_webhooks")
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(
                    "INSERT INTO webhook_endpoints (endpoint_id, url, event_types, environment,"
                    " secrets, created_at) VALUES (gen_random_uuid(), %s, '{}', 'both', "
                    "ARRAY['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'], now())",
                    (url,),
                )
                await prepare(conn)
                writer = Writer(conn)
                for batch, offsets in batches(items, 2000):
                    await writer.submit(batch, offsets)
                await writer.drain()
                total = (
                    await (await conn.execute("SELECT count(*) FROM webhook_deliveries")).fetchone()
                    or (0,)
                )[0]
                print(f"{total:,} deliveries queued for one endpoint; concurrency {concurrency}")
                stop = asyncio.Event()
                started = time.perf_counter()
                task = asyncio.create_task(
                    Dispatcher(dsn, Policy(concurrency=concurrency), allow_private=True).run(stop)
                )
                while True:
                    cursor = await conn.execute(
                        "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'"
                    )
                    done = (await cursor.fetchone() or (0,))[0]
                    if done >= total:
                        break
                    await asyncio.sleep(0.2)
                elapsed = time.perf_counter() - started
                stop.set()
                await task
                print(f"dispatcher : {total / elapsed:,.0f} deliveries/s")
                # Lag measured live: deliveries made while the dispatcher is idle.
                await conn.execute("TRUNCATE profile_events, webhook_deliveries, webhook_attempts")
                stop = asyncio.Event()
                task = asyncio.create_task(
                    Dispatcher(dsn, Policy(concurrency=concurrency), allow_private=True).run(stop)
                )
                await asyncio.sleep(1)
                # About 100 deliveries/s, half of what the dispatcher sustains here.
                sample = items[:1500]
                for batch, offsets in batches(sample, 25):
                    await writer.submit(batch, offsets)
                    await writer.drain()
                    await asyncio.sleep(0.2)
                while True:
                    cursor = await conn.execute(
                        "SELECT count(*) FILTER (WHERE status <> 'succeeded'), "
                        "array_agg(extract(epoch FROM a.attempted_at - d.created_at)) "
                        "FROM webhook_deliveries d LEFT JOIN webhook_attempts a "
                        "ON a.delivery_id = d.delivery_id AND a.attempt = 1"
                    )
                    pending, lags = await cursor.fetchone() or (1, None)
                    if not pending and lags:
                        break
                    await asyncio.sleep(0.2)
                stop.set()
                await task
                lags = sorted(float(x) for x in lags if x is not None)
                print(
                    f"transaction -> first attempt ({len(lags):,} at ~100/s): "
                    f"p50 {statistics.median(lags) * 1000:.0f} ms, "
                    f"p99 {lags[int(len(lags) * 0.99) - 1] * 1000:.0f} ms"
                )
        bodies = [value for topic, value in items if topic == "profile_events"][:total]
        rate = await baseline(url, bodies, concurrency)
        print(f"baseline   : {rate:,.0f} requests/s (bare httpx, same receiver and concurrency)")
    finally:
        receiver.kill()
        receiver.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.profiles, args.concurrency))
