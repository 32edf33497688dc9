"""Outbound webhooks to a real HTTP receiver on loopback, with state in real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from standardwebhooks.webhooks import Webhook

from api.app import create_api, database_engine
from ingress.app import Ingress
from projections.webhooks import Dispatcher, Policy
from runtime.catalog import load_catalog
from runtime.settings import Settings
from tests.corpus import corpus
from tests.history import Record, project, records
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

KEY = "webhook-key"
AUTH = {"Authorization": f"Api-Key {KEY}"}
FAST = Policy(schedule=(0.3, 0.3, 0.3), timeout=2.0, concurrency=50, jitter=0.0)


class Unpublished:
    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        raise AssertionError(f"nothing is published here ({topic})")

    async def unavailable(self) -> str | None:
        return None


@dataclass
class Hooks:
    http: httpx.AsyncClient
    url: str
    log: list[Record]

    async def endpoint(self, receiver: Receiver, **body: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/api/v1/webhooks/endpoints",
            json={"url": receiver.url, "authorization": "Bearer r3c", **body},
            headers=AUTH,
        )
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    async def deliveries(self) -> list[dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(self.url) as connection:
            cursor = await connection.execute(
                "SELECT delivery_id, webhook_id, profile_id::text, sequence, status, attempts, "
                "payload FROM webhook_deliveries ORDER BY delivery_id"
            )
            names = [c.name for c in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]

    async def dispatch_until(
        self, done: Callable[[list[dict[str, Any]]], bool], policy: Policy = FAST
    ) -> list[dict[str, Any]]:
        stop = asyncio.Event()
        task = asyncio.create_task(Dispatcher(self.url, policy, allow_private=True).run(stop))
        deadline = time.monotonic() + 30
        try:
            while True:
                rows = await self.deliveries()
                if done(rows):
                    return rows
                assert time.monotonic() < deadline, [r["status"] for r in rows]
                assert not task.done(), task.exception()
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await task


def all_succeeded(rows: list[dict[str, Any]]) -> bool:
    return bool(rows) and all(r["status"] == "succeeded" for r in rows)


@pytest.fixture
async def hooks(database: str) -> AsyncIterator[Hooks]:
    creates, rest = corpus(6)
    log = records([*creates, *rest])
    engine = database_engine(database)
    app = create_api(
        Ingress(load_catalog(), Unpublished()),
        engine,
        Settings(api_keys=(KEY,), webhook_private_addresses=True),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield Hooks(http, database, log)
    await engine.dispose()


async def test_deliveries_are_signed_and_verify_with_the_endpoint_secret(
    hooks: Hooks, receiver: Receiver
) -> None:
    endpoint = await hooks.endpoint(receiver)
    await project(hooks.url, [hooks.log])
    events = [r.json for r in hooks.log if r.topic == "profile_events"]
    rows = await hooks.dispatch_until(all_succeeded)
    assert len(rows) == len(events)
    assert len(receiver.got) == len(events)
    (secret,) = endpoint["secrets"]
    for got in receiver.got:
        payload = Webhook(secret).verify(got.body, got.headers)
        assert got.headers["authorization"] == "Bearer r3c"
        assert payload["event_properties"]["profile_event_id"] == payload["profile_event_id"]
    assert {orjson.loads(g.body)["profile_event_id"] for g in receiver.got} == {
        e["profile_event_id"] for e in events
    }
    tampered = receiver.got[0]
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(tampered.body + b" ", tampered.headers)


async def test_a_500_then_a_200_is_one_success_after_two_attempts(
    hooks: Hooks, receiver: Receiver
) -> None:
    receiver.fail_first = 1
    await hooks.endpoint(receiver, event_types=["subscription_started", "trial_started"])
    await project(hooks.url, [hooks.log])
    rows = await hooks.dispatch_until(all_succeeded)
    assert {r["attempts"] for r in rows} == {2}
    for row in rows:
        answers = [g.status for g in receiver.got if g.webhook_id == row["webhook_id"]]
        assert answers == [500, 200]
    listed = await hooks.http.get("/api/v1/webhooks/deliveries", headers=AUTH)
    log = listed.json()["data"][0]["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 200]
    # Pages: `cursor` is the `next_cursor` of the previous page, as on every list.
    paged, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (
            await hooks.http.get("/api/v1/webhooks/deliveries", headers=AUTH, params=params)
        ).json()
        paged += [d["delivery_id"] for d in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == [d["delivery_id"] for d in listed.json()["data"]]


async def test_each_profiles_events_arrive_in_order_under_concurrency(
    hooks: Hooks, receiver: Receiver
) -> None:
    receiver.delay = lambda: random.uniform(0, 0.03)
    receiver.fail_first = 1
    await hooks.endpoint(receiver)
    await project(hooks.url, [hooks.log])
    rows = await hooks.dispatch_until(all_succeeded)
    expected: dict[str, list[str]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["sequence"]):
        expected[row["profile_id"]].append(row["webhook_id"])
    arrived: dict[str, list[str]] = defaultdict(list)
    for got in receiver.got:
        if got.status == 200:
            arrived[orjson.loads(got.body)["profile_id"]].append(got.webhook_id)
    assert arrived == expected
    assert len(expected) > 1


async def test_a_dispatcher_restarted_mid_retry_loses_nothing(
    hooks: Hooks, receiver: Receiver
) -> None:
    receiver.fail_first = 1
    await hooks.endpoint(receiver)
    await project(hooks.url, [hooks.log])
    slow = Policy(schedule=(60.0,), timeout=2.0, concurrency=50, jitter=0.0)

    # The first dispatcher tries the head of each profile's queue once (the rest wait
    # behind it, in order), then stops with every retry pending.
    def heads_tried(rows: list[dict[str, Any]]) -> bool:
        profiles = {r["profile_id"] for r in rows}
        return bool(rows) and sum(r["attempts"] == 1 for r in rows) == len(profiles)

    rows = await hooks.dispatch_until(heads_tried, slow)
    assert {r["status"] for r in rows} == {"pending"}
    async with await psycopg.AsyncConnection.connect(hooks.url, autocommit=True) as connection:
        await connection.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
    rows = await hooks.dispatch_until(all_succeeded)
    assert {r["attempts"] for r in rows} == {2}
    assert len({g.webhook_id for g in receiver.got if g.status == 200}) == len(rows)


async def test_a_replay_sends_nothing_new(hooks: Hooks, receiver: Receiver) -> None:
    await hooks.endpoint(receiver)
    await project(hooks.url, [hooks.log])
    rows = await hooks.dispatch_until(all_succeeded)
    sent = len(receiver.got)
    await project(hooks.url, [hooks.log[i : i + 10] for i in range(0, len(hooks.log), 10)])
    assert await hooks.deliveries() == rows
    await hooks.dispatch_until(lambda _: True)
    assert len(receiver.got) == sent


async def test_a_rotated_secret_and_the_previous_one_both_verify(
    hooks: Hooks, receiver: Receiver
) -> None:
    endpoint = await hooks.endpoint(receiver)
    rotated = await hooks.http.post(
        f"/api/v1/webhooks/endpoints/{endpoint['endpoint_id']}/rotate-secret", headers=AUTH
    )
    new, old = rotated.json()["data"]["secrets"]
    assert old == endpoint["secrets"][0]
    await project(hooks.url, [hooks.log[:20]])
    await hooks.dispatch_until(all_succeeded)
    for got in receiver.got:
        Webhook(new).verify(got.body, got.headers)
        Webhook(old).verify(got.body, got.headers)


async def test_the_endpoint_must_answer_adaptys_handshake(hooks: Hooks, receiver: Receiver) -> None:
    receiver.answer_check = False
    response = await hooks.http.post(
        "/api/v1/webhooks/endpoints", json={"url": receiver.url}, headers=AUTH
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == "endpoint_check_failed"
    listed = await hooks.http.get("/api/v1/webhooks/endpoints", headers=AUTH)
    assert listed.json()["data"] == []


async def test_an_endpoint_failing_too_long_is_disabled_and_can_be_redelivered(
    hooks: Hooks, receiver: Receiver
) -> None:
    receiver.always_fail = True
    endpoint = await hooks.endpoint(receiver, event_types=["profile_created"])
    await project(hooks.url, [hooks.log])
    brief = Policy(
        schedule=(0.2,) * 20, timeout=2.0, disable_after=timedelta(seconds=1), jitter=0.0
    )
    endpoints = "/api/v1/webhooks/endpoints"

    async def disabled() -> bool:
        listed = await hooks.http.get(endpoints, headers=AUTH)
        return listed.json()["data"][0]["disabled_at"] is not None

    stop = asyncio.Event()
    dispatcher = Dispatcher(hooks.url, brief, allow_private=True)
    task = asyncio.create_task(dispatcher.run(stop))
    deadline = time.monotonic() + 20
    while not await disabled():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    # /ready counts the deliveries the disabled endpoint holds, for an operator to see.
    while dispatcher.health.counts.get("held_deliveries") != 6:
        assert time.monotonic() < deadline + 15, dispatcher.health.counts
        await asyncio.sleep(0.2)
    stop.set()
    await task
    receiver.always_fail = False
    await hooks.http.post(f"{endpoints}/{endpoint['endpoint_id']}/enable", headers=AUTH)
    rows = await hooks.dispatch_until(all_succeeded)
    assert len(rows) == 6
    redone = await hooks.http.post(
        f"/api/v1/webhooks/deliveries/{rows[0]['delivery_id']}/redeliver", headers=AUTH
    )
    assert redone.status_code == 200
    before = len(receiver.got)
    await hooks.dispatch_until(all_succeeded)
    assert len(receiver.got) == before + 1
    assert receiver.got[-1].webhook_id == rows[0]["webhook_id"]
    ranged = await hooks.http.post(
        "/api/v1/webhooks/deliveries/redeliver",
        json={
            "endpoint_id": endpoint["endpoint_id"],
            "since": "2000-01-01T00:00:00Z",
            "status": "any",
        },
        headers=AUTH,
    )
    assert ranged.json()["data"]["redelivering"] == 6
    await hooks.dispatch_until(all_succeeded)
    assert len(receiver.got) == before + 1 + 6


async def test_the_dispatcher_rides_out_a_database_restart(
    hooks: Hooks, receiver: Receiver
) -> None:
    """Its connections end (as at a database restart): it reports not-ready, reconnects
    with backoff and delivers what was queued meanwhile, each delivery once."""
    await hooks.endpoint(receiver)
    dispatcher = Dispatcher(hooks.url, FAST, allow_private=True)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.sleep(0.5)
        async with await psycopg.AsyncConnection.connect(hooks.url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        await project(hooks.url, [hooks.log])
        deadline = time.monotonic() + 30
        while not all_succeeded(rows := await hooks.deliveries()):
            assert time.monotonic() < deadline, [r["status"] for r in rows]
            assert not task.done(), "the dispatcher must not exit on a lost connection"
            await asyncio.sleep(0.1)
        assert dispatcher.health.ready
    finally:
        stop.set()
        await task
    ids = [g.webhook_id for g in receiver.got]
    assert len(ids) == len(set(ids)) == len(rows)
