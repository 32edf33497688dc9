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


def stripe_event(
    kind: str, obj: dict[str, Any], created: int = T, fetched: dict[str, Any] | None = None
) -> RawNotification:
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
        fetched=fetched,
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
    "kind",
    ["charge.succeeded", "checkout.session.completed", "invoice.created", "customer.created"],
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


# --- refunds: a charge names its invoice, the invoice its subscription (DOMAIN.md 6) ----------

FIRST = invoice(T, reason="subscription_create")
SECOND = invoice(T + 30 * DAY)


def charge(
    refunded: int, full: bool = False, paid: dict[str, Any] | str | None = None, **more: Any
) -> dict[str, Any]:
    """A refunded charge as Stripe sends it; `paid` is its `invoice` (an id before API
    version 2025-03-31 unless expanded; absent from then on)."""
    obj = {
        "id": "ch_1",
        "object": "charge",
        "amount": 999,
        "amount_refunded": refunded,
        "currency": "usd",
        "refunded": full,
        "payment_intent": "pi_1",
        **more,
    }
    if paid is not None:
        obj["invoice"] = paid
    return obj


def premium_active(ledger: Ledger, seconds: int) -> bool:
    levels = ledger.view(PROFILE, at(seconds)).access_levels
    return any(level.is_active for level in levels if level.access_level_id == "premium")


def money(ledger: Ledger, seconds: int) -> tuple[str, str]:
    revenue = ledger.view(PROFILE, at(seconds)).revenue
    return str(revenue.total_revenue_usd), str(revenue.total_proceeds_usd)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        # API versions before 2025-03-31 with the invoice expanded on the charge.
        ("expanded", stripe_event("charge.refunded", charge(999, True, SECOND), T + 31 * DAY)),
        # The invoice named by id, fetched by ingress and kept beside the event.
        (
            "by id",
            stripe_event(
                "charge.refunded",
                charge(999, True, SECOND["id"]),
                T + 31 * DAY,
                {"invoice": SECOND},
            ),
        ),
        # 2025-03-31.basil and later: no `invoice` on the charge; ingress found the invoice
        # its payment intent paid.
        (
            "basil",
            stripe_event("charge.refunded", charge(999, True), T + 31 * DAY, {"invoice": SECOND}),
        ),
    ],
)
def test_a_full_refund_takes_the_invoice_out_of_ltv_and_ends_access(
    name: str, raw: RawNotification
) -> None:
    (event,) = normalize(raw, RATES)
    assert (event.chain_key, event.transaction_id) == ("stripe:sub_1", SECOND["id"])
    ledger = fold(
        stripe_event("invoice.paid", FIRST, T),
        stripe_event("invoice.paid", SECOND, T + 30 * DAY),
        raw,
    )
    assert money(ledger, T + 32 * DAY) == ("9.99", "9.9900")
    assert story(ledger, PROFILE).count("subscription_refunded") == 1
    assert not premium_active(ledger, T + 32 * DAY)
    assert labels(ledger, at(T + 32 * DAY), PROFILE)[1] == "refunded"


def test_a_partial_refund_subtracts_only_the_refunded_amount_and_keeps_access() -> None:
    ledger = fold(
        stripe_event("invoice.paid", FIRST, T),
        stripe_event("charge.refunded", charge(500, paid=FIRST), T + DAY),
    )
    assert money(ledger, T + 2 * DAY) == ("4.99", "4.9900")
    assert premium_active(ledger, T + 2 * DAY)
    assert "subscription_refunded" not in story(ledger, PROFILE)
    assert labels(ledger, at(T + 2 * DAY), PROFILE) == ("subscribed", "active_subscriber")


def test_refunds_add_up_and_arrival_order_does_not_matter() -> None:
    """`amount_refunded` is what was given back in all: the newest statement wins, whether
    it arrives first, last, or before the invoice it refunds."""
    raws = [
        stripe_event("invoice.paid", FIRST, T),
        stripe_event("charge.refunded", charge(300, paid=FIRST), T + DAY),
        stripe_event("charge.refunded", charge(700, paid=FIRST), T + 2 * DAY),
    ]
    for order in (raws, raws[::-1], [raws[2], raws[0], raws[1]]):
        ledger = fold(*order)
        assert money(ledger, T + 3 * DAY) == ("2.99", "2.9900")
    full = stripe_event("charge.refunded", charge(999, True, FIRST), T + 3 * DAY)
    for order in ([*raws, full], [full, *raws]):
        ledger = fold(*order)
        assert money(ledger, T + 4 * DAY) == ("0.00", "0.0000")
        assert story(ledger, PROFILE).count("subscription_refunded") == 1


def test_a_refund_nets_in_its_currency_and_with_a_fee_rate() -> None:
    from processors.core.config import FoldConfig

    yen = invoice(T, amount=1200, currency="jpy", reason="subscription_create")
    refund = charge(600, paid=yen, amount=1200, currency="jpy")
    (paid,) = normalize(stripe_event("invoice.paid", yen, T), RATES)
    (refunded,) = normalize(stripe_event("charge.refunded", refund, T + DAY), RATES)
    assert paid.transaction is not None
    assert refunded.patch is not None
    assert refunded.patch.refunded_local == Decimal(600)
    assert refunded.patch.refunded_usd == RATES.to_usd(Decimal(600), "JPY")
    ledger = Ledger(config=FoldConfig(stripe_fee_rate=Decimal("0.029")))
    ledger.submit(create(PROFILE, at=at(T - DAY)))
    ledger.submit(paid)
    ledger.submit(refunded)
    revenue = ledger.view(PROFILE, at(T + 2 * DAY)).revenue
    price = paid.transaction.price_usd
    kept = price - refunded.patch.refunded_usd
    assert revenue.total_revenue_usd == kept.quantize(Decimal("0.01"))
    # Proceeds: the invoice's, less the refund's share of them, each rounded once.
    fee = Decimal(1) - Decimal("0.029")
    expected = (price * fee).quantize(Decimal("0.0001")) - (
        refunded.patch.refunded_usd * fee
    ).quantize(Decimal("0.0001"))
    assert revenue.total_proceeds_usd == expected


def test_a_refunded_charge_of_no_invoice_folds_into_nothing() -> None:
    one_off = charge(999, True, paid=None, invoice=None)
    assert normalize(stripe_event("charge.refunded", one_off), RATES) == []
    # An invoice that is not a subscription's (a one-off invoice) neither.
    assert (
        normalize(
            stripe_event("charge.refunded", charge(999, True, invoice(T, parent=None))), RATES
        )
        == []
    )


@pytest.mark.parametrize(
    ("fields", "country"),
    [
        ({"customer_address": {"country": "DE"}}, "DE"),
        ({"customer_address": None, "customer_shipping": {"address": {"country": "fr"}}}, "FR"),
        ({"account_country": "US"}, None),  # the seller's country, not the buyer's
    ],
)
def test_the_store_country_is_the_invoice_customer_country(
    fields: dict[str, Any], country: str | None
) -> None:
    (event,) = normalize(stripe_event("invoice.paid", invoice(T, **fields)), RATES)
    assert event.transaction is not None
    assert event.transaction.store_country == country
    if country is not None:
        ledger = fold(stripe_event("invoice.paid", invoice(T, **fields)))
        assert ledger.view(PROFILE, at(T + DAY)).fields.store_country == country
