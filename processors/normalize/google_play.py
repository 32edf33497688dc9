"""Google Play real-time developer notifications to canonical events (facts 4.2-4.4, 6.2).

The input is the push as ingress kept it: the decoded developer notification, and the
purchase's state fetched from the Play Developer API (`purchases.subscriptionsv2`).
A chain is a purchase token's lineage: the `linkedPurchaseToken` it replaced, or itself.

The state names the latest order and its expiry but not when each order was paid, so a
new order is dated by the notification's event time, and revocations and deferrals
patch an order by id instead of restating it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from processors.normalize.canonical import checked
from processors.normalize.money import Rates
from schemas.base import replace
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

# subscriptionNotification.notificationType (facts 4.2)
RECOVERED, RENEWED, CANCELED, PURCHASED, ON_HOLD, IN_GRACE_PERIOD, RESTARTED = 1, 2, 3, 4, 5, 6, 7
DEFERRED, PAUSED, PAUSE_SCHEDULE_CHANGED, REVOKED, EXPIRED = 9, 10, 11, 12, 13
NEW_ORDER = {
    RECOVERED: E.SUBSCRIPTION_RENEWED,
    RENEWED: E.SUBSCRIPTION_RENEWED,
    PURCHASED: E.SUBSCRIPTION_STARTED,
}
STATE_ONLY = {
    CANCELED: E.SUBSCRIPTION_RENEWAL_CANCELLED,
    ON_HOLD: E.BILLING_ISSUE_DETECTED,
    IN_GRACE_PERIOD: E.ENTERED_GRACE_PERIOD,
    RESTARTED: E.SUBSCRIPTION_RENEWAL_REACTIVATED,
    PAUSED: E.SUBSCRIPTION_PAUSED,
    EXPIRED: E.SUBSCRIPTION_EXPIRED,
}
_CANCEL_REASONS = {
    "userInitiatedCancellation": R.VOLUNTARILY_CANCELLED,
    "systemInitiatedCancellation": R.BILLING_ERROR,
    "developerInitiatedCancellation": R.CANCELLED_BY_DEVELOPER,
    "replacementCancellation": R.NEW_SUBSCRIPTION_REPLACE,
}
_TRIAL = Offer(category=OfferCategory.INTRODUCTORY, type=OfferType.FREE_TRIAL)


def instant(value: str | int | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str) and not value.isdigit():
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def money(price: dict[str, Any] | None) -> tuple[Decimal, str]:
    """A google.type.Money: whole units plus nanos."""
    if not price:
        return Decimal(0), "USD"
    units = Decimal(int(price.get("units") or 0))
    nanos = Decimal(int(price.get("nanos") or 0)) / 1_000_000_000
    return units + nanos, str(price.get("currencyCode") or "USD")


def normalize(raw: RawNotification, rates: Rates) -> list[StoreEvent]:
    """The canonical events of one notification (none for kinds not folded)."""
    return checked(_normalize(raw, rates))


def _normalize(raw: RawNotification, rates: Rates) -> list[StoreEvent]:
    notification = raw.payload.get("notification") or {}
    message_id = raw.payload.get("message_id") or raw.dedupe_key
    at = instant(notification.get("eventTimeMillis")) or raw.received_at
    base: dict[str, Any] = {
        "event_id": f"play_store:{message_id}",
        "store": Store.PLAY_STORE,
        "effective_at": at,
        "signed_at": at,
        "received_at": raw.received_at,
        "source": f"play_store:{message_id}",
    }
    if "subscriptionNotification" in notification:
        state = (raw.fetched or {}).get("subscription")
        if state is None:
            raise ValueError("a subscription notification without the purchase's state")
        return _subscription(notification["subscriptionNotification"], state, base, at, rates)
    if "voidedPurchaseNotification" in notification:
        voided = notification["voidedPurchaseNotification"]
        patch = TransactionPatch(
            transaction_id=str(voided["orderId"]),
            revoked=True,
            revoked_at=at,
            revocation_reason=R.REFUND,
        )
        kind = (
            E.SUBSCRIPTION_REFUNDED
            if voided.get("productType") == 1
            else (E.NON_SUBSCRIPTION_PURCHASE_REFUNDED)
        )
        token = str(voided["purchaseToken"])
        one_time = voided.get("productType") == 2
        return [
            StoreEvent(
                **base,
                event_type=kind,
                original_transaction_id=str(voided["orderId"]) if one_time else token,
                patch=patch,
            )
        ]
    if "oneTimeProductNotification" in notification:
        one = notification["oneTimeProductNotification"]
        product = (raw.fetched or {}).get("product")
        if one.get("notificationType") != 1 or product is None:
            return []  # a pending purchase cancelled: nothing was bought
        return [_one_time(one, product, base, at, rates)]
    return []  # testNotification, or a kind a later version may know


def _subscription(
    notice: dict[str, Any], state: dict[str, Any], base: dict[str, Any], at: datetime, rates: Rates
) -> list[StoreEvent]:
    kind = int(notice["notificationType"])
    token = str(notice["purchaseToken"])
    chain = str(state.get("linkedPurchaseToken") or token)
    items = state.get("lineItems") or [{}]
    item = items[0]
    order = item.get("latestSuccessfulOrderId") or state.get("latestOrderId")
    expiry = instant(item.get("expiryTime"))
    common = {
        **base,
        "original_transaction_id": chain,
        "product_id": item.get("productId"),
        "environment": Environment.SANDBOX
        if state.get("testPurchase") is not None
        else Environment.PRODUCTION,
        "profile": _profile(state),
    }
    if kind in NEW_ORDER and order and expiry is not None:
        started = instant(state.get("startTime")) if kind == PURCHASED else at
        tx = _order(item, str(order), chain, started or at, expiry, rates)
        region = state.get("regionCode")
        if isinstance(region, str) and len(region) == 2:
            # The buyer's country as Google billed it (ISO 3166-1 alpha-2).
            tx = replace(tx, store_country=region.upper())
        event_type = NEW_ORDER[kind]
        if tx.is_trial and kind == PURCHASED:
            event_type = E.TRIAL_STARTED
        return [
            StoreEvent(
                **{**common, "effective_at": tx.purchased_at},
                event_type=event_type,
                transaction_id=tx.transaction_id,
                transaction=tx,
                renewal=_renewal(state, item, at),
            )
        ]
    if kind == DEFERRED and order and expiry is not None:
        patch = TransactionPatch(transaction_id=str(order), expires_at=expiry)
        return [
            StoreEvent(
                **common, event_type=E.SUBSCRIPTION_DEFERRED, patch=patch, transaction_id=str(order)
            )
        ]
    if kind == REVOKED and order:
        patch = TransactionPatch(
            transaction_id=str(order), revoked=True, revoked_at=at, revocation_reason=R.REFUND
        )
        return [
            StoreEvent(
                **common, event_type=E.SUBSCRIPTION_REFUNDED, patch=patch, transaction_id=str(order)
            )
        ]
    if kind in STATE_ONLY:
        return [
            StoreEvent(**common, event_type=STATE_ONLY[kind], renewal=_renewal(state, item, at))
        ]
    return []  # PAUSE_SCHEDULE_CHANGED, price changes, items changed: nothing to fold yet


def _order(
    item: dict[str, Any], order: str, chain: str, started: datetime, expiry: datetime, rates: Rates
) -> TransactionInfo:
    trial = "freeTrial" in (item.get("offerPhase") or {})
    amount, currency = money((item.get("autoRenewingPlan") or {}).get("recurringPrice"))
    if trial:
        amount = Decimal(0)
    offer_details = item.get("offerDetails") or {}
    return TransactionInfo(
        transaction_id=order,
        original_transaction_id=chain,
        product_id=str(item.get("productId")),
        base_plan_id=offer_details.get("basePlanId"),
        # Told after the order expired: it lasted until then, however long that was.
        purchased_at=started if started < expiry else expiry - timedelta(seconds=1),
        expires_at=expiry,
        offer=_TRIAL if trial else None,
        price_local=amount,
        currency=currency,
        price_usd=rates.to_usd(amount, currency),
    )


def _renewal(state: dict[str, Any], item: dict[str, Any], at: datetime) -> RenewalInfo:
    status = state.get("subscriptionState", "")
    plan = item.get("autoRenewingPlan") or {}
    retry = status in ("SUBSCRIPTION_STATE_IN_GRACE_PERIOD", "SUBSCRIPTION_STATE_ON_HOLD")
    cancelled = state.get("canceledStateContext") or {}
    reason = next((r for key, r in _CANCEL_REASONS.items() if key in cancelled), None)
    auto_renew = bool(plan.get("autoRenewEnabled", status == "SUBSCRIPTION_STATE_ACTIVE"))
    return RenewalInfo(
        auto_renew=auto_renew
        and status not in ("SUBSCRIPTION_STATE_CANCELED", "SUBSCRIPTION_STATE_EXPIRED"),
        cancellation_reason=reason,
        in_billing_retry=retry,
        billing_issue_detected_at=at if retry else None,
        # In grace, the line item's expiry is the end of the grace period.
        grace_period_expires_at=instant(item.get("expiryTime"))
        if status == "SUBSCRIPTION_STATE_IN_GRACE_PERIOD"
        else None,
        paused=status == "SUBSCRIPTION_STATE_PAUSED",
        auto_resume_at=instant((state.get("pausedStateContext") or {}).get("autoResumeTime")),
    )


def _one_time(
    notice: dict[str, Any],
    product: dict[str, Any],
    base: dict[str, Any],
    at: datetime,
    rates: Rates,
) -> StoreEvent:
    order = str(product.get("orderId") or notice["purchaseToken"])
    line = (product.get("productLineItem") or [{}])[0]
    # The Play API gives no price for one-time purchases: revenue is not known here.
    tx = TransactionInfo(
        transaction_id=order,
        original_transaction_id=order,
        product_id=str(line.get("productId") or notice.get("sku") or "unknown"),
        is_subscription=False,
        purchased_at=instant(product.get("purchaseCompletionTime")) or at,
        price_usd=rates.to_usd(Decimal(0), "USD"),
    )
    return StoreEvent(
        **{**base, "effective_at": tx.purchased_at},
        event_type=E.NON_SUBSCRIPTION_PURCHASE,
        original_transaction_id=order,
        transaction_id=order,
        product_id=tx.product_id,
        transaction=tx,
        environment=Environment.SANDBOX
        if product.get("testPurchaseContext")
        else Environment.PRODUCTION,
        profile=_profile(product),
    )


def _profile(state: dict[str, Any]) -> ProfileRef | None:
    ids = state.get("externalAccountIdentifiers") or {}
    account = ids.get("obfuscatedExternalAccountId") or state.get("obfuscatedExternalAccountId")
    if not account:
        return None
    try:
        return ProfileRef(profile_id=UUID(str(account)))
    except ValueError:
        return ProfileRef(customer_user_id=str(account))
