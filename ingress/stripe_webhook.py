"""Stripe webhooks: `Stripe-Signature` verified by the stripe library on the raw body, and
the Stripe API calls that complete a refunded charge with its invoice."""

from __future__ import annotations

from typing import Any, Protocol

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


class StripeInvoices(Protocol):
    """The Stripe API calls that find the invoice a refunded charge paid."""

    def invoice(self, invoice_id: str) -> dict[str, Any] | None: ...

    def invoice_paid_by(self, payment_intent: str) -> dict[str, Any] | None: ...


class StripeApi:
    """`StripeInvoices` through the stripe library, with a restricted key that reads
    invoices; `base` points it at a stand-in (development, tests)."""

    def __init__(self, api_key: str, base: str | None = None) -> None:
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": base} if base else {}, max_network_retries=2
        )

    def invoice(self, invoice_id: str) -> dict[str, Any] | None:
        try:
            return self._client.v1.invoices.retrieve(invoice_id).to_dict()
        except stripe.InvalidRequestError as error:
            if error.http_status == 404:
                return None
            raise

    def invoice_paid_by(self, payment_intent: str) -> dict[str, Any] | None:
        """From API version 2025-03-31 a charge no longer names its invoice: the invoice
        payment made by its payment intent does."""
        page = self._client.v1.invoice_payments.list(
            {
                "payment": {"type": "payment_intent", "payment_intent": payment_intent},
                "limit": 1,
                "expand": ["data.invoice"],
            }
        )
        for payment in page.data:
            invoice = payment.to_dict().get("invoice")
            if isinstance(invoice, dict):
                return invoice
            if isinstance(invoice, str):
                return self.invoice(invoice)
        return None


def invoice_lookup(charge: dict[str, Any]) -> tuple[str, str] | None:
    """What to ask the Stripe API for a charge's invoice, when the charge does not carry it
    expanded: ("invoice", id) or ("payment_intent", id); None when it cannot have one."""
    invoice = charge.get("invoice")
    if isinstance(invoice, dict):
        return None
    if isinstance(invoice, str) and invoice:
        return "invoice", invoice
    intent = charge.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    if isinstance(intent, str) and intent and "invoice" not in charge:
        return "payment_intent", intent
    return None
