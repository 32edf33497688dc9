"""What one batch sends, as whole Kafka batches per partition, awaited before state moves.

Output first, state second: a crash before a batch's state is written replays its
inputs (the folds emit the same messages, with the same ids); a crash after it finds the
inputs seen, their output delivered. Transient broker errors are retried with backoff.

Records are grouped by partition and handed to the producer as finished batches, which
costs a few microseconds a record instead of a producer call each. Messages for an
internal topic are packed (`packs.py`): one record per partition and pack.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from processors.stream.packs import packed
from runtime.settings import Settings

log = logging.getLogger(__name__)

# How long a delivery is tried again while the broker does not acknowledge it, unless
# the worker says otherwise: the setting's default.
PATIENCE_SECONDS: float = Settings.model_fields["patience_seconds"].default

Record = tuple[bytes | None, bytes]
# A batch handed to the producer: its acknowledgement to come, and how many records it holds.
Sent = tuple["asyncio.Future[Any]", int]


class TransientError(Exception):
    """The broker did not acknowledge a delivery for as long as the sender waits."""


class Partitioner:
    """Kafka's default partitioner (murmur2 of the key), as Faust's tables and every
    client use it; remembered per key, since a fold sends to the same keys again and again."""

    def __init__(self, limit: int = 1 << 20) -> None:
        self._known: dict[tuple[bytes, int], int] = {}
        self._limit = limit

    def __call__(self, key: bytes, partitions: int) -> int:
        found = self._known.get((key, partitions))
        if found is None:
            if len(self._known) >= self._limit:
                self._known.clear()
            found = self._known[(key, partitions)] = (murmur2(key) & 0x7FFFFFFF) % partitions
        return found


@dataclass
class Sender:
    producer: Any
    # Partitions of every topic this sender writes to, by name.
    partitions: Mapping[str, int]
    partitioner: Partitioner
    # Internal topics: their messages travel in packs.
    packed: frozenset[str] = frozenset()
    # Topics whose every partition must end with a batch of one record (see runtime/kafka).
    exact_tails: frozenset[str] = frozenset()
    _records: dict[tuple[str, int], list[Record]] = field(default_factory=lambda: defaultdict(list))
    _messages: dict[tuple[str, int], list[bytes]] = field(default_factory=lambda: defaultdict(list))
    # The last offset the broker acknowledged per partition, by the latest `deliver`.
    acknowledged: dict[tuple[str, int], int] = field(default_factory=dict)
    patience: float = PATIENCE_SECONDS
    # Told why, while a delivery is being tried again (the worker is not ready meanwhile).
    waiting: Callable[[str], None] = lambda reason: None

    def partition_of(self, topic: str, key: bytes) -> int:
        return self.partitioner(key, self.partitions[topic])

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        partition = self.partitioner(key, self.partitions[topic])
        if topic in self.packed:
            self._messages[(topic, partition)].append(value)
        else:
            self._records[(topic, partition)].append((key, value))

    def send_to(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        """A record for a partition chosen by the caller (a record kept beside a state
        goes to the state's partition, whatever its own key hashes to)."""
        self._records[(topic, partition)].append((key, value))

    def __len__(self) -> int:
        return sum(map(len, self._records.values())) + sum(map(len, self._messages.values()))

    async def deliver(self) -> None:
        """Send everything and wait until the broker acknowledged every record."""
        for where, messages in self._messages.items():
            self._records[where] += [(None, pack) for pack in packed(messages)]
        self._messages.clear()
        pending = {where: records for where, records in self._records.items() if records}
        self._records.clear()
        self.acknowledged = {}
        delay, deadline = 0.1, time.monotonic() + self.patience
        while failed := await self._send(pending):
            undelivered = sum(map(len, failed.values()))
            if time.monotonic() + delay > deadline:
                raise TransientError(f"{undelivered} records undelivered for {self.patience:g}s")
            self.waiting(f"the broker does not acknowledge {undelivered} records; retrying")
            log.warning("%d batches undelivered, retrying in %.1fs", len(failed), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            pending = failed

    async def _send(
        self, pending: dict[tuple[str, int], list[Record]]
    ) -> dict[tuple[str, int], list[Record]]:
        sent: list[tuple[tuple[str, int], list[Record], list[Sent]]] = []
        # Every partition's records first, then the tails: the producer puts one batch
        # per partition in a request, so each round costs one request.
        bulk, tails = [], []
        for (topic, partition), records in pending.items():
            if topic in self.exact_tails and len(records) > 1:
                bulk.append(((topic, partition), records[:-1]))
                tails.append(((topic, partition), records[-1:]))
            else:
                bulk.append(((topic, partition), records))
        for (topic, partition), chunk in bulk + tails:
            try:
                futures = await self._send_batches(topic, partition, chunk)
            except (KafkaError, ConnectionError, TimeoutError) as error:
                log.warning("sending to %s[%d] failed: %r", topic, partition, error)
                future = asyncio.get_running_loop().create_future()
                future.set_exception(error)
                futures = [(future, 0)]
            sent.append(((topic, partition), chunk, futures))
        failed: dict[tuple[str, int], list[Record]] = defaultdict(list)
        for where, chunk, futures in sent:
            results = await asyncio.gather(*(f for f, _ in futures), return_exceptions=True)
            if any(isinstance(result, BaseException) for result in results):
                failed[where] += chunk
                continue
            for result, (_, count) in zip(results, futures, strict=True):
                # A batch's records take consecutive offsets from its base offset.
                last = cast(Any, result).offset + count - 1
                self.acknowledged[where] = max(last, self.acknowledged.get(where, last))
        return dict(failed)

    async def _send_batches(self, topic: str, partition: int, records: list[Record]) -> list[Sent]:
        """Hand the records to the producer as whole batches, which it sends in order."""
        futures: list[Sent] = []
        batch, count = self.producer.create_batch(), 0
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                batch.close()
                futures.append((await self._send_batch(batch, topic, partition), count))
                batch, count = self.producer.create_batch(), 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record for {topic} is larger than a whole batch")
            count += 1
        batch.close()
        futures.append((await self._send_batch(batch, topic, partition), count))
        return futures

    async def _send_batch(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await self.producer.send_batch(
            batch, topic, partition=partition
        )
        return future
