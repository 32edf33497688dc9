"""Packs and the sender: how one batch's output becomes Kafka batches."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from processors.stream.packs import PACK_BYTES, PackError, is_pack, packed, unpack
from processors.stream.sender import Partitioner, Sender, TransientError


def test_messages_are_packed_in_order_and_below_the_size_limit() -> None:
    messages = [orjson.dumps({"n": i, "pad": "x" * 1000}) for i in range(1000)]
    packs = list(packed(messages))
    assert len(packs) > 1
    assert all(len(pack) <= PACK_BYTES for pack in packs)
    assert [orjson.loads(m)["n"] for pack in packs for m in unpack(pack)] == list(range(1000))


def test_a_single_message_is_not_a_pack_and_a_bad_pack_is_refused() -> None:
    assert not is_pack(b'{"kind": "tick"}')
    assert is_pack(b"[]")
    with pytest.raises(PackError):
        unpack(b"[not json")


def test_the_partitioner_is_kafkas_default() -> None:
    # murmur2 of the key, as the Java client and aiokafka compute it.
    partition = Partitioner()
    assert partition(b"a", 8) == partition(b"a", 8)
    assert {partition(f"key-{i}".encode(), 8) for i in range(200)} == set(range(8))


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: None) -> object:
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        pass


class FakeProducer:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[tuple[str, int, list[tuple[bytes | None, bytes]]]] = []
        self.failures = failures

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.failures:
            self.failures -= 1
            future.set_exception(ConnectionError("broker away"))
        else:
            base = sum(len(r) for t, p, r in self.sent if (t, p) == (topic, partition))
            self.sent.append((topic, partition, batch.records))
            future.set_result(SimpleNamespace(offset=base))
        return future


async def test_internal_messages_travel_in_packs_and_tails_go_alone() -> None:
    producer = FakeProducer()
    partition = Partitioner()
    sender = Sender(
        producer,
        {"inputs": 2, "state": 2, "events": 2},
        partition,
        packed=frozenset({"inputs"}),
        exact_tails=frozenset({"state"}),
    )
    keys = [f"k{i}".encode() for i in range(20)]
    for key in keys:
        sender.send("inputs", key, orjson.dumps({"key": key.decode()}))
        sender.send("state", key, b"{}")
        sender.send("events", key, b"{}")
    await sender.deliver()
    inputs = [(p, records) for topic, p, records in producer.sent if topic == "inputs"]
    assert len(inputs) == 2  # one pack per partition
    for p, records in inputs:
        (pack,) = records
        assert all(partition(orjson.loads(m)["key"].encode(), 2) == p for m in unpack(pack[1]))
    state = [(p, len(records)) for topic, p, records in producer.sent if topic == "state"]
    # Per partition: the bulk, then the last record in a batch of its own, sent after it.
    assert sorted(n for _, n in state) == sorted([1, 1, *(n for _, n in state if n > 1)])
    assert [n for _, n in state][-2:] == [1, 1]
    events = sum(len(records) for topic, _, records in producer.sent if topic == "events")
    assert events == 20
    # The offset of each partition's last record, as a store that persists offsets needs.
    for p in (0, 1):
        written = sum(len(r) for topic, q, r in producer.sent if (topic, q) == ("state", p))
        assert sender.acknowledged[("state", p)] == written - 1


async def test_a_failed_batch_is_sent_again() -> None:
    producer = FakeProducer(failures=1)
    sender = Sender(producer, {"events": 1}, Partitioner())
    sender.send("events", b"k", b"v")
    await sender.deliver()
    assert producer.sent == [("events", 0, [(b"k", b"v")])]


async def test_a_delivery_waits_out_a_broker_outage_and_says_so() -> None:
    producer = FakeProducer(failures=4)
    reasons: list[str] = []
    sender = Sender(producer, {"events": 1}, Partitioner(), waiting=reasons.append)
    sender.send("events", b"k", b"v")
    await sender.deliver()
    assert producer.sent == [("events", 0, [(b"k", b"v")])]
    assert reasons == ["the broker does not acknowledge 1 records; retrying"] * 4


async def test_a_delivery_gives_up_after_its_patience() -> None:
    producer = FakeProducer(failures=1_000)
    sender = Sender(producer, {"events": 1}, Partitioner(), patience=0.5)
    sender.send("events", b"k", b"v")
    with pytest.raises(TransientError, match="1 records undelivered"):
        await sender.deliver()
    assert producer.sent == []
