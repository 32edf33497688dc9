"""End-to-end latency: store notification accepted -> visible in the read model.

    python -m bench.read_model_latency [--rate 1000] [--seconds 20] [--via kafka|http]

Runs the whole pipeline as separate processes (`subledger api`, `worker`, `project`) on the
embedded broker and PostgreSQL (or DATABASE_URL's server), feeds Stripe `invoice.paid`
notifications at a steady rate, each a new subscription, and watches the read model for
each invoice's transaction id. Prints the rate achieved and the latency from acceptance to
the moment the purchase was queryable (p50, p99, max; resolution: the 20 ms watch), then
where that time went, hop by hop, from the timestamps of the records each step produced
(raw record, normalized event, chain change, snapshot; milliseconds, wall clock).

Acceptance is the broker's acknowledgement of the raw record, which is when ingress
answers 200. `--via kafka` (default) appends the raw records as ingress does, so the load
generator stays light; `--via http` posts signed webhooks to the running ingress instead
(this machine's HTTP client tops out well below 1,000 requests/s beside the pipeline).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.projection_throughput import fresh
from runtime.broker import EmbeddedBroker, free_port, wait_for_port
from runtime.catalog import load_catalog
from runtime.kafka import end_offsets
from runtime.postgres import embedded_postgres
from runtime.settings import BrokerFlavor
from schemas.enums import Store
from schemas.raw import RawNotification

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_bench"


def invoice(i: int, now: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"evt_{i}",
            "object": "event",
            "type": "invoice.paid",
            "created": now,
            "livemode": True,
            "data": {
                "object": {
                    "id": f"in_{i}",
                    "object": "invoice",
                    "amount_paid": 999,
                    "currency": "usd",
                    "billing_reason": "subscription_create",
                    "parent": {
                        "subscription_details": {
                            "subscription": f"sub_{i}",
                            "metadata": {"profile_id": str(uuid.UUID(int=i + 1))},
                        }
                    },
                    "lines": {
                        "data": [
                            {
                                "period": {"start": now, "end": now + 30 * 86400},
                                "pricing": {
                                    "price_details": {"price": "p", "product": "premium.monthly"}
                                },
                            }
                        ]
                    },
                }
            },
        }
    )


def signed(body: bytes, now: int) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={now},v1={digest}", "content-type": "application/json"}


async def post(url: str, rate: float, seconds: float, accepted: dict[str, float]) -> float:
    total = int(rate * seconds)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    refused = 0
    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:

        async def one(i: int) -> None:
            nonlocal refused
            now = int(time.time())
            body = invoice(i, now)
            response = await http.post(url, content=body, headers=signed(body, now))
            if response.status_code == 200:
                accepted[f"in_{i}"] = time.perf_counter()
            else:
                refused += 1

        tasks = []
        for i in range(total):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    if refused:
        print(f"refused: {refused}")
    return len(accepted) / elapsed


async def append(
    bootstrap: str, topic: str, rate: float, seconds: float, accepted: dict[str, float]
) -> float:
    """Append raw Stripe notifications as ingress keeps them, at `rate`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await producer.start()
    total = int(rate * seconds)
    started = time.perf_counter()

    def acknowledged(transaction_id: str) -> Callable[[asyncio.Future[Any]], None]:
        def done(future: asyncio.Future[Any]) -> None:
            if not future.exception():
                accepted[transaction_id] = time.perf_counter()

        return done

    try:
        for i in range(total):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = int(time.time())
            body = invoice(i, now)
            raw = RawNotification(
                store=Store.STRIPE,
                dedupe_key=f"evt_{i}",
                received_at=datetime.now(UTC),
                body=body.decode(),
                payload=orjson.loads(body),
            )
            future = await producer.send(
                topic, raw.model_dump_json().encode(), key=f"stripe:sub_{i}".encode()
            )
            future.add_done_callback(acknowledged(f"in_{i}"))
        await producer.flush()
    finally:
        await producer.stop()
    return len(accepted) / (time.perf_counter() - started)


async def watch(
    dsn: str, accepted: dict[str, float], seen: dict[str, float], done: asyncio.Event
) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        while not done.is_set() or len(seen) < len(accepted):
            pending = [t for t in list(accepted) if t not in seen]
            if pending:
                cursor = await connection.execute(
                    "SELECT transaction_id FROM transaction_ids WHERE transaction_id = ANY(%s)",
                    (pending,),
                )
                at = time.perf_counter()
                for (transaction_id,) in await cursor.fetchall():
                    seen[transaction_id] = at
            await asyncio.sleep(0.02)


# The topics a notification crosses, in order: the raw record, its normalized event, the
# chain's change sent to the profile, and the profile's snapshot.
HOPS = ("raw_stripe", "chain_inputs", "profile_inputs", "profile_snapshots")
STEPS = ("raw appended -> normalized", "normalized -> chain folded", "chain folded -> snapshot")


