"""App Store notifications over HTTP: kept on the real broker, folded into the profile."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from runtime.broker import free_port
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
