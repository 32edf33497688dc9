"""App Store Server Notifications V2 to canonical events (facts 3.2, 3.3, 6.2, 6.3).

The input is the verified, decoded notification as ingress stored it: the payload with
`data.transaction` and `data.renewal` holding the decoded nested signed data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from uuid import UUID

import pycountry

from processors.normalize.canonical import checked, must
from processors.normalize.money import Rates, from_milliunits
from schemas.enums import (
    CancellationReason,
    Environment,
    EventType,
    OfferCategory,
    OfferType,
    Store,
)
from schemas.events import Offer, ProfileRef, RenewalInfo, StoreEvent, TransactionInfo
from schemas.raw import RawNotification

E = EventType
R = CancellationReason
MILLIUNIT = Decimal("0.001")

# Types that say nothing about a profile's state: kept on the raw topic, folded into nothing.
NOT_FOLDED = frozenset(
    {
        "TEST",
        "CONSUMPTION_REQUEST",
        "REFUND_DECLINED",
        "PRICE_INCREASE",
        "RENEWAL_EXTENSION",
        "EXTERNAL_PURCHASE_TOKEN",
        "METADATA_UPDATE",
        "MIGRATION",
        "PRICE_CHANGE",
        "RESCIND_CONSENT",
    }
)

_EXPIRATION_INTENT = {
    1: R.VOLUNTARILY_CANCELLED,
    2: R.BILLING_ERROR,
    3: R.PRICE_INCREASE,
    4: R.PRODUCT_WAS_NOT_AVAILABLE,
    5: R.UNKNOWN,
}
_EXPIRED_SUBTYPE = {
    "VOLUNTARY": R.VOLUNTARILY_CANCELLED,
    "BILLING_RETRY": R.BILLING_ERROR,
    "PRICE_INCREASE": R.PRICE_INCREASE,
    "PRODUCT_NOT_FOR_SALE": R.PRODUCT_WAS_NOT_AVAILABLE,
}
_OFFER_CATEGORY = {
    1: OfferCategory.INTRODUCTORY,
    2: OfferCategory.PROMOTIONAL,
    3: OfferCategory.OFFER_CODE,
    4: OfferCategory.WIN_BACK,
}
_OFFER_TYPE = {
    "FREE_TRIAL": OfferType.FREE_TRIAL,
    "PAY_AS_YOU_GO": OfferType.PAY_AS_YOU_GO,
    "PAY_UP_FRONT": OfferType.PAY_UP_FRONT,
}


class NotificationError(ValueError):
    """A verified notification that lacks what its type requires."""


def instant(millis: int | None) -> datetime | None:
    return None if millis is None else datetime.fromtimestamp(millis / 1000, tz=UTC)


def normalize(raw: RawNotification, rates: Rates) -> list[StoreEvent]:
    """The canonical events of one notification (none for kinds not folded)."""
    return checked(_normalize(raw, rates))


def _normalize(raw: RawNotification, rates: Rates) -> list[StoreEvent]:
    payload = raw.payload
    kind, subtype = payload.get("notificationType"), payload.get("subtype")
    if kind in NOT_FOLDED:
        return []
    data = payload.get("data") or {}
    tx_payload, renewal_payload = data.get("transaction"), data.get("renewal")
    if tx_payload is None:
        raise NotificationError(f"{kind} without a signed transaction")
    signed_at = instant(payload.get("signedDate")) or raw.received_at
    transaction = _transaction(tx_payload, rates, kind)
    renewal = _renewal(renewal_payload, kind, subtype, signed_at)
    event_type = _event_type(kind, subtype, transaction)
    purchase = event_type in (
        E.SUBSCRIPTION_STARTED,
        E.SUBSCRIPTION_RENEWED,
        E.TRIAL_STARTED,
        E.NON_SUBSCRIPTION_PURCHASE,
    )
    token = tx_payload.get("appAccountToken") or (renewal_payload or {}).get("appAccountToken")
    return [
        StoreEvent(
            event_id=f"app_store:{raw.dedupe_key}",
            event_type=event_type,
            store=Store.APP_STORE,
            environment=_environment(data.get("environment")),
            original_transaction_id=transaction.original_transaction_id,
            transaction_id=transaction.transaction_id,
            product_id=transaction.product_id,
            effective_at=transaction.purchased_at if purchase else signed_at,
            signed_at=signed_at,
            received_at=raw.received_at,
            source=f"app_store:{raw.dedupe_key}",
            profile=ProfileRef(profile_id=UUID(token)) if token else None,
            transaction=transaction,
            renewal=renewal,
        )
    ]


def _environment(value: str | None) -> Environment:
    return Environment.PRODUCTION if value == "Production" else Environment.SANDBOX


def _transaction(tx: dict[str, Any], rates: Rates, kind: str | None) -> TransactionInfo:
    kind_of_product = tx.get("type")
    subscription = kind_of_product == "Auto-Renewable Subscription"
    currency = tx.get("currency") or "USD"
    price = from_milliunits(int(tx.get("price") or 0))
    offer = None
    if tx.get("offerType") in _OFFER_CATEGORY and tx.get("offerDiscountType") in _OFFER_TYPE:
        offer = Offer(
            category=_OFFER_CATEGORY[tx["offerType"]],
            type=_OFFER_TYPE[tx["offerDiscountType"]],
            id=tx.get("offerIdentifier"),
        )
    revoked_at = instant(tx.get("revocationDate"))
    upgraded = bool(tx.get("isUpgraded"))
    family = tx.get("inAppOwnershipType") == "FAMILY_SHARED"
    ended_at = None
    if kind == "REVOKE" and revoked_at is not None:
        # Family Sharing withdrawn: the member's access ends; no money moves.
        ended_at, revoked_at = revoked_at, None
    reason = None
    refunded = None
    if revoked_at is not None:
        reason = R.UPGRADED if upgraded else R.REFUND
        refunded = _prorated(tx, price)
    return TransactionInfo(
        transaction_id=str(tx["transactionId"]),
        original_transaction_id=str(tx["originalTransactionId"]),
        product_id=tx["productId"],
        is_subscription=subscription,
        is_consumable=kind_of_product == "Consumable",
        purchased_at=must(instant(tx["purchaseDate"]), "purchaseDate"),
        originally_purchased_at=instant(tx.get("originalPurchaseDate")),
        expires_at=instant(tx.get("expiresDate")) if subscription else None,
        offer=offer,
        price_local=price,
        currency=currency,
        price_usd=rates.to_usd(price, currency),
        store_country=country_of(tx.get("storefront")),
        is_family_shared=family,
        is_upgraded=upgraded,
        ended_at=ended_at,
        revoked_at=revoked_at,
        revocation_reason=reason,
        refunded_local=refunded,
        refunded_usd=None if refunded is None else rates.to_usd(refunded, currency),
    )


def _prorated(tx: dict[str, Any], price: Decimal) -> Decimal | None:
    """What a prorated refund gave back (`revocationPercentage` is in milliunits of a
    percent: 50000 is half); None for a full refund."""
    share = tx.get("revocationPercentage")
    if tx.get("revocationType") != "REFUND_PRORATED" or not isinstance(share, int):
        return None
    share = min(max(share, 0), 100_000)
    return (price * share / 100_000).quantize(MILLIUNIT, rounding=ROUND_HALF_EVEN)


def country_of(storefront: object) -> str | None:
    """The App Store's storefront (ISO 3166 alpha-3, `DEU`) as an alpha-2 code (`DE`)."""
    if not isinstance(storefront, str):
        return None
    country = pycountry.countries.get(alpha_3=storefront.upper())
    return country.alpha_2 if country is not None else None


