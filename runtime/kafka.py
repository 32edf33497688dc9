"""Kafka client settings, per broker flavor: the one place a broker's quirks are handled."""

from __future__ import annotations

import time
from typing import Any

from runtime.settings import BrokerFlavor


def faust_settings(flavor: BrokerFlavor) -> dict[str, Any]:
    common: dict[str, Any] = {
        # Idempotence comes from the folds' seen ids, not from Kafka transactions.
        "processing_guarantee": "at_least_once",
        "consumer_auto_offset_reset": "earliest",
    }
    if flavor is BrokerFlavor.TANSU:
        return {
            **common,
            # Tansu holds a join for half the group's session timeout: 2 s gives ~1 s joins.
            "broker_session_timeout": 2.0,
            "broker_heartbeat_interval": 0.5,
            "broker_request_timeout": 10.0,
            # No idempotent producer on Tansu with aiokafka (InitProducerId v0 fails).
            "producer_acks": -1,
        }
    return {
        **common,
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 3.0,
        "producer_acks": -1,
    }


def producer_settings(flavor: BrokerFlavor) -> dict[str, Any]:
    """aiokafka producer arguments: acks from all replicas, idempotent where the broker can."""
    return {
        "acks": "all",
        "enable_idempotence": flavor is BrokerFlavor.KAFKA,
        "linger_ms": 5,
        "max_batch_size": 262_144,
    }


def stream_producer_settings(flavor: BrokerFlavor) -> dict[str, Any]:
    """The stream processor's producer: it hands over finished batches (up to a megabyte,
    a partition's share of one agent batch), compressed with zstd: states, snapshots and
    events repeat themselves, and a batch of them compresses to a fraction."""
    return {
        **producer_settings(flavor),
        "compression_type": "zstd",
        "max_batch_size": 1_000_000,
        "max_request_size": 8_000_000,
    }


def exact_changelog_tails(flavor: BrokerFlavor) -> bool:
    """Tansu answers ListOffsets(LATEST) with the newest batch's base offset + 1, which makes
    table recovery stop short. Ending each changelog partition's writes with a batch of one
    record keeps LATEST exact without giving up batching."""
    return flavor is BrokerFlavor.TANSU


def fetch_max_wait_ms(flavor: BrokerFlavor) -> int:
    """How long a fetch may wait for data. Kafka answers as soon as data arrives; Tansu holds
    a fetch for the whole wait even when data arrives meanwhile, so every hop between
    agents would cost up to this much latency (measured: 1500 ms gives a p50 of 373 ms per
    hop at 200 records/s, 20 ms gives 10 ms)."""
    return 20 if flavor is BrokerFlavor.TANSU else 500


def tune_faust_fetches(app: Any, flavor: BrokerFlavor) -> None:
    """Faust fixes its consumer's fetch wait at 1.5 s; set the flavor's instead. The fetcher
    reads the value for each request, so setting it once the consumer exists is enough
    (call it from a timer until then)."""
    thread = getattr(app.consumer, "_thread", None)
    fetcher = getattr(getattr(thread, "_consumer", None), "_fetcher", None)
    wait = fetch_max_wait_ms(flavor)
    if fetcher is not None and fetcher._fetch_max_wait_ms != wait:
        fetcher._fetch_max_wait_ms = wait


# A consumer whose fetches got no answer for this long has lost its broker (fetches are
# answered within the fetch wait, records or not, while the broker is there).
BROKER_SILENCE_SECONDS = 5.0


def broker_silence(consumer: Any) -> float | None:
    """Seconds since the broker last answered a fetch of any of the partitions the consumer
    reads (None before its first answer; paused partitions are not fetched)."""
    fetched = consumer.assignment() - consumer.paused()
    stamps = [consumer.last_poll_timestamp(tp) for tp in fetched]
    answered = [stamp for stamp in stamps if stamp is not None]
    return time.time() - max(answered) / 1000 if answered else None


def silence_reason(consumer: Any) -> str | None:
    """Why a consumer is not ready if its broker stopped answering, else None."""
    silence = broker_silence(consumer)
    if silence is not None and silence > BROKER_SILENCE_SECONDS:
        return f"the broker has not answered for {silence:.0f}s; reconnecting"
    return None


async def end_offsets(
    bootstrap: str, partitions: list[Any], flavor: BrokerFlavor, timeout: float = 30.0
) -> dict[Any, int]:
    """The offset after the last record of each partition.

    Kafka answers ListOffsets exactly. The development broker answers it with the base
    offset of the newest batch + 1 (dev-broker.md), but its fetch responses carry the
    true high watermark: a throwaway consumer fetches from each partition until every
    one has reported it."""
    import asyncio

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms(flavor),
        max_partition_fetch_bytes=1024,
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        if flavor is not BrokerFlavor.TANSU:
            return dict(await consumer.end_offsets(partitions))
        for tp in partitions:
            consumer.seek(tp, 0)
        async with asyncio.timeout(timeout):
            while any(consumer.highwater(tp) is None for tp in partitions):
                await consumer.getmany(timeout_ms=100, max_records=1)
        return {tp: consumer.highwater(tp) for tp in partitions}
    finally:
        await consumer.stop()


async def read_topic(
    bootstrap: str, topic: str, partitions: int, flavor: BrokerFlavor
) -> list[Any]:
    """Every record a topic holds now, partition by partition (a throwaway consumer)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    assigned = [TopicPartition(topic, p) for p in range(partitions)]
    ends = await end_offsets(bootstrap, assigned, flavor)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign(assigned)
        for tp in assigned:
            await consumer.seek_to_beginning(tp)
        left = {tp for tp in assigned if ends.get(tp, 0) > 0}
        while left:
            fetched = await consumer.getmany(timeout_ms=500)
            for tp, batch in fetched.items():
                records += batch
                if batch and batch[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
            if not fetched:
                left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return records
