"""The query API on real PostgreSQL, over read models projected from the scenario corpus.

Expected answers come from the snapshots themselves, filtered and sorted in Python.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_api, database_engine
from api.reads import SORTS, ReadModels
from ingress.app import Ingress
from processors.core.integration import Context, envelope
from projections import tables
from runtime.catalog import load_catalog
from runtime.settings import Settings
from schemas.api import PageQuery
from schemas.base import from_builtins, to_json
from schemas.commands import RestorePurchases, SetCustomAttributes, UpdateProfile
from schemas.enums import EventType
from schemas.messages import Input
from schemas.outputs import ProfileEvent
from schemas.profile import CustomAttribute, ProfileFields
from schemas.views import ProfileView
from tests.builders import T0
from tests.corpus import corpus, profile_id
from tests.history import Record, project, records

pytestmark = pytest.mark.integration

KEY = "query-key"
AUTH = {"Authorization": f"Api-Key {KEY}"}
PROFILES = 20


class Unpublished:
    """The query API publishes nothing; a write here is a test failure."""

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        raise AssertionError(f"the query API published to {topic}")

    async def unavailable(self) -> str | None:
        return None


def details(i: int) -> list[Input]:
    at = T0 + timedelta(days=1, hours=i)
    fields = ProfileFields(
        email=f"User{i}@Example.com",
        phone_number=f"+1555{i:04d}",
        ip_country="US" if i % 2 else "DE",
    )
    return [
        UpdateProfile(
            command_id=f"details-{i}",
            issued_at=at,
            profile_id=profile_id(i),
            fields=fields,
            seen_at=at if i % 4 else None,
        ),
        SetCustomAttributes(
            command_id=f"tier-{i}",
            issued_at=at,
            profile_id=profile_id(i),
            custom_attributes=(
                CustomAttribute(key="tier", value="gold" if i % 3 == 0 else "free"),
            ),
        ),
    ]


@dataclass
class Catalogue:
    http: httpx.AsyncClient
    engine: AsyncEngine
    url: str
    views: dict[str, dict[str, Any]]
    log: list[Record]

    async def ids(self, **params: Any) -> list[str]:
        response = await self.http.get("/api/v1/profiles", params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        return [p["profile_id"] for p in response.json()["data"]]

    async def all_pages(self, size: int, **params: Any) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            query = {**params, "limit": size, **({"cursor": cursor} if cursor else {})}
            response = await self.http.get("/api/v1/profiles", params=query, headers=AUTH)
            body = response.json()
            seen += [p["profile_id"] for p in body["data"]]
            cursor = body["next_cursor"]
            if cursor is None:
                return seen

    def expected(self, keep: Callable[[dict[str, Any]], bool]) -> set[str]:
        return {pid for pid, view in self.views.items() if keep(view)}


@pytest.fixture
async def catalogue(database: str) -> AsyncIterator[Catalogue]:
    creates, rest = corpus(PROFILES)
    extra = [item for i in range(PROFILES) for item in details(i)]
    # Profile 1 restores profile 0's App Store chain: it inherits profile 0's access.
    restore = RestorePurchases(
        command_id="restore-a0",
        issued_at=T0 + timedelta(days=3),
        profile_id=profile_id(1),
        chain_keys=("app_store:a0",),
    )
    log = records([*creates, *extra, *rest, restore])
    await project(database, [log[i : i + 25] for i in range(0, len(log), 25)])
    views: dict[str, dict[str, Any]] = {}
    for record in log:
        if record.topic == "profile_snapshots":
            views[str(record.json["profile_id"])] = record.json
    settings = Settings(api_keys=(KEY,))
    engine = database_engine(database)
    app = create_api(Ingress(load_catalog(), Unpublished()), engine, settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield Catalogue(http, engine, database, views, log)
    await engine.dispose()


async def test_the_list_needs_an_api_key(catalogue: Catalogue) -> None:
    for headers in ({}, {"Authorization": "Api-Key wrong"}, {"Authorization": KEY}):
        response = await catalogue.http.get("/api/v1/profiles", headers=headers)
        assert response.status_code == 401
        assert response.json()["error_code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"subscription_state": "subscribed"}, lambda v: v["subscription_state"] == "subscribed"),
        (
            {"subscription_state": ["trial_cancelled", "subscription_cancelled"]},
            lambda v: v["subscription_state"] in ("trial_cancelled", "subscription_cancelled"),
        ),
        ({"purchase_status": "refunded"}, lambda v: v["purchase_status"] == "refunded"),
        ({"purchase_status": "purchased"}, lambda v: v["purchase_status"] == "purchased"),
        (
            {"store": "play_store"},
            lambda v: any(
                p["store"] == "play_store" for p in [*v["subscriptions"], *v["non_subscriptions"]]
            ),
        ),
        ({"country": "us"}, lambda v: v["fields"].get("ip_country") == "US"),
        (
            {"environment": "Production"},
            lambda v: bool(v["subscriptions"] or v["non_subscriptions"]),
        ),
        (
            {"access_level": "premium"},
            lambda v: any(a["is_active"] for a in v["access_levels"]),
        ),
        ({"ltv_min": "20"}, lambda v: Decimal(v["revenue"]["total_revenue_usd"]) >= 20),
        (
            {"ltv_min": "1", "ltv_max": "49.99"},
            lambda v: 1 <= Decimal(v["revenue"]["total_revenue_usd"]) <= Decimal("49.99"),
        ),
        (
            {"created_from": (T0 + timedelta(hours=5)).isoformat()},
            lambda v: (
                v["created_at"] >= (T0 + timedelta(hours=5)).isoformat().replace("+00:00", "Z")
            ),
        ),
        (
            {"created_to": (T0 + timedelta(hours=5)).isoformat()},
            lambda v: (
                v["created_at"] <= (T0 + timedelta(hours=5)).isoformat().replace("+00:00", "Z")
            ),
        ),
        ({"last_seen_from": T0.isoformat()}, lambda v: v["last_seen_at"] is not None),
    ],
)
async def test_every_filter_matches_the_snapshots(
    catalogue: Catalogue, params: dict[str, Any], keep: Callable[[dict[str, Any]], bool]
) -> None:
    expected = catalogue.expected(keep)
    assert expected, "the corpus should exercise this filter"
    assert set(await catalogue.ids(**params, limit=200)) == expected
    if len(expected) < len(catalogue.views):
        assert expected != set(catalogue.views)


async def test_filters_refuse_bad_values(catalogue: Catalogue) -> None:
    for params, source in (
        ({"subscription_state": "happy"}, "subscription_state.0"),
        ({"ltv_min": "5", "ltv_max": "1"}, "non_field_errors"),
        ({"created_from": "yesterday"}, "created_from"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ):
        response = await catalogue.http.get("/api/v1/profiles", params=params, headers=AUTH)
        assert response.status_code == 400, params
        assert response.json()["errors"][0]["source"] == source, params


async def test_search_finds_a_profile_by_any_of_its_keys(catalogue: Catalogue) -> None:
    i = 6
    pid = str(profile_id(i))
    view = catalogue.views[pid]
    keys = [pid, f"user-{i}", f"user{i}@example.com", f"USER{i}@EXAMPLE.COM", f"+1555{i:04d}"]
    for key in keys:
        assert await catalogue.ids(q=key) == [pid], key
    purchases = [*view["subscriptions"], *view["non_subscriptions"]]
    transaction_ids = {p[k] for p in purchases for k in p if k.endswith("transaction_id")}
    assert transaction_ids, "the profile should hold purchases"
    for transaction_id in sorted(transaction_ids):
        assert pid in await catalogue.ids(q=transaction_id), transaction_id
    assert await catalogue.ids(q="nobody@example.com") == []


@pytest.mark.parametrize("sort", ["ltv", "created_at", "last_seen_at", "last_activity_at"])
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_pages_walk_the_sorted_list_once(catalogue: Catalogue, sort: str, order: str) -> None:
    whole = await catalogue.ids(sort=sort, order=order, limit=200)
    assert sorted(whole) == sorted(catalogue.views)
    assert await catalogue.all_pages(3, sort=sort, order=order) == whole
    column = {"ltv": lambda v: Decimal(v["revenue"]["total_revenue_usd"])}.get(sort)
    if column is not None:
        values = [column(catalogue.views[pid]) for pid in whole]
        assert values == sorted(values, reverse=order == "desc")


@pytest.mark.parametrize(
    ("sort", "index"),
    [
        ("ltv", "profiles_ltv"),
        ("created_at", "profiles_created"),
        ("last_seen_at", "profiles_last_seen"),
        ("last_activity_at", "profiles_last_activity"),
    ],
)
async def test_a_sorted_page_is_read_from_its_index(
    catalogue: Catalogue, sort: str, index: str
) -> None:
    """A page past a cursor is read in order from the sort's index, not sorted whole."""
    P = tables.profiles.c
    key = SORTS[sort]
    after = Decimal(1000) if sort == "ltv" else T0
    statement = (
        sa.select(P.profile_id)
        .where(sa.tuple_(key, P.profile_id) < sa.tuple_(sa.literal(after), sa.literal(uuid4())))
        .order_by(key.desc(), P.profile_id.desc())
        .limit(4)
    )
    compiled = statement.compile(dialect=catalogue.engine.dialect)
    async with catalogue.engine.connect() as connection:
        # The table is small enough to scan; the question is whether the index can serve.
        await connection.exec_driver_sql("SET enable_seqscan = off")
        result = await connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
        plan = "\n".join(row[0] for row in result)
    assert f"Scan Backward using {index} on profiles" in plan, plan
    assert "Sort" not in plan, plan