def _invoices_in(hop: str, value: bytes) -> list[int]:
    """The invoices (by number) a record on `hop` is about: invoice i is subscription
    `sub_i` of profile UUID(int=i + 1)."""
    parsed = orjson.loads(value)
    items = parsed if isinstance(parsed, list) else [parsed]
    if hop == "raw_stripe":
        keys = [
            i["payload"]["data"]["object"]["parent"]["subscription_details"]["subscription"]
            for i in items
        ]
    elif hop == "chain_inputs":
        keys = [i["chain_key"] for i in items]
    elif hop == "profile_inputs":
        # The digest is written positionally (schemas.base.Compact): its chain key first.
        keys = [i["digest"][0] for i in items if i.get("kind") == "chain_changed"]
    else:
        return [uuid.UUID(i["profile_id"]).int - 1 for i in items]
    return [int(key.rpartition("_")[2]) for key in keys]


async def produced_at(bootstrap: str) -> dict[str, dict[int, float]]:
    """For each hop: when (wall clock) the first record about each invoice was produced."""
    catalog = load_catalog()
    names = {catalog[hop].name: hop for hop in HOPS}
    partitions = [
        TopicPartition(catalog[hop].name, p) for hop in HOPS for p in range(catalog[hop].partitions)
    ]
    ends = await end_offsets(bootstrap, partitions, BrokerFlavor.TANSU)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    found: dict[str, dict[int, float]] = {hop: {} for hop in HOPS}
    try:
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)
        read = dict.fromkeys(partitions, 0)
        while any(read[tp] < ends[tp] for tp in partitions):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                hop = names[tp.topic]
                read[tp] = records[-1].offset + 1
                for record in records:
                    for invoice_number in _invoices_in(hop, record.value):
                        found[hop].setdefault(invoice_number, record.timestamp / 1000)
    finally:
        await consumer.stop()
    return found


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99, in milliseconds."""
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[max(int(len(ordered) * 0.99) - 1, 0)] * 1000


def print_hops(found: dict[str, dict[int, float]], queryable: dict[int, float]) -> None:
    """Each step's share: from its input's record to its output's record (wall clock)."""
    print("where the time went, step by step:")
    stamps = [*(found[hop] for hop in HOPS), queryable]
    names = [*STEPS, "snapshot -> queryable"]
    for name, before, after in zip(names, stamps[:-1], stamps[1:], strict=True):
        deltas = [after[i] - at for i, at in before.items() if i in after]
        if deltas:
            p50, p99 = percentiles(deltas)
            print(f"  {name:28} p50 {p50:5.0f} ms, p99 {p99:5.0f} ms")


def start(role: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    log = open(logs / f"{role[0]}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *role], env=env, cwd=ROOT, stdout=log, stderr=log
    )


async def main(rate: float, seconds: float, grace: float, via: str) -> None:
    logs = Path(tempfile.mkdtemp())
    with ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        server = os.environ.get("DATABASE_URL") or stack.enter_context(
            embedded_postgres(logs / "pg", delete=True)
        )
        dsn = await fresh(server, "bench_latency")
        port = free_port()
        env = {
            **os.environ,
            "SUBLEDGER_KAFKA_BOOTSTRAP": broker.bootstrap,
            "SUBLEDGER_DATABASE_URL": dsn,
            "SUBLEDGER_STRIPE_WEBHOOK_SECRETS": f'["{SECRET}"]',
            "SUBLEDGER_APP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        }
        processes = [
            start(["api", "--port", str(port)], env, logs),
            start(["worker", "--loglevel", "warning"], env, logs),
            start(["project", "--loglevel", "warning"], env, logs),
        ]
        try:
            wait_for_port(port, timeout=60)
            await asyncio.sleep(8)  # the worker joins its group
            accepted: dict[str, float] = {}
            seen: dict[str, float] = {}
            done = asyncio.Event()
            watcher = asyncio.create_task(watch(dsn, accepted, seen, done))
            if via == "http":
                url = f"http://127.0.0.1:{port}/webhooks/stripe"
                achieved = await post(url, rate, seconds, accepted)
            else:
                topic = load_catalog()["raw_stripe"].name
                achieved = await append(broker.bootstrap, topic, rate, seconds, accepted)
            done.set()
            with suppress(TimeoutError):
                await asyncio.wait_for(watcher, timeout=grace)
            latencies = [seen[t] - accepted[t] for t in seen if t in accepted]
            missing = len(accepted) - len(latencies)
            print(f"asked {rate:,.0f}/s for {seconds:.0f}s via {via}; accepted {achieved:,.0f}/s")
            if latencies:
                p50, p99 = percentiles(latencies)
                print(
                    f"accepted -> queryable: p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
                    f"max {max(latencies) * 1000:.0f} ms over {len(latencies):,} notifications"
                    + (f"; {missing} not visible after {grace:.0f}s" if missing else "")
                )
                wall = time.time() - time.perf_counter()
                queryable = {int(t.removeprefix("in_")): at + wall for t, at in seen.items()}
                print_hops(await produced_at(broker.bootstrap), queryable)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--grace", type=float, default=60)
    parser.add_argument("--via", choices=("kafka", "http"), default="kafka")
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.grace, args.via))
