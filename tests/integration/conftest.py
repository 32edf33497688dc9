from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import uvicorn

from runtime.broker import EmbeddedBroker, free_port
from tests.integration.stack import Stack
from tests.postgres import fresh_database, server_for_tests
from tests.receiver import Receiver


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture
async def stack(broker: EmbeddedBroker, database: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """Topics of its own (a unique prefix), a consumer group and a database of its own."""
    run = Stack(bootstrap=broker.bootstrap, logs=tmp_path, database_url=database)
    await run.create_topics()
    yield run
    run.stop_workers()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with server_for_tests(tmp_path_factory.mktemp("postgres") / "data") as url:
        yield url


@pytest.fixture
def database(postgres_server: str) -> Iterator[str]:
    """A migrated database of its own."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(free_port())
    server = uvicorn.Server(
        uvicorn.Config(receiver.app(), port=receiver.port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield receiver
    server.should_exit = True
    await task
