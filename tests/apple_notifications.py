"""Signed App Store notifications for tests: what Apple would post for a transaction."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.apple_signing import SigningAuthority

BUNDLE = "com.example.subledger"
APP_APPLE_ID = 1_234_567_890
DAY_MS = 86_400_000


def transaction(**changes: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    claims: dict[str, Any] = {
        "transactionId": "2000000002",
        "originalTransactionId": "2000000001",
        "bundleId": BUNDLE,
        "productId": "premium.monthly",
        "purchaseDate": now,
        "originalPurchaseDate": now,
        "expiresDate": now + 30 * DAY_MS,
        "type": "Auto-Renewable Subscription",
        "inAppOwnershipType": "PURCHASED",
        "environment": "Production",
        "price": 9990,
        "currency": "USD",
        "storefront": "USA",
        "signedDate": now,
    }
    return {**claims, **changes}


def notification(
    ca: SigningAuthority,
    kind: str = "SUBSCRIBED",
    subtype: str | None = "INITIAL_BUY",
    tx: dict[str, Any] | None = None,
    renewal: dict[str, Any] | None = None,
    environment: str = "Production",
    bundle: str = BUNDLE,
    notification_uuid: str | None = None,
) -> str:
    now = int(time.time() * 1000)
    data: dict[str, Any] = {
        "environment": environment,
        "bundleId": bundle,
        "appAppleId": APP_APPLE_ID,
    }
    tx = transaction() if tx is None else tx
    data["signedTransactionInfo"] = ca.sign({**tx, "environment": environment, "bundleId": bundle})
    renewal = {
        "originalTransactionId": tx["originalTransactionId"],
        "autoRenewStatus": 1,
        "productId": tx["productId"],
        "signedDate": now,
        **(renewal or {}),
    }
    data["signedRenewalInfo"] = ca.sign({**renewal, "environment": environment})
    claims = {
        "notificationType": kind,
        "notificationUUID": notification_uuid or str(uuid.uuid4()),
        "version": "2.0",
        "signedDate": now,
        "data": data,
    }
    if subtype:
        claims["subtype"] = subtype
    return ca.sign(claims)
