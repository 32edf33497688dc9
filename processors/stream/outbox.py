"""What one batch sends, sent in order and flushed before the batch's state is written.

Output first, state second: a crash before the state write replays the inputs (the
folds emit the same messages, with the same ids); a crash after it finds the inputs
seen, their output already delivered. Transient broker errors are retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

RETRIES = 8


class TransientError(Exception):
    """The broker stayed unavailable through every retry."""


async def with_retries(action: Callable[[], Awaitable[Any]], what: str) -> Any:
    delay = 0.1
    for attempt in range(1, RETRIES + 1):
        try:
            return await action()
        except (KafkaError, ConnectionError, TimeoutError) as error:
            if attempt == RETRIES:
                raise TransientError(f"{what}: {error!r}") from error
            log.warning("%s failed (%r), retry %d in %.1fs", what, error, attempt, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


@dataclass
class Outbox:
    records: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    def add(self, topic: str, key: bytes, value: bytes) -> None:
        self.records.append((topic, key, value))

    async def deliver(self, producer: Any) -> None:
        """Send everything and wait until the broker acknowledged every record."""
        pending = self.records
        delay = 0.1
        for attempt in range(1, RETRIES + 1):
            # The producer itself, not Faust's channel machinery: the records are bytes already.
            futures = [
                await producer.send(topic, key, value, None, None, None)
                for topic, key, value in pending
            ]
            await producer.flush()
            results = await asyncio.gather(*futures, return_exceptions=True)
            failed = [
                r
                for r, result in zip(pending, results, strict=True)
                if isinstance(result, BaseException)
            ]
            if not failed:
                self.records = []
                return
            if attempt == RETRIES:
                raise TransientError(f"{len(failed)} records undelivered: {results!r}")
            log.warning("%d records undelivered, retry %d in %.1fs", len(failed), attempt, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            pending = failed
