"""Stripe subscription, invoice and refund events to canonical events (facts 5.2, 5.3, 6.2).

A chain is a Stripe subscription. Its transactions are its paid invoices: they carry
the money and the periods, so no amount is counted twice. Subscription events carry the
renewal state (auto-renew, failed payments, pause), and a deletion ends access at once.
A refunded charge nets what it gave back from the invoice it paid (DOMAIN.md 6): the
charge names its invoice (before API version 2025-03-31, as an id unless expanded), and
ingress keeps the invoice it fetched beside the event when the charge does not carry it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from processors.normalize.canonical import checked, must
from processors.normalize.money import Rates, from_minor_units
from schemas.enums import (
    CancellationReason,
    Environment,
    EventType,
    OfferCategory,
    OfferType,
    Store,
)
from schemas.events import (
    Offer,
    ProfileRef,
    RenewalInfo,
    StoreEvent,
    TransactionInfo,
    TransactionPatch,
)
from schemas.raw import RawNotification

E = EventType
R = CancellationReason

FOLDED = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "charge.refunded",
    }
)
_REASONS = {
    "cancellation_requested": R.VOLUNTARILY_CANCELLED,
    "payment_failed": R.BILLING_ERROR,
    "payment_disputed": R.REFUND,
}
_TRIAL = Offer(category=OfferCategory.INTRODUCTORY, type=OfferType.FREE_TRIAL)


def instant(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def subscription_of(event: dict[str, Any], fetched: dict[str, Any] | None = None) -> str | None:
    """The subscription a Stripe event is about: the chain it belongs to (a charge's is
    its invoice's)."""
    obj = (event.get("data") or {}).get("object") or {}
    if obj.get("object") == "subscription":
        return str(obj.get("id"))
    if obj.get("object") == "charge":
        invoice = invoice_of(event, fetched)
        return None if invoice is None else subscription_of({"data": {"object": invoice}})
    details = (obj.get("parent") or {}).get("subscription_details") or {}
    found = obj.get("subscription") or details.get("subscription")
    if isinstance(found, dict):
        found = found.get("id")
    return str(found) if found else None


def invoice_of(event: dict[str, Any], fetched: dict[str, Any] | None) -> dict[str, Any] | None:
    """The invoice a charge paid: expanded on the charge, or as ingress fetched it."""
    obj = (event.get("data") or {}).get("object") or {}
    invoice = obj.get("invoice")
    if isinstance(invoice, dict) and invoice.get("id"):
        return invoice
    found = _dict((fetched or {}).get("invoice"))
    return found if found.get("id") else None


def normalize(raw: RawNotification, rates: Rates) -> list[StoreEvent]:
    """The canonical events of one notification (none for kinds not folded)."""
    return checked(_normalize(raw, rates))


def _normalize(raw: RawNotification, rates: Rates) -> list[StoreEvent]:
    event = raw.payload
    kind = event.get("type")
    subscription = subscription_of(event, raw.fetched)
    if kind not in FOLDED or subscription is None:
        return []  # kept on the raw topic: one-off invoices and charges, checkout sessions, ...
    obj = event["data"]["object"]
    signed_at = instant(event.get("created")) or raw.received_at
    transaction = renewal = terminated = patch = None
    if kind == "charge.refunded":
        invoice = must(invoice_of(event, raw.fetched), "invoice")
        patch = _refund(obj, str(invoice["id"]), signed_at, rates)
        event_type = E.SUBSCRIPTION_REFUNDED
        obj = invoice  # whose metadata names the buyer
    elif kind in ("invoice.paid", "invoice.payment_succeeded"):
        transaction = _invoice(obj, subscription, rates)
        event_type = E.SUBSCRIPTION_RENEWED
        if obj.get("billing_reason") == "subscription_create":
            event_type = E.TRIAL_STARTED if transaction.is_trial else E.SUBSCRIPTION_STARTED
    elif kind == "invoice.payment_failed":
        renewal = RenewalInfo(in_billing_retry=True, billing_issue_detected_at=signed_at)
        event_type = E.BILLING_ISSUE_DETECTED
    else:
        renewal = _renewal(obj, signed_at)
        event_type = _subscription_event_type(kind, obj)
        if kind == "customer.subscription.deleted":
            terminated = instant(obj.get("ended_at") or obj.get("canceled_at")) or signed_at
    return [
        StoreEvent(
            event_id=f"stripe:{event['id']}",
            event_type=event_type,
            store=Store.STRIPE,
            environment=Environment.PRODUCTION
            if event.get("livemode", True)
            else (Environment.SANDBOX),
            original_transaction_id=subscription,
            transaction_id=transaction.transaction_id
            if transaction
            else (patch.transaction_id if patch else None),
            product_id=transaction.product_id if transaction else None,
            effective_at=transaction.purchased_at if transaction else signed_at,
            signed_at=signed_at,
            received_at=raw.received_at,
            source=f"stripe:{event['id']}",
            profile=_profile(obj),
            transaction=transaction,
            renewal=renewal,
            terminated_at=terminated,
            patch=patch,
        )
    ]


def _refund(
    charge: dict[str, Any], invoice_id: str, signed_at: datetime, rates: Rates
) -> TransactionPatch:
    """What a refunded charge says of its invoice: `amount_refunded` is what was given back
    in all so far; `refunded` is true once all of it was, which ends access at once."""
    currency = str(charge.get("currency") or "usd").upper()
    refunded = from_minor_units(int(charge.get("amount_refunded") or 0), currency)
    full = bool(charge.get("refunded"))
    return TransactionPatch(
        transaction_id=invoice_id,
        revoked=full,
        revoked_at=signed_at if full else None,
        revocation_reason=R.REFUND if full else None,
        refunded_local=refunded,
        refunded_usd=rates.to_usd(refunded, currency),
    )


def _invoice(invoice: dict[str, Any], subscription: str, rates: Rates) -> TransactionInfo:
    lines = (invoice.get("lines") or {}).get("data") or []
    if not lines:
        raise ValueError(f"invoice {invoice.get('id')} has no lines")
    line = lines[0]
    period = line.get("period") or {}
    price = line.get("price") or ((line.get("pricing") or {}).get("price_details")) or {}
    currency = str(invoice.get("currency") or "usd").upper()
    amount = from_minor_units(int(invoice.get("amount_paid") or 0), currency)
    product = price.get("product") or price.get("id") or "stripe"
    return TransactionInfo(
        transaction_id=str(invoice["id"]),
        original_transaction_id=subscription,
        product_id=str(product),
        base_plan_id=price.get("id") or price.get("price"),
        purchased_at=must(instant(period.get("start")), "period.start"),
        expires_at=instant(period.get("end")),
        offer=_TRIAL if amount == 0 else None,
        price_local=amount,
        currency=currency,
        price_usd=rates.to_usd(amount, currency),
        store_country=_country(invoice),
    )


def _country(invoice: dict[str, Any]) -> str | None:
    """The buyer's country: the billing address the invoice was made out to, else where it
    was shipped (ISO 3166 alpha-2); `account_country` is the seller's, not the buyer's."""
    for address in (
        _dict(invoice.get("customer_address")),
        _dict(_dict(invoice.get("customer_shipping")).get("address")),
    ):
        country = address.get("country")
        if isinstance(country, str) and len(country) == 2 and country.isalpha():
            return country.upper()
    return None


def _renewal(subscription: dict[str, Any], signed_at: datetime) -> RenewalInfo:
    status = subscription.get("status")
    ended = status in ("canceled", "incomplete_expired")
    auto_renew = not ended and not subscription.get("cancel_at_period_end")
    retry = status in ("past_due", "unpaid")
    reason = _REASONS.get((subscription.get("cancellation_details") or {}).get("reason") or "")
    if reason is None and not auto_renew:
        reason = R.VOLUNTARILY_CANCELLED
    return RenewalInfo(
        auto_renew=auto_renew,
        cancellation_reason=reason,
        in_billing_retry=retry,
        billing_issue_detected_at=signed_at if retry else None,
        paused=status == "paused" or bool(subscription.get("pause_collection")),
    )


def _subscription_event_type(kind: str, subscription: dict[str, Any]) -> EventType:
    match kind:
        case "customer.subscription.deleted":
            return E.SUBSCRIPTION_EXPIRED
        case "customer.subscription.paused":
            return E.SUBSCRIPTION_PAUSED
        case "customer.subscription.resumed":
            return E.SUBSCRIPTION_RENEWED
        case "customer.subscription.created":
            trialing = subscription.get("status") == "trialing"
            return E.TRIAL_STARTED if trialing else E.SUBSCRIPTION_STARTED
    if subscription.get("cancel_at_period_end"):
        return E.SUBSCRIPTION_RENEWAL_CANCELLED
    if subscription.get("status") in ("past_due", "unpaid"):
        return E.BILLING_ISSUE_DETECTED
    return E.SUBSCRIPTION_RENEWAL_REACTIVATED


def _profile(obj: dict[str, Any]) -> ProfileRef | None:
    """Who subscribed: the metadata set at checkout, wherever the event's API version puts
    it: the subscription's or invoice's own, an invoice's `subscription_details` (API
    versions before 2025-03-31) or its `parent.subscription_details` (from 2025-03-31)."""
    parent = obj.get("parent")
    places = (
        obj.get("metadata"),
        _dict(obj.get("subscription_details")).get("metadata"),
        _dict(_dict(parent).get("subscription_details")).get("metadata"),
    )
    for metadata in map(_dict, places):
        profile_id, customer = metadata.get("profile_id"), metadata.get("customer_user_id")
        if profile_id:
            try:
                return ProfileRef(profile_id=UUID(str(profile_id)))
            except ValueError:
                pass  # not one of ours: the customer user id may still name the profile
        if customer:
            return ProfileRef(customer_user_id=str(customer))
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