async def test_pagination_is_stable_while_profiles_arrive(catalogue: Catalogue) -> None:
    first = await catalogue.http.get(
        "/api/v1/profiles", params={"sort": "ltv", "limit": 5}, headers=AUTH
    )
    page = first.json()
    # A new profile lands between page requests: the walk neither repeats nor skips.
    newcomer = {**next(iter(catalogue.views.values())), "profile_id": str(uuid4()), "version": 1}
    await project(catalogue.url, [[Record("profile_snapshots", orjson.dumps(newcomer))]])
    rest = await catalogue.all_pages(5, sort="ltv", cursor=page["next_cursor"])
    walked = [p["profile_id"] for p in page["data"]] + rest
    assert len(walked) == len(set(walked))
    assert set(catalogue.views) <= set(walked)


async def test_segments_are_evaluated_live(catalogue: Catalogue) -> None:
    http = catalogue.http
    created = await http.post(
        "/api/v1/segments",
        json={"name": "gold payers", "filters": {"attributes": {"tier": "gold"}, "ltv_min": "1"}},
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    segment = created.json()["data"]["segment_id"]
    duplicate = await http.post("/api/v1/segments", json={"name": "gold payers"}, headers=AUTH)
    assert duplicate.status_code == 409
    expected = catalogue.expected(
        lambda v: (
            v["custom_attributes"].get("tier") == "gold"
            and Decimal(v["revenue"]["total_revenue_usd"]) >= 1
        )
    )
    assert expected
    assert set(await catalogue.ids(segment=segment, limit=200)) == expected
    member = sorted(expected)[0]
    detail = await http.get(f"/api/v1/profiles/{member}", headers=AUTH)
    assert [s["name"] for s in detail.json()["data"]["segments"]] == ["gold payers"]
    listed = await http.get("/api/v1/segments", headers=AUTH)
    assert [s["name"] for s in listed.json()["data"]] == ["gold payers"]
    assert (await http.delete(f"/api/v1/segments/{segment}", headers=AUTH)).status_code == 204
    assert (await http.delete(f"/api/v1/segments/{segment}", headers=AUTH)).status_code == 404
    missing = await http.get("/api/v1/profiles", params={"segment": segment}, headers=AUTH)
    assert missing.status_code == 404


async def test_the_profile_page_names_each_segment_the_profile_matches(
    catalogue: Catalogue,
) -> None:
    http = catalogue.http
    for name, filters in [
        ("everyone", {}),
        ("whales", {"ltv_min": "1000000"}),
        ("gold", {"attributes": {"tier": "gold"}}),
    ]:
        created = await http.post(
            "/api/v1/segments", json={"name": name, "filters": filters}, headers=AUTH
        )
        assert created.status_code == 201, created.text
    for pid, view in catalogue.views.items():
        detail = await http.get(f"/api/v1/profiles/{pid}", headers=AUTH)
        names = sorted(s["name"] for s in detail.json()["data"]["segments"])
        gold = view["custom_attributes"].get("tier") == "gold"
        assert names == ["everyone", "gold"] if gold else ["everyone"], pid


async def test_a_segment_stored_with_filters_now_refused_breaks_no_page(
    catalogue: Catalogue,
) -> None:
    """Saved before the boundary refused it (`ltv_min` of 1e1000000): the profile pages
    answer without it, and listing its members says what to do."""
    segment = uuid4()
    async with catalogue.engine.begin() as db:
        await db.execute(
            sa.insert(tables.segments).values(
                segment_id=segment,
                name="absurd",
                filters={"ltv_min": "1e1000000"},
                created_at=datetime.now(UTC),
            )
        )
    try:
        pid = sorted(catalogue.views)[0]
        detail = await catalogue.http.get(f"/api/v1/profiles/{pid}", headers=AUTH)
        assert detail.status_code == 200, detail.text
        assert "absurd" not in [s["name"] for s in detail.json()["data"]["segments"]]
        members = await catalogue.http.get(
            "/api/v1/profiles", params={"segment": str(segment)}, headers=AUTH
        )
        assert (members.status_code, members.json()["error_code"]) == (
            409,
            "segment_filters_invalid",
        )
    finally:
        assert (
            await catalogue.http.delete(f"/api/v1/segments/{segment}", headers=AUTH)
        ).status_code == 204


async def test_the_profile_page_shows_everything(catalogue: Catalogue) -> None:
    pid = str(profile_id(3))
    response = await catalogue.http.get(f"/api/v1/profiles/{pid}", headers=AUTH)
    data = response.json()["data"]
    view = catalogue.views[pid]
    for key in ("access_levels", "subscriptions", "non_subscriptions", "custom_attributes"):
        assert data[key] == view[key], key
    assert "mail" not in data
    assert data["email"]["ltv_usd"] == view["revenue"]["total_revenue_usd"]
    assert {"sent", "delivered", "opened", "clicked", "open_rate"} <= set(data["email"])
    linked = [p for p in catalogue.views.values() if p["inheritors"] or p["parents"]]
    assert linked, "the corpus restores chains across profiles"
    other = linked[0]
    page = await catalogue.http.get(f"/api/v1/profiles/{other['profile_id']}", headers=AUTH)
    body = page.json()["data"]
    assert (body["inheritors"], body["parents"]) == (other["inheritors"], other["parents"])
    unknown = await catalogue.http.get(f"/api/v1/profiles/{uuid4()}", headers=AUTH)
    assert unknown.status_code == 404


async def test_the_journey_is_newest_first_and_paginated(catalogue: Catalogue) -> None:
    pid = str(profile_id(1))
    mine = [r for r in catalogue.log if r.topic == "profile_events" and r.json["profile_id"] == pid]
    mine.sort(key=lambda r: (datetime.fromisoformat(str(r.json["event_datetime"])), r.sequence))
    expected = [r.json for r in reversed(mine)]
    walked: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await catalogue.http.get(f"/api/v1/profiles/{pid}/events", params=params, headers=AUTH)
        ).json()
        walked += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["profile_event_id"] for e in walked] == [e["profile_event_id"] for e in expected]
    assert walked[-1]["event_type"] == "profile_created"