def _renewal(
    info: dict[str, Any] | None, kind: str | None, subtype: str | None, signed_at: datetime
) -> RenewalInfo | None:
    if info is None:
        return None
    retry = bool(info.get("isInBillingRetryPeriod"))
    reason = _EXPIRATION_INTENT.get(info.get("expirationIntent") or 0)
    if kind == "EXPIRED":
        reason = _EXPIRED_SUBTYPE.get(subtype or "", reason or R.UNKNOWN)
        retry = False  # the retry period is over, whatever else it says
    grace = instant(info.get("gracePeriodExpiresDate"))
    failed = kind == "DID_FAIL_TO_RENEW" or retry
    return RenewalInfo(
        auto_renew=info.get("autoRenewStatus") == 1,
        auto_renew_product_id=info.get("autoRenewProductId"),
        cancellation_reason=reason,
        in_billing_retry=failed,
        billing_issue_detected_at=signed_at if failed else None,
        grace_period_expires_at=grace if failed else None,
    )


def _event_type(kind: str | None, subtype: str | None, tx: TransactionInfo) -> EventType:
    trial = tx.is_trial
    match kind:
        case "SUBSCRIBED" | "OFFER_REDEEMED" if subtype in (None, "INITIAL_BUY"):
            return E.TRIAL_STARTED if trial else E.SUBSCRIPTION_STARTED
        case "SUBSCRIBED" | "OFFER_REDEEMED" | "DID_RENEW":
            return E.SUBSCRIPTION_RENEWED
        case "DID_CHANGE_RENEWAL_STATUS":
            enabled = subtype == "AUTO_RENEW_ENABLED"
            if trial:
                return E.TRIAL_RENEWAL_REACTIVATED if enabled else E.TRIAL_RENEWAL_CANCELLED
            return (
                E.SUBSCRIPTION_RENEWAL_REACTIVATED if enabled else E.SUBSCRIPTION_RENEWAL_CANCELLED
            )
        case "DID_CHANGE_RENEWAL_PREF":
            return E.SUBSCRIPTION_STARTED if subtype == "UPGRADE" else E.SUBSCRIPTION_RENEWED
        case "DID_FAIL_TO_RENEW":
            return E.ENTERED_GRACE_PERIOD if subtype == "GRACE_PERIOD" else E.BILLING_ISSUE_DETECTED
        case "GRACE_PERIOD_EXPIRED" | "EXPIRED" | "REVOKE":
            return E.TRIAL_EXPIRED if trial else E.SUBSCRIPTION_EXPIRED
        case "REFUND":
            return (
                E.SUBSCRIPTION_REFUNDED
                if tx.is_subscription
                else (E.NON_SUBSCRIPTION_PURCHASE_REFUNDED)
            )
        case "REFUND_REVERSED":
            return E.REFUND_REVERSED
        case "RENEWAL_EXTENDED":
            return E.SUBSCRIPTION_DEFERRED
        case "ONE_TIME_CHARGE":
            return E.NON_SUBSCRIPTION_PURCHASE
    raise NotificationError(f"unknown notification type {kind}/{subtype}")
