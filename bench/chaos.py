"""Nothing lost: the whole stack under simulated traffic while its processes are killed,
the broker goes away and PostgreSQL restarts.

    python -m bench.chaos [--profiles 300] [--rate 25] [--cycles 12] [--seed 7]
                          [--outage-seconds 15]

Runs the HTTP service, the worker, the projector and the dispatcher as separate processes
on the embedded broker (reached only through a relay the harness can cut) and an embedded
PostgreSQL of its own, with a webhook receiver on loopback that wants every event. The
simulator sends its traffic (retrying a connection refused, as the stores do);
meanwhile, `--cycles` times, a random process is SIGKILLed and started again with the
same command; a third of the way the broker is unreachable for `--outage-seconds`, two
thirds of the way PostgreSQL is stopped (fast shutdown) for as long and started again;
during each, the processes that need what is gone are asked whether they are ready. A
supervisor starts again any process that exits by itself, as a restart policy would.
Once everything has caught up, every profile of the ledger's fold of what the input
topics hold (raw store notifications, normalized as the worker does, and commands) is
compared with the read model, and every journey event with the deliveries the receiver
got.

Prints: cycles, exits of their own, requests accepted, profiles compared and mismatched
(with examples), events never delivered, events delivered under two webhook-ids,
processes that did not come back by themselves, and processes that said they were ready
while the broker or the database was away. Exits 1 when anything was lost, mismatched or
misreported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import uvicorn
from fastapi import FastAPI, Request, Response

from bench.faults import BrokerLink, restart_postgres
from bench.projection_throughput import fresh
from processors.core.ledger import Ledger
from processors.normalize.money import Rates
from processors.stream.processor import NORMALIZERS, RAW_TOPICS
from runtime.broker import EmbeddedBroker, free_port, wait_for_port
from runtime.catalog import Catalog, load_catalog
from runtime.kafka import read_topic
from runtime.postgres import embedded_postgres
from runtime.settings import BrokerFlavor
from runtime.topics import apply_topics
from schemas.base import from_json, to_builtins
from schemas.commands import Command
from schemas.money import shown_price
from schemas.raw import RawNotification
from simulator.keys import DevKeys
from simulator.plan import plan
from simulator.run import Simulator, StoreApis, service_settings

ROOT = Path(__file__).resolve().parents[1]
KEY = "chaos-key"
ROLES = ("api", "worker", "projector", "dispatcher")


@dataclass
class Process:
    role: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    ready_url: str
    popen: subprocess.Popen[bytes] | None = None
    kills: int = 0
    # Exits of its own, each followed by a start, as a supervisor (compose's restart
    # policy) does.
    exits: list[int] = field(default_factory=list)

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "cli.main", *self.argv],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Receiver:
    """A webhook endpoint on loopback: answers the handshake, keeps each event's ids."""

    port: int = field(default_factory=free_port)
    ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            document = orjson.loads(await request.body())
            if "adapty_check" in document:
                answer = {"adapty_check_response": document["adapty_check"]}
                return Response(orjson.dumps(answer), media_type="application/json")
            self.ids[document["profile_event_id"]].add(request.headers["webhook-id"])
            return Response(status_code=200)

        return app

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        config = uvicorn.Config(self.app(), port=self.port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            yield
        finally:
            server.should_exit = True
            await task


async def ready(http: httpx.AsyncClient, process: Process, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await http.get(process.ready_url, timeout=2)).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    return False


async def supervise(processes: dict[str, Process], stop: asyncio.Event) -> None:
    """Start again a process that exited by itself, as a restart policy would."""
    while not stop.is_set():
        for process in processes.values():
            if process.popen is not None and process.popen.poll() is not None:
                process.exits.append(process.popen.returncode)
                print(f"  the {process.role} exited ({process.popen.returncode}); started again")
                process.start()
        await asyncio.sleep(1)


# What each process needs, and must say it lacks while it is gone.
NEEDS = {"broker": ("api", "worker", "projector"), "database": ("api", "projector", "dispatcher")}


@dataclass
class Faults:
    """The broker outage and the PostgreSQL restart, once each, and who said ready through
    them."""

    link: BrokerLink
    postgres: Path
    outage_seconds: float
    ready_while_down: list[str] = field(default_factory=list)

    async def outage(self, http: httpx.AsyncClient, processes: dict[str, Process]) -> None:
        await self._through(self.link.outage(self.outage_seconds), "broker", http, processes)

    async def restart(self, http: httpx.AsyncClient, processes: dict[str, Process]) -> None:
        restart = restart_postgres(self.postgres, self.outage_seconds)
        await self._through(restart, "database", http, processes)

    async def _through(
        self,
        fault: Coroutine[Any, Any, None],
        gone: str,
        http: httpx.AsyncClient,
        processes: dict[str, Process],
    ) -> None:
        """Bring on `fault`, and ask for readiness well into it."""

        async def probe() -> None:
            await asyncio.sleep(self.outage_seconds * 0.6)
            await self._probe(http, processes, gone)

        await asyncio.gather(fault, probe())

    async def _probe(
        self, http: httpx.AsyncClient, processes: dict[str, Process], gone: str
    ) -> None:
        for role in NEEDS[gone]:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(processes[role].ready_url, timeout=2)).status_code == 200:
                    self.ready_while_down.append(f"{role} (no {gone})")


