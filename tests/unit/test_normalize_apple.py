"""App Store notifications, every type and subtype of facts 3.2, to canonical events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from msgspec.structs import replace

from processors.normalize.apple import NotificationError, normalize
from processors.normalize.money import Rates
from schemas.enums import CancellationReason, Environment, EventType, OfferType, Store
from schemas.raw import RawNotification

E, R = EventType, CancellationReason
MS = 1_775_000_000_000  # 2026-03-31T23:33:20Z
DAY = 86_400_000
TOKEN = "00000000-0000-4000-8000-00000000a11c"
RATES = Rates.load()


def tx(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "transactionId": "2000000002",
        "originalTransactionId": "2000000001",
        "bundleId": "com.example.app",
        "productId": "premium.monthly",
        "purchaseDate": MS,
        "originalPurchaseDate": MS - 30 * DAY,
        "expiresDate": MS + 30 * DAY,
        "type": "Auto-Renewable Subscription",
        "inAppOwnershipType": "PURCHASED",
        "environment": "Production",
        "price": 9990,
        "currency": "EUR",
        "storefront": "DEU",
        "appAccountToken": TOKEN,
        "signedDate": MS,
    }
    return {**base, **changes}


def renewal(**changes: Any) -> dict[str, Any]:
    return {
        "originalTransactionId": "2000000001",
        "autoRenewStatus": 1,
        "autoRenewProductId": "premium.monthly",
        "productId": "premium.monthly",
        "isInBillingRetryPeriod": False,
        "signedDate": MS,
        **changes,
    }


def raw(
    kind: str,
    subtype: str | None = None,
    transaction: dict[str, Any] | None = None,
    renewal_info: dict[str, Any] | None = None,
) -> RawNotification:
    data: dict[str, Any] = {
        "environment": "Production",
        "bundleId": "com.example.app",
        "appAppleId": 1234,
    }
    if transaction is not None:
        data["transaction"] = transaction
    if renewal_info is not None:
        data["renewal"] = renewal_info
    payload = {
        "notificationType": kind,
        "subtype": subtype,
        "notificationUUID": "n-1",
        "version": "2.0",
        "signedDate": MS + 1000,
        "data": data,
    }
    return RawNotification(
        store=Store.APP_STORE,
        dedupe_key="n-1",
        received_at=datetime(2026, 4, 1, tzinfo=UTC),
        body="{}",
        payload=payload,
    )


TRIAL = {"offerType": 1, "offerDiscountType": "FREE_TRIAL", "price": 0}


@pytest.mark.parametrize(
    ("kind", "subtype", "transaction", "renewal_info", "event_type"),
    [
        ("SUBSCRIBED", "INITIAL_BUY", tx(), renewal(), E.SUBSCRIPTION_STARTED),
        ("SUBSCRIBED", "INITIAL_BUY", tx(**TRIAL), renewal(), E.TRIAL_STARTED),
        ("SUBSCRIBED", "RESUBSCRIBE", tx(), renewal(), E.SUBSCRIPTION_RENEWED),
        ("DID_RENEW", None, tx(), renewal(), E.SUBSCRIPTION_RENEWED),
        ("DID_RENEW", "BILLING_RECOVERY", tx(), renewal(), E.SUBSCRIPTION_RENEWED),
        (
            "DID_CHANGE_RENEWAL_STATUS",
            "AUTO_RENEW_DISABLED",
            tx(),
            renewal(autoRenewStatus=0),
            E.SUBSCRIPTION_RENEWAL_CANCELLED,
        ),
        (
            "DID_CHANGE_RENEWAL_STATUS",
            "AUTO_RENEW_DISABLED",
            tx(**TRIAL),
            renewal(autoRenewStatus=0),
            E.TRIAL_RENEWAL_CANCELLED,
        ),
        (
            "DID_CHANGE_RENEWAL_STATUS",
            "AUTO_RENEW_ENABLED",
            tx(),
            renewal(),
            E.SUBSCRIPTION_RENEWAL_REACTIVATED,
        ),
        (
            "DID_CHANGE_RENEWAL_PREF",
            "UPGRADE",
            tx(productId="premium.yearly"),
            renewal(),
            E.SUBSCRIPTION_STARTED,
        ),
        ("DID_CHANGE_RENEWAL_PREF", "DOWNGRADE", tx(), renewal(), E.SUBSCRIPTION_RENEWED),
        ("DID_CHANGE_RENEWAL_PREF", None, tx(), renewal(), E.SUBSCRIPTION_RENEWED),
        (
            "DID_FAIL_TO_RENEW",
            "GRACE_PERIOD",
            tx(),
            renewal(isInBillingRetryPeriod=True, gracePeriodExpiresDate=MS + 36 * DAY),
            E.ENTERED_GRACE_PERIOD,
        ),
        (
            "DID_FAIL_TO_RENEW",
            None,
            tx(),
            renewal(isInBillingRetryPeriod=True),
            E.BILLING_ISSUE_DETECTED,
        ),
        (
            "GRACE_PERIOD_EXPIRED",
            None,
            tx(),
            renewal(isInBillingRetryPeriod=True),
            E.SUBSCRIPTION_EXPIRED,
        ),
        (
            "EXPIRED",
            "VOLUNTARY",
            tx(),
            renewal(autoRenewStatus=0, expirationIntent=1),
            E.SUBSCRIPTION_EXPIRED,
        ),
        ("EXPIRED", "BILLING_RETRY", tx(), renewal(expirationIntent=2), E.SUBSCRIPTION_EXPIRED),
        ("EXPIRED", "PRICE_INCREASE", tx(), renewal(expirationIntent=3), E.SUBSCRIPTION_EXPIRED),
        (
            "EXPIRED",
            "PRODUCT_NOT_FOR_SALE",
            tx(),
            renewal(expirationIntent=4),
            E.SUBSCRIPTION_EXPIRED,
        ),
        ("EXPIRED", None, tx(), renewal(expirationIntent=5), E.SUBSCRIPTION_EXPIRED),
        (
            "OFFER_REDEEMED",
            "INITIAL_BUY",
            tx(offerType=3, offerDiscountType="PAY_UP_FRONT", offerIdentifier="SPRING"),
            renewal(),
            E.SUBSCRIPTION_STARTED,
        ),
        ("OFFER_REDEEMED", "RESUBSCRIBE", tx(), renewal(), E.SUBSCRIPTION_RENEWED),
        ("OFFER_REDEEMED", "UPGRADE", tx(), renewal(), E.SUBSCRIPTION_RENEWED),
        ("OFFER_REDEEMED", "DOWNGRADE", tx(), renewal(), E.SUBSCRIPTION_RENEWED),
        ("OFFER_REDEEMED", None, tx(), renewal(), E.SUBSCRIPTION_STARTED),
        (
            "REFUND",
            None,
            tx(revocationDate=MS + DAY, revocationReason=0),
            renewal(),
            E.SUBSCRIPTION_REFUNDED,
        ),
        (
            "REFUND",
            None,
            tx(type="Non-Consumable", expiresDate=None, revocationDate=MS + DAY),
            None,
            E.NON_SUBSCRIPTION_PURCHASE_REFUNDED,
        ),
        ("REFUND_REVERSED", None, tx(), renewal(), E.REFUND_REVERSED),
        (
            "REVOKE",
            None,
            tx(inAppOwnershipType="FAMILY_SHARED", price=0, revocationDate=MS + DAY),
            renewal(),
            E.SUBSCRIPTION_EXPIRED,
        ),
        (
            "RENEWAL_EXTENDED",
            None,
            tx(expiresDate=MS + 40 * DAY),
            renewal(),
            E.SUBSCRIPTION_DEFERRED,
        ),
        (
            "ONE_TIME_CHARGE",
            None,
            tx(type="Consumable", expiresDate=None),
            None,
            E.NON_SUBSCRIPTION_PURCHASE,
        ),
    ],
)
def test_each_folded_type_becomes_one_canonical_event(
    kind: str,
    subtype: str | None,
    transaction: dict[str, Any],
    renewal_info: dict[str, Any] | None,
    event_type: EventType,
) -> None:
    (event,) = normalize(raw(kind, subtype, transaction, renewal_info), RATES)
    assert event.event_type is event_type
    assert (event.store, event.environment) == (Store.APP_STORE, Environment.PRODUCTION)
    assert event.chain_key == "app_store:2000000001"
    assert event.event_id == "app_store:n-1"
    assert event.profile is not None
    assert event.profile.profile_id == UUID(TOKEN)


@pytest.mark.parametrize(
    ("kind", "subtype"),
    [
        ("TEST", None),
        ("CONSUMPTION_REQUEST", None),
        ("REFUND_DECLINED", None),
        ("PRICE_INCREASE", "PENDING"),
        ("PRICE_INCREASE", "ACCEPTED"),
        ("RENEWAL_EXTENSION", "SUMMARY"),
        ("RENEWAL_EXTENSION", "FAILURE"),
        ("EXTERNAL_PURCHASE_TOKEN", "UNREPORTED"),
        ("METADATA_UPDATE", None),
        ("MIGRATION", None),
        ("PRICE_CHANGE", None),
        ("RESCIND_CONSENT", None),
    ],
)
def test_types_that_change_no_profile_fold_into_nothing(kind: str, subtype: str | None) -> None:
    assert normalize(raw(kind, subtype), RATES) == []


def test_prices_are_exact_from_milliunits_and_converted_to_usd() -> None:
    (event,) = normalize(raw("DID_RENEW", None, tx(), renewal()), RATES)
    assert event.transaction is not None
    assert (event.transaction.price_local, event.transaction.currency) == (Decimal("9.99"), "EUR")
    assert event.transaction.price_usd == (Decimal("9.99") / Decimal("0.92")).quantize(
        Decimal("0.0001")
    )


def test_a_free_trial_offer_is_recognised() -> None:
    (event,) = normalize(raw("SUBSCRIBED", "INITIAL_BUY", tx(**TRIAL), renewal()), RATES)
    assert event.transaction is not None
    assert event.transaction.offer is not None
    assert event.transaction.offer.type is OfferType.FREE_TRIAL


def test_grace_and_billing_retry_reach_the_renewal_state() -> None:
    payload = renewal(isInBillingRetryPeriod=True, gracePeriodExpiresDate=MS + 36 * DAY)
    (event,) = normalize(raw("DID_FAIL_TO_RENEW", "GRACE_PERIOD", tx(), payload), RATES)
    assert event.renewal is not None
    assert event.renewal.in_billing_retry
    assert event.renewal.grace_period_expires_at == datetime.fromtimestamp(
        (MS + 36 * DAY) / 1000, tz=UTC
    )


def test_expiry_reason_follows_the_subtype() -> None:
    (event,) = normalize(raw("EXPIRED", "BILLING_RETRY", tx(), renewal(expirationIntent=2)), RATES)
    assert event.renewal is not None
    assert (event.renewal.cancellation_reason, event.renewal.in_billing_retry) == (
        R.BILLING_ERROR,
        False,
    )


def test_a_refund_of_an_upgraded_transaction_says_upgraded() -> None:
    (event,) = normalize(
        raw("REFUND", None, tx(isUpgraded=True, revocationDate=MS + DAY), renewal()), RATES
    )
    assert event.transaction is not None
    assert event.transaction.revocation_reason is R.UPGRADED


def test_a_prorated_refund_gives_back_its_share_of_the_price() -> None:
    """`revocationPercentage` is in milliunits of a percent: 25000 refunds a quarter; the
    transaction is revoked (Apple ends its access) and earned what was not given back."""
    from processors.core.ledger import Ledger

    refunded = tx(
        revocationDate=MS + DAY, revocationType="REFUND_PRORATED", revocationPercentage=25000
    )
    (bought,) = normalize(raw("SUBSCRIBED", "INITIAL_BUY", tx(), renewal()), RATES)
    (event,) = normalize(raw("REFUND", None, refunded, renewal()), RATES)
    event = replace(event, event_id="app_store:n-2", signed_at=event.signed_at + timedelta(days=1))
    info = event.transaction
    assert info is not None
    assert (info.refunded_local, info.revocation_reason) == (Decimal("2.498"), R.REFUND)
    assert info.refunded_usd == RATES.to_usd(Decimal("2.498"), "EUR")
    assert info.revenue_usd == info.price_usd - RATES.to_usd(Decimal("2.498"), "EUR")
    ledger = Ledger()
    ledger.submit(bought)
    ledger.submit(event)
    view = ledger.view(UUID(TOKEN), datetime.fromtimestamp((MS + 2 * DAY) / 1000, tz=UTC))
    assert view.revenue.total_revenue_usd == info.revenue_usd.quantize(Decimal("0.01"))
    assert not any(level.is_active for level in view.access_levels)
    # A full refund (no type, or REFUND_FULL) gives back all of it.
    (full,) = normalize(raw("REFUND", None, tx(revocationDate=MS + DAY), renewal()), RATES)
    assert full.transaction is not None
    assert (full.transaction.refunded_usd, full.transaction.revenue_usd) == (None, 0)


@pytest.mark.parametrize(
    ("storefront", "country"), [("DEU", "DE"), ("USA", "US"), ("jpn", "JP"), ("ZZZ", None)]
)
def test_the_storefront_is_the_alpha_2_store_country(storefront: str, country: str) -> None:
    (event,) = normalize(raw("DID_RENEW", None, tx(storefront=storefront), renewal()), RATES)
    assert event.transaction is not None
    assert event.transaction.store_country == country


def test_a_notification_without_its_transaction_is_an_error() -> None:
    with pytest.raises(NotificationError, match="without a signed transaction"):
        normalize(raw("DID_RENEW", None, None, renewal()), RATES)
