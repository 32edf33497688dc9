"""Riding out a database restart: a process's session with PostgreSQL, started again with
backoff whenever the connection is lost, not-ready meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg

from runtime.health import Health

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_PAUSE, LAST_PAUSE = 0.5, 10.0
# A session that lasted this long was healthy: the next loss starts the backoff afresh.
HEALTHY_SECONDS = 30.0


async def reconnecting(
    name: str, health: Health, session: Callable[[], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Run `session` until it returns or `stop` is set; when it loses its connection
    (the server restarted, or is unreachable), report not-ready and start it again."""
    pause = FIRST_PAUSE
    while not stop.is_set():
        started = time.monotonic()
        try:
            await session()
            return
        except (psycopg.OperationalError, OSError) as error:
            if time.monotonic() - started > HEALTHY_SECONDS:
                pause = FIRST_PAUSE
            health.set(f"the database is unavailable ({type(error).__name__}); reconnecting")
            log.warning(
                "%s: database connection lost (%s); reconnecting in %.1fs",
                name,
                type(error).__name__,
                pause,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            pause = min(pause * 2, LAST_PAUSE)


def waiting_for(
    what: str,
    attempt: Callable[[], T],
    lost: tuple[type[BaseException], ...],
    patience: float,
    say: Callable[[str], None],
) -> T:
    """`attempt()`, tried again with backoff while it fails with one of `lost`, for at most
    `patience` seconds: a process started while `what` is out of reach waits for it (as a
    supervisor would start it again) instead of exiting at once. The last error is raised."""
    deadline = time.monotonic() + patience
    pause = FIRST_PAUSE
    while True:
        try:
            return attempt()
        except lost as error:
            if time.monotonic() + pause > deadline:
                raise
            say(f"{what} is out of reach ({type(error).__name__}); trying again in {pause:.1f}s")
            time.sleep(pause)
            pause = min(pause * 2, LAST_PAUSE)
