"""The HTTP service on the whole stack: server-side API writes read back from PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from standardwebhooks.webhooks import Webhook

from projections.projector import PROJECTED
from runtime.broker import free_port
from tests.apple_notifications import notification, transaction
from tests.apple_signing import SigningAuthority
from tests.integration.stack import Stack
from tests.integration.test_ingress import apple_settings
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

KEY = "secret_live_test"
AUTH = {"Authorization": f"Api-Key {KEY}"}
INSTALLATION = {"installation_meta": {"device_id": "device-1", "platform": "iOS"}}


@dataclass
class Service:
    http: httpx.AsyncClient
    stack: Stack
    ca: SigningAuthority

    async def create(self, customer: str, **fields: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/api/v2/server-side-api/profile/",
            headers={**AUTH, "adapty-customer-user-id": customer},
            json={**INSTALLATION, **fields},
        )
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data


@pytest.fixture
async def service(stack: Stack, tmp_path: Path) -> AsyncIterator[Service]:
    ca = SigningAuthority()
    port = free_port()
    keys = {"api_keys": f'["{KEY}"]', "read_your_writes_seconds": "20"}
    stack.start_ingress(port, **apple_settings(tmp_path, ca), **keys)
    stack.start_worker()
    stack.start_projector()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield Service(http, stack, ca)


async def test_profile_lifecycle_reads_its_own_writes(service: Service) -> None:
    http = service.http
    created = await service.create(
        "user-1", email="Ann@Example.com", custom_attributes=[{"key": "plan", "value": "pro"}]
    )
    assert created["customer_user_id"] == "user-1"
    assert created["custom_attributes"] == [{"key": "plan", "value": "pro"}]
    assert created["access_levels"] == []
    profile = created["profile_id"]
    again = await service.create("user-1")  # the id is taken: the same profile answers
    assert again["profile_id"] == profile

    patched = await http.patch(
        "/api/v2/server-side-api/profile/",
        headers={**AUTH, "adapty-profile-id": profile},
        json={
            **INSTALLATION,
            "phone_number": "+15550001",
            "custom_attributes": [{"key": "plan", "value": None}, {"key": "seats", "value": 3}],
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["custom_attributes"] == [{"key": "seats", "value": 3.0}]

    found = await http.get("/api/v1/profiles", params={"q": "ann@example.COM"}, headers=AUTH)
    assert [p["profile_id"] for p in found.json()["data"]] == [profile]
    by_phone = await http.get("/api/v1/profiles", params={"q": "+15550001"}, headers=AUTH)
    assert [p["profile_id"] for p in by_phone.json()["data"]] == [profile]

    granted = await http.post(
        "/api/v2/server-side-api/purchase/profile/grant/access-level/",
        headers={**AUTH, "adapty-customer-user-id": "user-1"},
        json={"access_level_id": "premium"},
    )
    assert granted.status_code == 200, granted.text
    (level,) = granted.json()["data"]["access_levels"]
    assert level["access_level_id"] == "premium"
    assert level["is_active"]
    assert level["expires_at"] is None

    refused = await http.post(
        "/api/v2/server-side-api/purchase/profile/grant/access-level/",
        headers={**AUTH, "adapty-customer-user-id": "user-1"},
        json={"access_level_id": "gold"},
    )
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "paid_access_level_does_not_exist"

    deleted = await http.delete(
        "/api/v2/server-side-api/profile/", headers={**AUTH, "adapty-profile-id": profile}
    )
    assert deleted.status_code == 204
    gone = await http.get(f"/api/v1/profiles/{profile}", headers=AUTH)
    assert gone.status_code == 404
    assert gone.json()["error_code"] == "profile_does_not_exist"
    with psycopg.connect(service.stack.database_url) as connection:
        for table in ("profiles", "profile_events", "custom_attributes", "access_levels"):
            (count,) = connection.execute(
                f"SELECT count(*) FROM {table} WHERE profile_id = %s", (profile,)
            ).fetchone() or (0,)
            assert count == 0, table


async def test_the_service_listens_for_the_projectors_commits(service: Service) -> None:
    """Waiting calls wake when the projector commits, not at their next look."""
    listening = 0
    with psycopg.connect(service.stack.database_url, autocommit=True) as connection:
        for _ in range(50):  # it starts listening as the service starts
            (listening,) = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query = %s",
                (f"LISTEN {PROJECTED}",),
            ).fetchone() or (0,)
            if listening:
                break
            await asyncio.sleep(0.1)
    assert listening >= 1


async def test_a_signed_app_store_purchase_shows_in_the_profile(service: Service) -> None:
    created = await service.create("buyer")
    profile = created["profile_id"]
    tx = transaction(
        appAccountToken=profile,
        transactionId=f"t-{uuid.uuid4().hex[:8]}",
        originalTransactionId=f"o-{uuid.uuid4().hex[:8]}",
    )
    signed = notification(service.ca, tx=tx, notification_uuid=str(uuid.uuid4()))
    posted = await service.http.post("/webhooks/app-store", json={"signedPayload": signed})
    assert posted.status_code == 200, posted.text

    view: dict[str, Any] = {}
    for _ in range(100):
        response = await service.http.get(f"/api/v1/profiles/{profile}", headers=AUTH)
        view = response.json()["data"]
        if view["subscriptions"]:
            break
        await asyncio.sleep(0.2)
    assert view["subscription_state"] == "subscribed"
    assert Decimal(view["revenue"]["total_revenue_usd"]) == Decimal("9.99")
    (level,) = view["access_levels"]
    assert level["is_active"]
    listed = await service.http.get(
        "/api/v1/profiles", params={"q": tx["originalTransactionId"]}, headers=AUTH
    )
    assert [p["profile_id"] for p in listed.json()["data"]] == [profile]


async def test_bad_requests_are_refused_with_adaptys_codes(service: Service) -> None:
    http = service.http
    profile = (await service.create("checked"))["profile_id"]
    me = {**AUTH, "adapty-profile-id": profile}
    v2 = "/api/v2/server-side-api"
    v1 = "/api/v1/server-side-api/profile"
    cases: list[tuple[str, str, dict[str, str], Any, int, str]] = [
        ("GET", f"{v2}/profile/", {"adapty-profile-id": profile}, None, 401, "not_authenticated"),
        ("GET", f"{v2}/profile/", AUTH, None, 400, "validation_error"),
        (
            "GET",
            f"{v2}/profile/",
            {**AUTH, "adapty-profile-id": "x"},
            None,
            400,
            "validation_error",
        ),
        (
            "GET",
            f"{v2}/profile/",
            {**AUTH, "adapty-customer-user-id": "nobody"},
            None,
            404,
            "profile_does_not_exist",
        ),
        (
            "POST",
            f"{v2}/purchase/profile/grant/access-level/",
            {**AUTH, "adapty-customer-user-id": "nobody"},
            {"access_level_id": "premium"},
            400,
            "profile_does_not_exist",
        ),
        ("PATCH", f"{v2}/profile/", me, {"gender": "x", **INSTALLATION}, 400, "enum"),
        (
            "PATCH",
            f"{v2}/profile/",
            me,
            {"birthday": "soon", **INSTALLATION},
            400,
            "datetime",
        ),
        ("PATCH", f"{v2}/profile/", me, {"email": "ann", **INSTALLATION}, 400, "validation_error"),
        ("PATCH", f"{v2}/profile/", me, {"first_name": "Ann"}, 400, "base_error"),
        ("POST", f"{v2}/purchase/profile/revoke/access-level/", me, "{", 400, "validation_error"),
        (
            "POST",
            f"{v2}/purchase/profile/revoke/access-level/",
            me,
            {"access_level_id": "premium"},
            400,
            "profile_paid_access_level_does_not_exist",
        ),
        (
            "PATCH",
            f"{v2}/profile/",
            me,
            {**INSTALLATION, "custom_attributes": [{"key": "no spaces", "value": "1"}]},
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/server-side-api/profile/notes/",
            me,
            {"text": "x" * 256},
            400,
            "validation_error",
        ),
        # What the read models cannot keep, and what no column holds.
        ("POST", f"{v1}/notes/", me, {"text": "call\x00first"}, 400, "validation_error"),
        ("GET", "/api/v1/profiles?q=a%00b", AUTH, None, 400, "validation_error"),
        (
            "POST",
            "/api/v1/segments",
            AUTH,
            {"name": "huge", "filters": {"ltv_min": "1e1000000"}},
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks/deliveries/99999999999999999999/redeliver",
            AUTH,
            None,
            400,
            "validation_error",
        ),
        # Routing's own answers, in the same shape.
        ("GET", "/api/v1/nothing-here", AUTH, None, 404, "not_found"),
        ("PUT", "/api/v1/segments", AUTH, None, 405, "method_not_allowed"),
    ]
    for method, path, headers, document, status, code in cases:
        content = document if isinstance(document, str) else None
        response = await http.request(
            method,
            path,
            headers=headers,
            json=None if content is not None else document,
            content=content,
        )
        assert (response.status_code, response.json()["error_code"]) == (status, code), (
            method,
            path,
            document,
            response.text,
        )
        assert set(response.json()) == {"errors", "error_code", "status_code"}

    too_large = await http.post(f"{v1}/notes/", headers=me, content=b"x" * 2_000_000)
    assert (too_large.status_code, too_large.json()["error_code"]) == (413, "request_too_large")
    not_allowed = await http.put("/api/v1/segments", headers=AUTH)
    assert {"GET", "POST"} <= {m.strip() for m in not_allowed.headers["allow"].split(",")}

    # Nothing refused changed the profile.
    after = await http.get(f"{v2}/profile/", headers=me)
    assert after.json()["data"]["custom_attributes"] == []
    notes = await http.get(f"/api/v1/profiles/{profile}", headers=AUTH)
    assert notes.json()["data"]["notes"] == []
    assert after.json()["data"]["custom_attributes"] == []
    assert after.json()["data"]["access_levels"] == []

    await http.post(
        f"{v2}/purchase/profile/grant/access-level/",
        headers=me,
        json={"access_level_id": "premium", "expires_at": "2099-01-01T00:00:00Z"},
    )
    late = await http.post(
        f"{v2}/purchase/profile/revoke/access-level/",
        headers=me,
        json={"access_level_id": "premium", "revoke_at": "2100-01-01T00:00:00Z"},
    )
    assert late.json()["error_code"] == "revocation_date_more_than_expiration_date"
    assert late.json()["errors"][0]["source"] == "revoke_at"


async def test_purchases_and_profile_commands_read_their_own_writes(service: Service) -> None:
    http = service.http
    buyer = (await service.create("payer"))["profile_id"]
    heir = (await service.create("heir"))["profile_id"]
    me = {**AUTH, "adapty-profile-id": buyer}
    bought = await http.post(
        "/api/v2/server-side-api/purchase/set/transaction/",
        headers=me,
        json={
            "purchase_type": "subscription",
            "store": "stripe",
            "store_product_id": "pro.yearly",
            "store_transaction_id": "in_2",
            "store_original_transaction_id": "sub_1",
            "price": {"country": "DE", "currency": "USD", "value": 49.5},
            "purchased_at": "2026-11-01T00:00:00Z",
            "originally_purchased_at": "2026-11-01T00:00:00Z",
            "expires_at": "2099-11-01T00:00:00Z",
            "renew_status": True,
        },
    )
    assert bought.status_code == 200, bought.text
    data = bought.json()["data"]
    assert data["total_revenue_usd"] == 49.5
    (subscription,) = data["subscriptions"]
    assert (subscription["store"], subscription["store_transaction_id"]) == ("stripe", "in_2")
    assert data["access_levels"][0]["is_active"]

    v1 = "/api/v1/server-side-api/profile"
    noted = await http.post(f"{v1}/notes/", headers=me, json={"text": "VIP, **call first**"})
    assert noted.status_code == 200, noted.text
    (note,) = noted.json()["data"]["notes"]
    edited = await http.patch(f"{v1}/notes/{note['note_id']}/", headers=me, json={"text": "VIP"})
    assert [n["text"] for n in edited.json()["data"]["notes"]] == ["VIP"]
    emailed = await http.post(
        f"{v1}/email-events/",
        headers=me,
        json={
            "email_id": "e1",
            "campaign_id": "c1",
            "event": "sent",
            "occurred_at": "2026-11-02T00:00:00Z",
        },
    )
    assert emailed.json()["data"]["email"]["sent"] == 1
    unsubscribed = await http.post(f"{v1}/unsubscribe/", headers=me)
    assert unsubscribed.json()["data"]["email_subscribed"] is False

    restored = await http.post(
        f"{v1}/restore/",
        headers={**AUTH, "adapty-profile-id": heir},
        json={"store": "stripe", "store_original_transaction_ids": ["sub_1"]},
    )
    assert restored.status_code == 200, restored.text
    (shared,) = restored.json()["data"]["access_levels"]
    assert shared["shared_from_profile_id"] == buyer

    moved = await http.post(f"{v1}/transfer/", headers=me, json={"to_profile_id": heir})
    assert moved.status_code == 200, moved.text
    page = await http.get(f"/api/v1/profiles/{buyer}/events", headers=AUTH)
    journey = page.json()["data"]
    kinds = [e["event_type"] for e in journey]
    assert {"profile_created", "subscription_started", "entitlements_transferred"} <= set(kinds)
    instants = [datetime.fromisoformat(e["event_datetime"]) for e in journey]
    assert instants == sorted(instants, reverse=True)


async def test_a_profile_event_reaches_a_webhook_endpoint_signed(
    service: Service, receiver: Receiver
) -> None:
    created = await service.http.post(
        "/api/v1/webhooks/endpoints",
        json={"url": receiver.url, "event_types": ["profile_created"]},
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    (secret,) = created.json()["data"]["secrets"]
    service.stack.start_dispatcher()
    profile = (await service.create("hooked"))["profile_id"]
    for _ in range(150):
        if receiver.got:
            break
        await asyncio.sleep(0.2)
    (got,) = receiver.got
    event = Webhook(secret).verify(got.body, got.headers)
    assert (event["event_type"], event["profile_id"]) == ("profile_created", profile)
    assert event["customer_user_id"] == "hooked"
