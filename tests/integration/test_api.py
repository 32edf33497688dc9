"""The HTTP service on the whole stack: server-side API writes read back from PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from runtime.broker import free_port
from tests.apple_notifications import notification, transaction
from tests.apple_signing import SigningAuthority
from tests.integration.stack import Stack
from tests.integration.test_ingress import apple_settings

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
