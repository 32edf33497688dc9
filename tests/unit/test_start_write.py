"""The projector's writes overlap the caller: `start_write` returns once a write's rows
are sent, and neither a failure nor a stop is lost on the way."""

from __future__ import annotations

import asyncio

import pytest

from projections.projector import start_write


async def test_it_returns_once_the_rows_are_sent_and_the_write_goes_on() -> None:
    merged = asyncio.Event()
    steps: list[str] = []

    async def write(copied: asyncio.Event) -> int:
        steps.append("copy")
        copied.set()
        await merged.wait()
        steps.append("merge")
        return 7

    task = await start_write(write)
    assert steps == ["copy"]
    assert not task.done()
    merged.set()
    assert await task == 7
    assert steps == ["copy", "merge"]


async def test_a_write_that_fails_before_its_rows_are_sent_surfaces_when_awaited() -> None:
    async def write(copied: asyncio.Event) -> int:
        raise ConnectionError("server closed the connection")

    task = await start_write(write)
    with pytest.raises(ConnectionError):
        await task


async def test_stopping_the_caller_stops_the_write() -> None:
    stopped = asyncio.Event()

    async def write(copied: asyncio.Event) -> int:
        try:
            await asyncio.Event().wait()  # never sends its rows
        finally:
            stopped.set()
        return 0

    caller = asyncio.create_task(start_write(write))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert stopped.is_set()
