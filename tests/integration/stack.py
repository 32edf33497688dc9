"""One isolated run of the stream processor on the shared test broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from aiokafka import AIOKafkaConsumer

from cli.dev import publish
from runtime.broker import wait_for_port
from runtime.catalog import Catalog, load_catalog
from runtime.topics import apply_topics
from schemas.messages import Input

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    bootstrap: str
    logs: Path
    database_url: str
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    # The processor version whose derived topics this stack reads.
    version: int = 1
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"t{self.name}."

    @property
    def catalog(self) -> Catalog:
        return load_catalog().with_version(self.version).with_prefix(self.prefix)

    async def create_topics(self) -> None:
        await apply_topics(self.catalog, self.bootstrap)

    def start_ingress(self, port: int, **settings: str) -> subprocess.Popen[bytes]:
        """The HTTP service: webhooks, query API and server-side API."""
        # The tests' webhook receivers listen on this machine.
        settings = {"webhook_private_addresses": "true", **settings}
        process = self._start(["api", "--port", str(port)], settings, "api")
        wait_for_port(port, timeout=30)
        return process

    def start_projector(self, **settings: str) -> subprocess.Popen[bytes]:
        return self._start(["project", "--loglevel", "warning"], settings, "projector")

    def start_dispatcher(self, **settings: str) -> subprocess.Popen[bytes]:
        # The tests' webhook receivers listen on this machine.
        settings = {"webhook_private_addresses": "true", **settings}
        return self._start(["dispatch", "--loglevel", "warning"], settings, "dispatcher")

    @property
    def data_dir(self) -> Path:
        """Where this stack's worker keeps its tables on disk, unless told otherwise."""
        return self.logs / f"state-{self.name}"

    def start_worker(self, **settings: str) -> subprocess.Popen[bytes]:
        settings = {"data_dir": str(self.data_dir), **settings}
        return self._start(["worker", "--loglevel", "warning"], settings, "worker")

    def _start(
        self, command: list[str], settings: dict[str, str], role: str
    ) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "SUBLEDGER_KAFKA_BOOTSTRAP": self.bootstrap,
            "SUBLEDGER_TOPIC_PREFIX": self.prefix,
            "SUBLEDGER_APP_ID": f"subledger-{self.name}",
            "SUBLEDGER_DATABASE_URL": self.database_url,
            **{f"SUBLEDGER_{k.upper()}": v for k, v in settings.items()},
        }
        # One file per process, named in start order: a restarted worker keeps the log
        # of the one before it.
        log = open(self.logs / f"{role}-{self.name}-{time.time_ns()}.log", "wb")  # noqa: SIM115
        self._logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *command],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(process)
        return process

    def stop_workers(self, sig: int = signal.SIGTERM) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(sig)
        for process in self.workers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.workers.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    async def publish(self, inputs: Iterable[Input]) -> None:
        await publish(self.bootstrap, self.catalog, list(inputs))

    async def read(
        self, topic_id: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 60
    ) -> list[dict[str, Any]]:
        """Every record of a topic from the start, until `done` holds (a bounded poll)."""
        consumer = AIOKafkaConsumer(
            self.catalog[topic_id].name,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for messages in batches.values():
                    records += [orjson.loads(m.value) for m in messages]
                if done(records):
                    return records
            raise TimeoutError(
                f"{topic_id}: condition not met after {timeout}s ({len(records)} records)"
            )
        finally:
            await consumer.stop()

    async def snapshots(
        self, done: Callable[[dict[str, dict[str, Any]]], bool], timeout: float = 60
    ) -> dict[str, dict[str, Any]]:
        """The latest snapshot of each profile, once `done` holds for them."""
        latest: dict[str, dict[str, Any]] = {}

        def check(records: list[dict[str, Any]]) -> bool:
            latest.clear()
            for record in records:
                latest[record["profile_id"]] = record
            return done(latest)

        await self.read("profile_snapshots", check, timeout)
        return latest
