"""Waiting for the projector's next commit."""

from __future__ import annotations

import asyncio
import time

from api.commands import Projections


async def test_a_wait_ends_at_the_next_commit() -> None:
    projections = Projections()
    seen = projections.generation
    waiting = asyncio.create_task(projections.wait(seen, 5.0))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    projections.committed()
    await asyncio.wait_for(waiting, 1.0)


async def test_a_commit_since_the_last_look_ends_the_wait_at_once() -> None:
    projections = Projections()
    seen = projections.generation
    projections.committed()  # between reading the database and starting to wait
    started = time.monotonic()
    await projections.wait(seen, 5.0)
    assert time.monotonic() - started < 0.5


async def test_without_a_commit_a_wait_ends_at_its_timeout() -> None:
    projections = Projections()
    started = time.monotonic()
    await projections.wait(projections.generation, 0.05)
    assert 0.04 < time.monotonic() - started < 1.0
