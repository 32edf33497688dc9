"""App Store notifications over HTTP: kept on the real broker, folded into the profile."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from runtime.broker import free_port
from schemas.enums import Store
from schemas.raw import RawNotification
from simulator.run import StoreApis
from tests.apple_notifications import APP_APPLE_ID, BUNDLE, notification, transaction
from tests.apple_signing import SigningAuthority
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration


def apple_settings(tmp_path: Path, ca: SigningAuthority) -> dict[str, str]:
    root = tmp_path / "root.der"
    root.write_bytes(ca.root_der)
    return {
        "apple_bundle_id": BUNDLE,
        "apple_app_apple_id": str(APP_APPLE_ID),
        "apple_environment": "Production",
        "apple_root_certificates": f'["{root}"]',
    }


async def test_a_signed_notification_is_kept_and_reaches_the_profile(
    stack: Stack, tmp_path: Path
) -> None:
    ca = SigningAuthority()
    port = free_port()
    stack.start_ingress(port, **apple_settings(tmp_path, ca))
    stack.start_worker()
    profile = uuid.uuid4()
    tx = transaction(
        appAccountToken=str(profile),
        transactionId=f"t-{stack.name}",
        originalTransactionId=f"o-{stack.name}",
    )
    signed = notification(ca, tx=tx, notification_uuid=f"n-{stack.name}")
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"http://127.0.0.1:{port}/webhooks/app-store", json={"signedPayload": signed}
        )
        refused = await http.post(
            f"http://127.0.0.1:{port}/webhooks/app-store",
            json={"signedPayload": notification(SigningAuthority())},
        )
    assert response.status_code == 200
    assert refused.status_code == 401

    (raw,) = await stack.read("raw_app_store", lambda records: len(records) >= 1)
    assert raw["dedupe_key"] == f"n-{stack.name}"
    assert raw["payload"]["data"]["transaction"]["appAccountToken"] == str(profile)

    snapshots = await stack.snapshots(
        lambda latest: (
            latest.get(str(profile), {}).get("revenue", {}).get("total_revenue_usd") == "9.99"
        )
    )
    view = snapshots[str(profile)]
    assert (view["subscription_state"], view["purchase_status"]) == (
        "subscribed",
        "active_subscriber",
    )
    assert view["access_levels"][0]["is_active"]


def stripe_invoice(name: str, profile: uuid.UUID, now: int) -> dict[str, object]:
    return {
        "id": f"in_{name}",
        "object": "invoice",
        "amount_paid": 1999,
        "currency": "usd",
        "billing_reason": "subscription_create",
        "payment_intent": f"pi_{name}",
        "parent": {
            "subscription_details": {
                "subscription": f"sub_{name}",
                "metadata": {"profile_id": str(profile)},
            }
        },
        "lines": {
            "data": [
                {
                    "period": {"start": now, "end": now + 30 * 86400},
                    "pricing": {
                        "price_details": {"price": "price_m", "product": "premium.monthly"}
                    },
                }
            ]
        },
    }


async def post_stripe(port: int, event_id: str, kind: str, obj: dict[str, object]) -> None:
    now = int(time.time())
    body = orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "created": now,
            "livemode": True,
            "data": {"object": obj},
        }
    )
    signature = hmac.new(b"whsec_test", f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"http://127.0.0.1:{port}/webhooks/stripe",
            content=body,
            headers={
                "Stripe-Signature": f"t={now},v1={signature}",
                "content-type": "application/json",
            },
        )
    assert response.status_code == 200, response.text


def revenue_is(profile: uuid.UUID, amount: str) -> Callable[[dict[str, Any]], bool]:
    def reached(latest: dict[str, Any]) -> bool:
        revenue = latest.get(str(profile), {}).get("revenue", {})
        return bool(revenue.get("total_revenue_usd") == amount)

    return reached


async def test_a_signed_stripe_invoice_and_its_refunds_reach_the_profile(stack: Stack) -> None:
    """An invoice, then a partial and a full refund of the charge that paid it, named by
    invoice id only (API versions before 2025-03-31): ingress fetches the invoice from the
    Stripe API (the simulator's stand-in, over HTTP) and the profile nets each refund."""
    apis = StoreApis()
    port = free_port()
    profile = uuid.uuid4()
    invoice = stripe_invoice(stack.name, profile, int(time.time()))
    async with apis.serving(free_port()) as stripe_api:
        stack.start_ingress(
            port,
            stripe_webhook_secrets='["whsec_test"]',
            stripe_api_key="sk_test_integration",
            stripe_api_base=stripe_api,
        )
        stack.start_worker()
        await post_stripe(port, f"evt_{stack.name}", "invoice.paid", invoice)
        snapshots = await stack.snapshots(revenue_is(profile, "19.99"))
        assert snapshots[str(profile)]["subscription_state"] == "subscribed"

        apis.saw({"data": {"object": invoice}})
        charge = {
            "id": f"ch_{stack.name}",
            "object": "charge",
            "amount": 1999,
            "currency": "usd",
            "invoice": invoice["id"],
            "payment_intent": invoice["payment_intent"],
        }
        partial = charge | {"amount_refunded": 500, "refunded": False}
        await post_stripe(port, f"evt_{stack.name}_r1", "charge.refunded", partial)
        snapshots = await stack.snapshots(revenue_is(profile, "14.99"))
        assert snapshots[str(profile)]["subscription_state"] == "subscribed"
        assert snapshots[str(profile)]["revenue"]["total_proceeds_usd"] == "14.9900"

        full = charge | {"amount_refunded": 1999, "refunded": True}
        await post_stripe(port, f"evt_{stack.name}_r2", "charge.refunded", full)
        snapshots = await stack.snapshots(revenue_is(profile, "0.00"))
    view = snapshots[str(profile)]
    assert view["purchase_status"] == "refunded"
    assert not view["access_levels"][0]["is_active"]


async def test_a_google_play_notification_kept_raw_is_normalized_by_the_worker(
    stack: Stack,
) -> None:
    profile = uuid.uuid4()
    now = datetime.now(UTC).replace(microsecond=0)
    notification = {
        "version": "1.0",
        "packageName": "com.example",
        "eventTimeMillis": str(int(now.timestamp() * 1000)),
        "subscriptionNotification": {"notificationType": 4, "purchaseToken": f"tok-{stack.name}"},
    }
    state = {
        "subscriptionState": "SUBSCRIPTION_STATE_ACTIVE",
        "startTime": now.isoformat().replace("+00:00", "Z"),
        "externalAccountIdentifiers": {"obfuscatedExternalAccountId": str(profile)},
        "lineItems": [
            {
                "productId": "premium.monthly",
                "latestSuccessfulOrderId": "GPA.9-0",
                "expiryTime": (now + timedelta(days=30)).isoformat().replace("+00:00", "Z"),
                "autoRenewingPlan": {
                    "autoRenewEnabled": True,
                    "recurringPrice": {"currencyCode": "USD", "units": "4", "nanos": 990000000},
                },
            }
        ],
    }
    raw = RawNotification(
        store=Store.PLAY_STORE,
        dedupe_key=f"m-{stack.name}",
        received_at=now,
        body=base64.b64encode(b"{}").decode(),
        fetched={"subscription": state},
        payload={"message_id": f"m-{stack.name}", "notification": notification},
    )
    stack.start_worker()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            stack.catalog["raw_play_store"].name,
            raw.model_dump_json().encode(),
            key=f"play_store:tok-{stack.name}".encode(),
        )
    finally:
        await producer.stop()
    snapshots = await stack.snapshots(
        lambda latest: (
            latest.get(str(profile), {}).get("revenue", {}).get("total_revenue_usd") == "4.99"
        )
    )
    assert snapshots[str(profile)]["subscription_state"] == "subscribed"
