"""Raw store notifications as ingress accepted them: kept forever, replayable."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from schemas.boundary import Frozen, Instant
from schemas.enums import Store


class RawNotification(Frozen):
    """Exactly what a store sent, what it decoded to, and when it was accepted."""

    # The body and the store's signed strings are as long as the store makes them (the
    # request size limit bounds them).
    model_config = ConfigDict(str_max_length=None)

    kind: Literal["raw_notification"] = "raw_notification"
    store: Store
    # The store's own dedupe key: notificationUUID, Pub/Sub messageId, Stripe event id.
    dedupe_key: str = Field(min_length=1)
    received_at: Instant
    # The request body byte for byte, so a later version can decode it again.
    body: str
    # The verified, decoded payload (nested signed data decoded too).
    payload: dict[str, Any]
    # Store state fetched to complete the notification (Google Play Developer API).
    fetched: dict[str, Any] | None = None
