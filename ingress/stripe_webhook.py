"""Stripe webhooks: `Stripe-Signature` verified by the stripe library on the raw body."""

from __future__ import annotations

from typing import Any

import orjson
import stripe

from ingress.errors import IngressError

TOLERANCE_SECONDS = 300


class StripeVerifier:
    """Accepts a body signed with any configured secret: two are valid while one rotates."""

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = secrets

    def verify(self, body: bytes, header: str | None) -> dict[str, Any]:
        if not header:
            raise IngressError(
                400,
                "validation_error",
                "Stripe-Signature",
                "the Stripe-Signature header is required",
            )
        text = body.decode(errors="replace")
        for secret in self._secrets:
            try:
                stripe.WebhookSignature.verify_header(text, header, secret, TOLERANCE_SECONDS)
                break
            except stripe.SignatureVerificationError:
                continue
        else:
            raise IngressError(
                401,
                "invalid_signature",
                "Stripe-Signature",
                "signature does not verify, or its timestamp is too old",
            )
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise IngressError(
                400, "malformed_json", "non_field_errors", f"the body is not JSON: {error}"
            ) from error
        if not isinstance(event, dict) or not str(event.get("id", "")).startswith("evt_"):
            raise IngressError(400, "validation_error", "id", "a Stripe event needs an evt_ id")
        data = event.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
            raise IngressError(
                400, "validation_error", "data.object", "a Stripe event's data.object is an object"
            )
        if not isinstance(event.get("type"), str):
            raise IngressError(400, "validation_error", "type", "a Stripe event has a type")
        return event
