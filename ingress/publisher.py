"""Writes accepted notifications to their raw topic and waits for the broker's acknowledgement."""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingress.errors import BrokerUnavailableError
from runtime.kafka import producer_settings
from runtime.settings import BrokerFlavor


class Publisher(Protocol):
    async def publish(self, topic: str, key: bytes, value: bytes) -> None: ...

    async def unavailable(self) -> str | None:
        """Why nothing can be published now; None while the broker answers."""
        ...


class KafkaPublisher:
    def __init__(self, bootstrap: str, flavor: BrokerFlavor, timeout_seconds: float = 10.0) -> None:
        self._settings = {
            "bootstrap_servers": bootstrap,
            "request_timeout_ms": int(timeout_seconds * 1000),
            **producer_settings(flavor),
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # aiokafka binds a producer to the running loop: made here, not at construction.
        self._producer = AIOKafkaProducer(**self._settings)
        await self._producer.start()

    async def unavailable(self, timeout: float = 2.0) -> str | None:
        """Asks the broker for its metadata: an answer within `timeout` proves it reachable
        now (a producer's connections are made on demand, so their state alone does not
        tell)."""
        if self._producer is None:
            return "the broker producer is not started"
        try:
            async with asyncio.timeout(timeout):
                await self._producer.client.fetch_all_metadata()
        except (KafkaError, TimeoutError, OSError) as error:
            return f"the broker does not answer ({type(error).__name__})"
        return None

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        if self._producer is None:
            raise BrokerUnavailableError("the publisher is not started")
        try:
            await self._producer.send_and_wait(topic, value, key=key)
        except KafkaError as error:
            raise BrokerUnavailableError(str(error)) from error
