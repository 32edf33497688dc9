"""App Store notifications over HTTP: kept on the real broker, folded into the profile."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from runtime.broker import free_port
from schemas.enums import Store
from schemas.raw import RawNotification
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


async def test_a_signed_stripe_invoice_reaches_the_profile(stack: Stack) -> None:
    port = free_port()
    stack.start_ingress(port, stripe_webhook_secrets='["whsec_test"]')
    stack.start_worker()
    profile = uuid.uuid4()
    now = int(time.time())
    body = orjson.dumps(
        {
            "id": f"evt_{stack.name}",
            "object": "event",
            "type": "invoice.paid",
            "created": now,
            "livemode": True,
            "data": {
                "object": {
                    "id": f"in_{stack.name}",
                    "object": "invoice",
                    "amount_paid": 1999,
                    "currency": "usd",
                    "billing_reason": "subscription_create",
                    "parent": {
                        "subscription_details": {
                            "subscription": f"sub_{stack.name}",
                            "metadata": {"profile_id": str(profile)},
                        }
                    },
                    "lines": {
                        "data": [
                            {
                                "period": {"start": now, "end": now + 30 * 86400},
                                "pricing": {
                                    "price_details": {
                                        "price": "price_m",
                                        "product": "premium.monthly",
                                    }
                                },
                            }
                        ]
                    },
                }
            },
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
    assert response.status_code == 200
    snapshots = await stack.snapshots(
        lambda latest: (
            latest.get(str(profile), {}).get("revenue", {}).get("total_revenue_usd") == "19.99"
        )
    )
    assert snapshots[str(profile)]["subscription_state"] == "subscribed"


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