async def chaos(
    processes: dict[str, Process],
    cycles: int,
    span: float,
    faults: Faults,
    http: httpx.AsyncClient,
    rng: random.Random,
) -> None:
    """`cycles` kills spread over `span` seconds; a third of the way the broker goes away
    for a while, two thirds of the way PostgreSQL restarts."""
    pause = span / (cycles + 1)
    for cycle in range(cycles):
        await asyncio.sleep(pause)
        victim = processes[rng.choice(ROLES)]
        victim.kill()
        victim.start()
        print(f"  cycle {cycle + 1}: killed and restarted the {victim.role}", flush=True)
        if cycle == cycles // 3:
            await faults.outage(http, processes)
            print(f"  the broker was unreachable for {faults.outage_seconds:g} s", flush=True)
        if cycle == 2 * cycles // 3:
            await faults.restart(http, processes)
            print(f"  PostgreSQL restarted, down {faults.outage_seconds:g} s", flush=True)


async def topic_records(bootstrap: str, catalog: Catalog, name: str) -> list[bytes]:
    spec = catalog[name]
    records = await read_topic(bootstrap, spec.name, spec.partitions, BrokerFlavor.TANSU)
    return [r.value for r in records if r.value is not None]


async def reference(bootstrap: str, catalog: Catalog) -> Ledger:
    """The ledger's fold of what the input topics hold, normalized by the worker's own
    normalizers."""
    ledger = Ledger()
    rates = Rates.load()
    for topic in RAW_TOPICS:
        for value in await topic_records(bootstrap, catalog, topic):
            raw = RawNotification.model_validate_json(value)
            ledger.submit_all(NORMALIZERS[raw.store](raw, rates))
    for value in await topic_records(bootstrap, catalog, "profile_commands"):
        ledger.submit(from_json(Command, value))  # type: ignore[arg-type]
    ledger.advance(datetime.now(UTC))
    return ledger


def essentials(view: dict[str, Any]) -> dict[str, Any]:
    """What no crash may change: identity, money, and every purchase."""
    revenue = view["revenue"]
    return {
        "customer_user_id": view["customer_user_id"],
        "email": view["fields"]["email"],
        "total_revenue_usd": shown_price(Decimal(revenue["total_revenue_usd"])),
        "transactions": sorted(
            p["store_transaction_id"] for p in view["subscriptions"] + view["non_subscriptions"]
        ),
        "notes": len(view["notes"]),
        "custom_attributes": view["custom_attributes"],
    }


async def compare(ledger: Ledger, url: str) -> tuple[int, list[str]]:
    now = datetime.now(UTC)
    expected = {str(view.profile_id): essentials(to_builtins(view)) for view in ledger.views(now)}
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute("SELECT profile_id::text, view::text FROM profiles")
        stored = {pid: essentials(orjson.loads(view)) for pid, view in await cursor.fetchall()}
    mismatched = []
    for profile, want in sorted(expected.items()):
        got = stored.get(profile)
        if got != want:
            mismatched.append(f"{profile}: read model {got}, ledger {want}")
    mismatched += [f"{p}: in the read model only" for p in sorted(set(stored) - set(expected))]
    return len(expected), mismatched


