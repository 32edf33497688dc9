"""Writes accepted notifications to their raw topic and waits for the broker's acknowledgement."""

from __future__ import annotations

from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingress.errors import BrokerUnavailableError
from runtime.kafka import producer_settings
from runtime.settings import BrokerFlavor


class Publisher(Protocol):
    async def publish(self, topic: str, key: bytes, value: bytes) -> None: ...


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

    @property
    def ready(self) -> bool:
        """Started: the producer has reached the broker and knows the cluster."""
        return self._producer is not None

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
