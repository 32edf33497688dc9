"""A broker outage: every process says it is not ready while the broker is away, the HTTP
service answers 503 (a store retries), and once it is back everything resumes: what was
accepted before reaches the read models, and so does what comes after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from bench.faults import BrokerLink
from runtime.broker import EmbeddedBroker, free_port
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

KEY = "secret_live_test"
AUTH = {"Authorization": f"Api-Key {KEY}"}
INSTALLATION = {"installation_meta": {"device_id": "device-1", "platform": "iOS"}}
ROLES = ("api", "worker", "projector")


@pytest.fixture
def link(tmp_path: Path) -> Iterator[BrokerLink]:
    """A broker of its own, reached by every client only through a relay the test cuts."""
    port = free_port()
    with (
        EmbeddedBroker(log_path=tmp_path / "tansu.log", advertised_port=port) as broker,
        BrokerLink(port, broker.port) as relay,
    ):
        yield relay


@pytest.fixture
async def cut_off(link: BrokerLink, database: str, tmp_path: Path) -> AsyncIterator[Stack]:
    stack = Stack(bootstrap=f"127.0.0.1:{link.port}", logs=tmp_path, database_url=database)
    await stack.create_topics()
    yield stack
    stack.stop_workers()


async def readiness(http: httpx.AsyncClient, url: str) -> tuple[int, str]:
    try:
        answer = await http.get(url, timeout=3)
    except httpx.TransportError as error:
        return 0, type(error).__name__
    return answer.status_code, answer.json().get("reason", "")


async def until(http: httpx.AsyncClient, urls: dict[str, str], status: int) -> dict[str, str]:
    """Wait until every process answers /ready with `status`; their reasons."""
    deadline = time.monotonic() + 90
    while True:
        answers = {role: await readiness(http, url) for role, url in urls.items()}
        if all(code == status for code, _ in answers.values()):
            return {role: reason for role, (_, reason) in answers.items()}
        if time.monotonic() > deadline:
            raise AssertionError(f"not all {status} after 90 s: {answers}")
        await asyncio.sleep(0.5)


async def create(http: httpx.AsyncClient, customer: str) -> httpx.Response:
    return await http.post(
        "/api/v2/server-side-api/profile/",
        headers={**AUTH, "adapty-customer-user-id": customer},
        json=INSTALLATION,
    )


async def test_every_process_rides_out_a_broker_outage(
    cut_off: Stack, link: BrokerLink, database: str
) -> None:
    ports = {role: free_port() for role in ROLES}
    cut_off.start_ingress(ports["api"], api_keys=f'["{KEY}"]', read_your_writes_seconds="20")
    cut_off.start_worker(metrics_port=str(ports["worker"]))
    cut_off.start_projector(metrics_port=str(ports["projector"]))
    urls = {role: f"http://127.0.0.1:{port}/ready" for role, port in ports.items()}
    base = f"http://127.0.0.1:{ports['api']}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await until(http, urls, 200)
        assert (await create(http, "before")).status_code == 200

        await asyncio.to_thread(link.cut)
        reasons = await until(http, urls, 503)
        assert all("broker" in reason for reason in reasons.values()), reasons
        started = time.monotonic()
        refused = await create(http, "during")
        # Not a server error, and not a hang: the store (or the app) tries again later.
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "5"
        assert time.monotonic() - started < 15

        await asyncio.to_thread(link.restore)
        await until(http, urls, 200)
        after = await create(http, "after")
        assert after.status_code == 200, after.text
        assert after.json()["data"]["customer_user_id"] == "after"

    async with await psycopg.AsyncConnection.connect(database) as connection:
        cursor = await connection.execute(
            "SELECT view->>'customer_user_id' FROM profiles ORDER BY 1"
        )
        customers = {row[0] for row in await cursor.fetchall()}
    assert {"before", "after"} <= customers
