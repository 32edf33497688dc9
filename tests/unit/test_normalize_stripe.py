"""Stripe events to canonical events, and what they fold into."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from processors.core.ledger import Ledger
from processors.normalize.money import Rates
from processors.normalize.stripe import normalize
from schemas.enums import EventType, Store
from schemas.raw import RawNotification
from tests.helpers import create, labels, story

E = EventType
RATES = Rates.load()
PROFILE = UUID("00000000-0000-4000-8000-00000000000f")
T = 1_775_000_000  # 2026-03-31T23:33:20Z
DAY = 86_400
_ids = iter(range(10**6))


def stripe_event(kind: str, obj: dict[str, Any], created: int = T) -> RawNotification:
    event_id = f"evt_{next(_ids)}"
    payload = {
        "id": event_id,
        "object": "event",
        "type": kind,
        "created": created,
        "livemode": True,
        "data": {"object": obj},
    }
    return RawNotification(
        store=Store.STRIPE,
        dedupe_key=event_id,
        received_at=datetime.fromtimestamp(created, tz=UTC),
        body="{}",
        payload=payload,
    )


def subscription(**changes: Any) -> dict[str, Any]:
    return {
        "id": "sub_1",
        "object": "subscription",
        "status": "active",
        "cancel_at_period_end": False,
        "metadata": {"profile_id": str(PROFILE)},
        **changes,
    }


def invoice(
    start: int,
    amount: int = 999,
    currency: str = "usd",
    reason: str = "subscription_cycle",
    **changes: Any,
) -> dict[str, Any]:
    return {
        "id": f"in_{start}",
        "object": "invoice",
        "amount_paid": amount,
        "currency": currency,
        "billing_reason": reason,
        "parent": {
            "subscription_details": {
                "subscription": "sub_1",
                "metadata": {"profile_id": str(PROFILE)},
            }
        },
        "lines": {
            "data": [
                {
                    "period": {"start": start, "end": start + 30 * DAY},
                    "pricing": {"price_details": {"price": "price_m", "product": "prod_premium"}},
                }
            ]
        },
        **changes,
    }


@pytest.mark.parametrize(
    ("kind", "obj", "event_type"),
    [
        ("invoice.paid", invoice(T, reason="subscription_create"), E.SUBSCRIPTION_STARTED),
        ("invoice.paid", invoice(T, amount=0, reason="subscription_create"), E.TRIAL_STARTED),
        ("invoice.payment_succeeded", invoice(T), E.SUBSCRIPTION_RENEWED),
        ("invoice.payment_failed", invoice(T), E.BILLING_ISSUE_DETECTED),
        ("customer.subscription.created", subscription(status="trialing"), E.TRIAL_STARTED),
        ("customer.subscription.created", subscription(), E.SUBSCRIPTION_STARTED),
        (
            "customer.subscription.updated",
            subscription(cancel_at_period_end=True),
            E.SUBSCRIPTION_RENEWAL_CANCELLED,
        ),
        ("customer.subscription.updated", subscription(), E.SUBSCRIPTION_RENEWAL_REACTIVATED),
        (
            "customer.subscription.updated",
            subscription(status="past_due"),
            E.BILLING_ISSUE_DETECTED,
        ),
        (
            "customer.subscription.deleted",
            subscription(status="canceled", ended_at=T),
            E.SUBSCRIPTION_EXPIRED,
        ),
        ("customer.subscription.paused", subscription(status="paused"), E.SUBSCRIPTION_PAUSED),
        ("customer.subscription.resumed", subscription(), E.SUBSCRIPTION_RENEWED),
    ],
)
def test_each_folded_event_becomes_one_canonical_event(
    kind: str, obj: dict[str, Any], event_type: EventType
) -> None:
    (event,) = normalize(stripe_event(kind, obj), RATES)
    assert (event.event_type, event.chain_key) == (event_type, "stripe:sub_1")
    assert event.profile is not None
    assert event.profile.profile_id == PROFILE


@pytest.mark.parametrize(
    "kind", ["charge.refunded", "checkout.session.completed", "invoice.created", "customer.created"]
)
def test_other_events_fold_into_nothing(kind: str) -> None:
    assert normalize(stripe_event(kind, {"id": "x", "object": "thing"}), RATES) == []


def test_an_invoice_of_no_subscription_folds_into_nothing() -> None:
    one_off = invoice(T, parent=None)
    assert normalize(stripe_event("invoice.paid", one_off), RATES) == []


def test_amounts_are_exact_in_minor_and_zero_decimal_units() -> None:
    (usd,) = normalize(stripe_event("invoice.paid", invoice(T, amount=1999)), RATES)
    (jpy,) = normalize(stripe_event("invoice.paid", invoice(T, amount=1200, currency="jpy")), RATES)
    assert usd.transaction is not None
    assert jpy.transaction is not None
    assert usd.transaction.price_local == Decimal("19.99")
    assert (jpy.transaction.price_local, jpy.transaction.currency) == (Decimal(1200), "JPY")


def fold(*raws: RawNotification) -> Ledger:
    ledger = Ledger()
    ledger.submit(create(PROFILE, at=datetime.fromtimestamp(T - DAY, tz=UTC)))
    for raw in raws:
        for event in normalize(raw, RATES):
            ledger.submit(event)
    return ledger


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def test_a_trial_then_payment_then_immediate_cancel_folds_like_adapty_says() -> None:
    ledger = fold(
        stripe_event("customer.subscription.created", subscription(status="trialing"), T),
        stripe_event("invoice.paid", invoice(T, amount=0, reason="subscription_create"), T),
        stripe_event("invoice.paid", invoice(T + 30 * DAY), T + 30 * DAY),
        stripe_event(
            "customer.subscription.deleted",
            subscription(status="canceled", ended_at=T + 40 * DAY),
            T + 40 * DAY,
        ),
    )
    ledger.advance(at(T + 41 * DAY))
    assert [t for t in story(ledger, PROFILE) if t != "access_level_updated"] == [
        "trial_started",
        "trial_converted",
        "subscription_renewal_cancelled",
        "subscription_expired",
    ]
    assert labels(ledger, at(T + 41 * DAY), PROFILE) == ("subscription_cancelled", "churned")
    assert ledger.view(PROFILE, at(T + 41 * DAY)).revenue.total_revenue_usd == Decimal("9.99")


def test_a_failed_payment_then_recovery() -> None:
    ledger = fold(
        stripe_event("invoice.paid", invoice(T, reason="subscription_create"), T),
        stripe_event("invoice.payment_failed", invoice(T + 30 * DAY), T + 30 * DAY),
    )
    assert labels(ledger, at(T + 31 * DAY), PROFILE) == ("billing_issue", "billing_issue")
    ledger.submit(
        normalize(stripe_event("invoice.paid", invoice(T + 32 * DAY), T + 32 * DAY), RATES)[0]
    )
    assert labels(ledger, at(T + 33 * DAY), PROFILE) == ("subscribed", "active_subscriber")


def test_an_invoice_of_an_api_version_before_2025_03_31_names_its_profile() -> None:
    """Before 2025-03-31 an invoice carries `subscription` and `subscription_details` at its
    top level (no `parent`): an endpoint that listens only to `invoice.paid` still learns
    whose purchase it is."""
    older = invoice(T, reason="subscription_create")
    del older["parent"]
    older |= {
        "subscription": "sub_1",
        "subscription_details": {"metadata": {"profile_id": str(PROFILE)}},
    }
    (event,) = normalize(stripe_event("invoice.paid", older), RATES)
    assert event.chain_key == "stripe:sub_1"
    assert event.profile is not None
    assert event.profile.profile_id == PROFILE


def test_a_metadata_profile_id_that_is_not_a_uuid_falls_back_to_the_customer_user_id() -> None:
    obj = subscription(metadata={"profile_id": "not-a-uuid", "customer_user_id": "u-7"})
    (event,) = normalize(stripe_event("customer.subscription.created", obj), RATES)
    assert event.profile is not None
    assert (event.profile.profile_id, event.profile.customer_user_id) == (None, "u-7")
