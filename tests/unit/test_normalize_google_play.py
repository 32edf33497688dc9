"""Google Play notifications and fetched purchase state to canonical events, and folds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from processors.core.ledger import Ledger
from processors.normalize.google_play import normalize
from processors.normalize.money import Rates
from schemas.enums import Environment, EventType, Store
from schemas.raw import RawNotification
from tests.helpers import create, labels, story

E = EventType
RATES = Rates.load()
PROFILE = UUID("00000000-0000-4000-8000-0000000000aa")
T0 = datetime(2026, 4, 1, tzinfo=UTC)
_ids = iter(range(10**6))


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def state(
    order: str = "GPA.1-0",
    expiry: datetime = T0 + timedelta(days=30),
    status: str = "SUBSCRIPTION_STATE_ACTIVE",
    trial: bool = False,
    **changes: Any,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "productId": "premium.monthly",
        "expiryTime": iso(expiry),
        "latestSuccessfulOrderId": order,
        "autoRenewingPlan": {
            "autoRenewEnabled": status == "SUBSCRIPTION_STATE_ACTIVE",
            "recurringPrice": {"currencyCode": "EUR", "units": "4", "nanos": 990000000},
        },
        "offerDetails": {"basePlanId": "monthly"},
        "offerPhase": {"freeTrial": {}} if trial else {"basePrice": {}},
    }
    return {
        "subscriptionState": status,
        "startTime": iso(T0),
        "lineItems": [item],
        "externalAccountIdentifiers": {"obfuscatedExternalAccountId": str(PROFILE)},
        **changes,
    }


def raw(
    notification: dict[str, Any], fetched: dict[str, Any] | None, at: datetime
) -> RawNotification:
    message = f"m-{next(_ids)}"
    notification = {
        "version": "1.0",
        "packageName": "com.example",
        "eventTimeMillis": str(int(at.timestamp() * 1000)),
        **notification,
    }
    return RawNotification(
        store=Store.PLAY_STORE,
        dedupe_key=message,
        received_at=at,
        body="{}",
        payload={"message_id": message, "notification": notification},
        fetched=fetched,
    )


def sub(
    kind: int, fetched_state: dict[str, Any], at: datetime, token: str = "tok-1"
) -> RawNotification:
    notice = {
        "subscriptionNotification": {
            "version": "1.0",
            "notificationType": kind,
            "purchaseToken": token,
        }
    }
    return raw(notice, {"subscription": fetched_state}, at)


@pytest.mark.parametrize(
    ("kind", "fetched_state", "event_type", "has_transaction"),
    [
        (4, state(), E.SUBSCRIPTION_STARTED, True),
        (4, state(trial=True), E.TRIAL_STARTED, True),
        (2, state("GPA.1-1"), E.SUBSCRIPTION_RENEWED, True),
        (1, state("GPA.1-2"), E.SUBSCRIPTION_RENEWED, True),
        (
            3,
            state(
                status="SUBSCRIPTION_STATE_CANCELED",
                canceledStateContext={"userInitiatedCancellation": {}},
            ),
            E.SUBSCRIPTION_RENEWAL_CANCELLED,
            False,
        ),
        (5, state(status="SUBSCRIPTION_STATE_ON_HOLD"), E.BILLING_ISSUE_DETECTED, False),
        (6, state(status="SUBSCRIPTION_STATE_IN_GRACE_PERIOD"), E.ENTERED_GRACE_PERIOD, False),
        (7, state(), E.SUBSCRIPTION_RENEWAL_REACTIVATED, False),
        (10, state(status="SUBSCRIPTION_STATE_PAUSED"), E.SUBSCRIPTION_PAUSED, False),
        (13, state(status="SUBSCRIPTION_STATE_EXPIRED"), E.SUBSCRIPTION_EXPIRED, False),
        (9, state(expiry=T0 + timedelta(days=40)), E.SUBSCRIPTION_DEFERRED, False),
        (12, state(), E.SUBSCRIPTION_REFUNDED, False),
    ],
)
def test_each_subscription_notification_type(
    kind: int, fetched_state: dict[str, Any], event_type: EventType, has_transaction: bool
) -> None:
    (event,) = normalize(sub(kind, fetched_state, T0 + timedelta(days=1)), RATES)
    assert (event.event_type, event.chain_key) == (event_type, "play_store:tok-1")
    assert (event.transaction is not None) is has_transaction
    assert event.profile is not None
    assert event.profile.profile_id == PROFILE


@pytest.mark.parametrize("kind", [8, 11, 17, 18, 19, 20, 22])
def test_types_that_change_no_profile_fold_into_nothing(kind: int) -> None:
    assert normalize(sub(kind, state(), T0), RATES) == []


def test_a_replacement_joins_the_chain_it_replaced() -> None:
    (event,) = normalize(sub(4, state(linkedPurchaseToken="tok-0"), T0, token="tok-1"), RATES)
    assert event.chain_key == "play_store:tok-0"


def test_prices_come_from_units_and_nanos() -> None:
    (event,) = normalize(sub(2, state(), T0), RATES)
    assert event.transaction is not None
    assert (event.transaction.price_local, event.transaction.currency) == (Decimal("4.99"), "EUR")


def test_a_test_purchase_is_sandbox_money() -> None:
    (event,) = normalize(sub(4, state(testPurchase={}), T0), RATES)
    assert event.environment is Environment.SANDBOX


def test_voided_purchases_patch_the_order() -> None:
    voided = {
        "voidedPurchaseNotification": {
            "purchaseToken": "tok-1",
            "orderId": "GPA.1-0",
            "productType": 1,
            "refundType": 1,
        }
    }
    (event,) = normalize(raw(voided, None, T0), RATES)
    assert event.event_type is E.SUBSCRIPTION_REFUNDED
    assert event.patch is not None
    assert (event.patch.transaction_id, event.patch.revoked) == (
        "GPA.1-0",
        True,
    )


def test_a_test_notification_folds_into_nothing() -> None:
    assert normalize(raw({"testNotification": {"version": "1.0"}}, None, T0), RATES) == []


def test_a_subscription_notification_without_state_is_an_error() -> None:
    notice = {"subscriptionNotification": {"notificationType": 2, "purchaseToken": "t"}}
    with pytest.raises(ValueError, match="without the purchase's state"):
        normalize(raw(notice, None, T0), RATES)


def fold(*raws: RawNotification) -> Ledger:
    ledger = Ledger()
    ledger.submit(create(PROFILE, at=T0 - timedelta(days=1)))
    for item in raws:
        for event in normalize(item, RATES):
            ledger.submit(event)
    return ledger


def test_purchase_renewal_grace_and_recovery_fold_into_the_right_labels() -> None:
    day = timedelta(days=1)
    ledger = fold(
        sub(4, state("GPA.1-0"), T0),
        sub(2, state("GPA.1-1", expiry=T0 + 60 * day), T0 + 30 * day),
        sub(
            6,
            state("GPA.1-1", expiry=T0 + 63 * day, status="SUBSCRIPTION_STATE_IN_GRACE_PERIOD"),
            T0 + 60 * day,
        ),
    )
    assert labels(ledger, T0 + 61 * day, PROFILE) == ("grace_period", "grace_period")
    ledger.submit(
        normalize(sub(1, state("GPA.1-2", expiry=T0 + 92 * day), T0 + 62 * day), RATES)[0]
    )
    assert labels(ledger, T0 + 64 * day, PROFILE) == ("subscribed", "active_subscriber")
    assert ledger.view(PROFILE, T0 + 64 * day).revenue.total_revenue_usd == (
        3 * (Decimal("4.99") / Decimal("0.92")).quantize(Decimal("0.0001"))
    ).quantize(Decimal("0.01"))


def test_a_revoked_order_ends_access_and_revenue_without_restating_it() -> None:
    ledger = fold(sub(4, state("GPA.1-0"), T0), sub(12, state("GPA.1-0"), T0 + timedelta(days=3)))
    view = ledger.view(PROFILE, T0 + timedelta(days=4))
    assert (view.revenue.total_revenue_usd, view.access_levels[0].is_active) == (0, False)
    assert "subscription_refunded" in story(ledger, PROFILE)
    # The order keeps its purchase date: the revocation did not restate it.
    assert view.subscriptions[0].purchased_at == T0


def test_a_deferral_moves_the_expiry() -> None:
    ledger = fold(
        sub(4, state("GPA.1-0"), T0),
        sub(9, state("GPA.1-0", expiry=T0 + timedelta(days=45)), T0 + timedelta(days=5)),
    )
    view = ledger.view(PROFILE, T0 + timedelta(days=40))
    assert view.access_levels[0].is_active
    assert view.access_levels[0].expires_at == T0 + timedelta(days=45)


def test_a_german_purchase_shows_its_store_country() -> None:
    """`regionCode` is the country Google billed the buyer in (DOMAIN.md 7)."""
    ledger = fold(sub(4, state("GPA.1-0", regionCode="DE"), T0))
    assert ledger.view(PROFILE, T0 + timedelta(days=1)).fields.store_country == "DE"
