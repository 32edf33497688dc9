from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runtime.broker import EmbeddedBroker
from tests.integration.stack import Stack


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture
async def stack(broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[Stack]:
    """Topics of its own (a unique prefix) and a consumer group of its own."""
    run = Stack(bootstrap=broker.bootstrap, logs=tmp_path)
    await run.create_topics()
    yield run
    run.stop_workers()