async def journey_events(url: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute(
            "SELECT profile_event_id::text FROM profile_events WHERE event_datetime <= now()"
        )
        return {row[0] for row in await cursor.fetchall()}


async def main(
    profiles: int, rate: float, cycles: int, seed: int, outage_seconds: float = 15.0
) -> int:
    work = Path(tempfile.mkdtemp(prefix="chaos-"))
    catalog = load_catalog()
    rng = random.Random(seed)
    with ExitStack() as stack:
        # Every client reaches the broker through a relay the harness can cut.
        link_port = free_port()
        broker = stack.enter_context(
            EmbeddedBroker(log_path=work / "tansu.log", advertised_port=link_port)
        )
        link = stack.enter_context(BrokerLink(link_port, broker.port))
        # A server of its own, restarted for real half way.
        server = stack.enter_context(embedded_postgres(work / "pg", delete=True))
        faults = Faults(link, work / "pg", outage_seconds)
        url = await fresh(server, "subledger_chaos")
        await apply_topics(catalog, broker.bootstrap)
        keys = DevKeys.load_or_create(work / "keys")
        play_port, api_port = free_port(), free_port()
        receiver = Receiver()
        served = AsyncExitStack()
        await served.enter_async_context(receiver.serving())
        env = {
            **os.environ,
            **service_settings(keys, f"http://127.0.0.1:{play_port}"),
            "SUBLEDGER_KAFKA_BOOTSTRAP": broker.bootstrap,
            "SUBLEDGER_DATABASE_URL": url,
            "SUBLEDGER_API_KEYS": f'["{KEY}"]',
            "SUBLEDGER_WEBHOOK_PRIVATE_ADDRESSES": "true",
            "SUBLEDGER_READY_LAG": "0",
            # The worker's tables on disk, as in production: a kill leaves them mid-write.
            "SUBLEDGER_TABLE_STORE": "rocksdb",
            "SUBLEDGER_DATA_DIR": str(work / "state"),
        }
        processes: dict[str, Process] = {}
        for role, argv in (
            ("api", ["api", "--port", str(api_port)]),
            ("worker", ["worker", "--loglevel", "warning"]),
            ("projector", ["project", "--loglevel", "warning"]),
            ("dispatcher", ["dispatch", "--loglevel", "warning"]),
        ):
            port = api_port if role == "api" else free_port()
            role_env = env if role == "api" else {**env, "SUBLEDGER_METRICS_PORT": str(port)}
            processes[role] = Process(
                role, argv, role_env, work / f"{role}.log", f"http://127.0.0.1:{port}/ready"
            )
        for process in processes.values():
            process.start()
            stack.callback(process.stop)
        wait_for_port(api_port, timeout=60)
        async with httpx.AsyncClient(timeout=30) as http:
            for process in processes.values():
                if not await ready(http, process, 180):
                    print(f"the {process.role} never became ready; see {process.log}")
                    return 1
            base = f"http://127.0.0.1:{api_port}"
            hooked = await http.post(
                f"{base}/api/v1/webhooks/endpoints",
                headers={"Authorization": f"Api-Key {KEY}"},
                json={"url": f"http://127.0.0.1:{receiver.port}/hook", "environment": "both"},
            )
            assert hooked.status_code == 201, hooked.text
            steps = plan(profiles, seed, datetime.now(UTC))
            span = len(steps) / rate
            print(
                f"{len(steps):,} requests over {profiles:,} profiles at {rate:g}/s "
                f"({span:.0f} s), {cycles} kill cycles; logs in {work}",
                flush=True,
            )
            play = StoreApis()
            # A store redelivers what it could not hand over: connections refused while
            # the HTTP service is down are tried again.
            transport = httpx.AsyncHTTPTransport(retries=10)
            simulator = Simulator(base, keys, KEY, play, rate=rate, transport=transport)
            stopped = asyncio.Event()
            supervisor = asyncio.create_task(supervise(processes, stopped))
            async with play.serving(play_port):
                traffic = asyncio.create_task(simulator.run(steps))
                await chaos(processes, cycles, span, faults, http, rng)
                outcome = await traffic
            accepted = sum(n for (_, status), n in outcome.statuses.items() if status < 400)
            needed_a_hand = [p.role for p in processes.values() if not await ready(http, p, 180)]
            stopped.set()
            await supervisor
        # Caught up: every process ready with no lag; then the deliveries come in.
        ledger = await reference(broker.bootstrap, catalog)
        compared, mismatched = await compare(ledger, url)
        events = await journey_events(url)
        deadline = time.monotonic() + 120
        while not events <= set(receiver.ids) and time.monotonic() < deadline:
            await asyncio.sleep(1)
        await served.aclose()
    undelivered = events - set(receiver.ids)
    doubled = [e for e, ids in receiver.ids.items() if len(ids) > 1]
    print(f"cycles: {cycles} ({', '.join(f'{r} {p.kills}' for r, p in processes.items())})")
    exits = {r: p.exits for r, p in processes.items() if p.exits}
    print(f"exits of their own, started again by the supervisor: {exits or 0}")
    refused = sorted(
        (f"{channel} {status}", n)
        for (channel, status), n in outcome.statuses.items()
        if status >= 400
    )
    print(f"requests: {outcome.sent:,} sent, {accepted:,} accepted; not: {refused}")
    print(f"profiles compared: {compared:,}, mismatched: {len(mismatched)}")
    for line in mismatched[:5]:
        print(f"  {line}")
    print(
        f"journey events: {len(events):,}, never delivered: {len(undelivered)}, "
        f"under two webhook-ids: {len(doubled)}"
    )
    print(f"processes that needed a hand: {len(needed_a_hand)} {needed_a_hand or ''}")
    print(
        f"ready while what they need was down: {len(faults.ready_while_down)} "
        f"{faults.ready_while_down or ''}"
    )
    failed = mismatched or undelivered or doubled or needed_a_hand or faults.ready_while_down
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=300)
    parser.add_argument("--rate", type=float, default=25.0)
    parser.add_argument("--cycles", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--outage-seconds",
        type=float,
        default=15.0,
        help="how long the broker is unreachable, and PostgreSQL down, once each",
    )
    args = parser.parse_args()
    run = main(args.profiles, args.rate, args.cycles, args.seed, args.outage_seconds)
    sys.exit(asyncio.run(run))
