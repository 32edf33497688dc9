"""A worker's tables on disk (RocksDB) beside the memory store, on the same input.

    python -m bench.state [--events 1000000] [--profiles 100000] [--no-memory] [--no-rebuild]

It loads synthetic renewals (round-robin over the profiles) into the embedded broker and
runs `subledger worker` on them with each table store, from start until the snapshot of
every profile's last event is out, printing its rate and peak RSS. Then, on RocksDB, it
prints the bytes on disk per profile and how long a worker takes to be ready again
(recovered, nothing left to read) after a clean stop, after SIGKILL, and without its data
directory (a rebuild from the changelogs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.stream_throughput import ROOT, _rss, load, wait_for_snapshots
from runtime.broker import EmbeddedBroker, free_port
from runtime.catalog import load_catalog
from runtime.topics import apply_topics


class Worker:
    """`subledger worker` with one table store, started and stopped as an operator would."""

    def __init__(self, bootstrap: str, prefix: str, store: str, data_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "SUBLEDGER_KAFKA_BOOTSTRAP": bootstrap,
            "SUBLEDGER_TOPIC_PREFIX": prefix,
            "SUBLEDGER_APP_ID": f"bench-{store}-{os.getpid()}",
            "SUBLEDGER_TABLE_STORE": store,
            "SUBLEDGER_DATA_DIR": str(data_dir),
            "SUBLEDGER_METRICS_PORT": str(self.port),
        }
        self.store = store
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        log = open(ROOT / "bench" / f"worker-{self.store}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker", "--loglevel", "warning"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        return time.perf_counter()

    def ready(self, timeout: float = 3600) -> float:
        """Seconds until /ready answers 200 (recovered and caught up)."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ready", timeout=2).status_code == 200:
                    return time.perf_counter()
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the {self.store} worker was not ready in {timeout:.0f}s")

    def rss(self) -> tuple[int, int]:
        assert self.process is not None
        return _rss(self.process.pid)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def fold(worker: Worker, bootstrap: str, prefix: str, last: dict[str, str], n: int) -> float:
    launched = worker.start()
    topic = load_catalog().with_prefix(prefix)["profile_snapshots"].name
    _, done = asyncio.run(wait_for_snapshots(bootstrap, topic, last))
    rss, peak = worker.rss()
    rate = n / (done - launched)
    print(
        f"{worker.store:>8} worker: {done - launched:7.1f}s, {rate:8,.0f} events/s; "
        f"RSS {rss / 2**20:,.0f} MiB at the end, peak {peak / 2**20:,.0f} MiB",
        flush=True,
    )
    return rate


def recovery(worker: Worker, how: str, sig: int, data_dir: Path | None = None) -> float:
    worker.stop(sig)
    if data_dir is not None:
        shutil.rmtree(data_dir)
    launched = worker.start()
    seconds = worker.ready() - launched
    rss, _ = worker.rss()
    print(f" rocksdb worker ready {how}: {seconds:.1f}s (RSS {rss / 2**20:,.0f} MiB)", flush=True)
    return seconds


def _loaded(bootstrap: str, n: int, profiles: int) -> tuple[str, dict[str, str]]:
    prefix = f"bench{os.getpid()}."
    catalog = load_catalog().with_prefix(prefix)
    asyncio.run(apply_topics(catalog, bootstrap))
    return prefix, asyncio.run(load(bootstrap, catalog["chain_inputs"].name, n, profiles))


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--no-memory", action="store_true", help="RocksDB only")
    parser.add_argument(
        "--no-rebuild", action="store_true", help="skip the rebuild without the data directory"
    )
    args = parser.parse_args()
    n, profiles = args.events, args.profiles
    print(f"$ python -m bench.state --events {n} --profiles {profiles}")
    data_dir = Path(tempfile.mkdtemp(prefix="subledger-state-"))
    memory_rate = None
    try:
        if not args.no_memory:
            # Each store on a broker of its own, loaded the same: neither run reads a
            # broker the other one filled.
            with EmbeddedBroker(log_path=ROOT / "bench" / "broker.log") as broker:
                prefix, last = _loaded(broker.bootstrap, n, profiles)
                memory = Worker(broker.bootstrap, prefix, "memory", data_dir)
                memory_rate = fold(memory, broker.bootstrap, prefix, last, n)
                memory.stop()
        with EmbeddedBroker(log_path=ROOT / "bench" / "broker.log") as broker:
            prefix, last = _loaded(broker.bootstrap, n, profiles)
            disk = Worker(broker.bootstrap, prefix, "rocksdb", data_dir)
            disk_rate = fold(disk, broker.bootstrap, prefix, last, n)
            disk.ready()
            on_disk = _size(data_dir)
            print(
                f" rocksdb on disk: {on_disk / 2**20:,.0f} MiB, "
                f"{on_disk / profiles / 1024:,.2f} KiB per profile",
                flush=True,
            )
            clean = recovery(disk, "after a clean stop", signal.SIGTERM)
            killed = recovery(disk, "after SIGKILL", signal.SIGKILL)
            rebuilt = None
            if not args.no_rebuild:
                rebuilt = recovery(disk, "without its data directory", signal.SIGKILL, data_dir)
            disk.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print()
    if memory_rate is not None:
        print(f"rocksdb rate / memory rate: {disk_rate / memory_rate:.2f}")
    rebuild = "" if rebuilt is None else f", rebuild {rebuilt:.1f}s"
    print(f"recovery: clean stop {clean:.1f}s, SIGKILL {killed:.1f}s{rebuild}")


if __name__ == "__main__":
    main()