async def test_a_future_dated_event_is_stored_but_hidden_until_due(catalogue: Catalogue) -> None:
    pid = profile_id(2)
    due = datetime.now(UTC) + timedelta(days=3)
    renewal = ProfileEvent(
        profile_event_id=uuid4(),
        event_type=EventType.SUBSCRIPTION_RENEWED,
        event_datetime=due,
        profile_id=pid,
        is_future_dated=True,
    )
    view = from_builtins(ProfileView, catalogue.views[str(pid)])
    event = envelope(renewal, Context.of_view(view))
    record = Record("profile_events", to_json(event), sequence=10**6)
    await project(catalogue.url, [[record]])
    reads = ReadModels(catalogue.engine)
    shown_now = await reads.events(pid, PageQuery(limit=200), datetime.now(UTC))
    shown_later = await reads.events(pid, PageQuery(limit=200), due)
    ids = str(event.profile_event_id)
    assert ids not in [e["profile_event_id"] for e in shown_now.data]
    assert shown_later.data[0]["profile_event_id"] == ids
    assert shown_later.data[0]["event_properties"]["is_future_dated"] is True


async def test_a_write_is_visible_once_its_journey_events_are_in(catalogue: Catalogue) -> None:
    """The snapshot and the events of a command travel on two topics: an answer that read
    the profile at the command's version must also find the command's events."""
    pid = profile_id(3)
    view = from_builtins(ProfileView, catalogue.views[str(pid)])
    noted = ProfileEvent(
        profile_event_id=uuid4(),
        event_type=EventType.PROFILE_UPDATED,
        event_datetime=T0,
        profile_id=pid,
    )
    reads = ReadModels(catalogue.engine)
    assert await reads.visible(pid, view.version)
    assert not await reads.visible(pid, view.version, event_ids=[noted.profile_event_id])
    event = envelope(noted, Context.of_view(view))
    record = Record("profile_events", to_json(event), sequence=10**6)
    await project(catalogue.url, [[record]])
    assert await reads.visible(pid, view.version, event_ids=[noted.profile_event_id])
    assert not await reads.visible(pid, view.version + 1, event_ids=[noted.profile_event_id])
