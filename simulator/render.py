"""A life (plan.py) as the notifications its store sends: unsigned, dated as they happened.

App Store: the notification's claims, with the transaction and renewal info in the clear
under `data.transaction` and `data.renewal` (signed when sent). Stripe: the event. Google
Play: the developer notification and the purchase's state the Play Developer API serves
right after it. Types and fields as in facts sections 3-5.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from simulator.plan import (
    APP_APPLE_ID,
    BUNDLE,
    COUNTRIES,
    DAY,
    PACKAGE,
    ZERO_DECIMAL,
    Life,
    Moment,
    Step,
    chain_id,
    iso,
)

_APPLE = {
    # moment -> (notificationType, subtype)
    "start": ("SUBSCRIBED", "INITIAL_BUY"),
    "renew": ("DID_RENEW", None),
    "recover": ("DID_RENEW", "BILLING_RECOVERY"),
    "cancel": ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED"),
    "reactivate": ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED"),
    "expire": ("EXPIRED", "VOLUNTARY"),
    "billing_issue": ("DID_FAIL_TO_RENEW", None),
    "grace_expired": ("GRACE_PERIOD_EXPIRED", None),
    "refund": ("REFUND", None),
    "change_product": ("DID_CHANGE_RENEWAL_PREF", "DOWNGRADE"),
    "one_time": ("ONE_TIME_CHARGE", None),
}
# Play's subscription notification types (facts 4.2).
_GOOGLE = {
    "start": 4,
    "renew": 2,
    "recover": 1,
    "cancel": 3,
    "reactivate": 7,
    "expire": 13,
    "billing_issue": 6,
    "grace_expired": 5,
    "refund": 12,
    "change_product": 3,
    "pause": 10,
}


def store_steps(seed: int, me: Life) -> list[Step]:
    rng = random.Random(f"{seed}:{me.number}:ids")
    render = {"app_store": _apple, "google_play": _google, "stripe": _stripe}[me.store]
    steps: list[Step] = []
    for moment in me.moments:
        steps += render(seed, me, moment, rng)
    return steps


def _price(me: Life, moment: Moment) -> int:
    """Minor units in the profile's currency; nothing for a free trial."""
    return 0 if moment.trial else moment.product.prices[me.currency]


def _units(minor: int, currency: str) -> tuple[int, int]:
    """(whole units, nanos) of a price in minor units."""
    scale = 1 if currency in ZERO_DECIMAL else 100
    return minor // scale, minor % scale * (1_000_000_000 // scale)


# --- App Store ---------------------------------------------------------------------------


def _milliunits(minor: int, currency: str) -> int:
    """Apple's prices are in thousandths of the currency's unit."""
    return minor * (1000 if currency in ZERO_DECIMAL else 10)


def _apple(seed: int, me: Life, moment: Moment, rng: random.Random) -> list[Step]:
    kind, subtype = _APPLE[moment.kind]
    original = chain_id(seed, me)
    length = moment.product.period_days * DAY
    starts, ends, period = moment.starts, moment.ends, moment.period
    if moment.kind == "billing_issue":
        # The renewal failed: the transaction is the last one that was paid.
        starts, ends, period = moment.starts - length, moment.starts, moment.period - 1
    tx: dict[str, Any] = {
        "transactionId": str(int(original) + period),
        "originalTransactionId": original,
        "bundleId": BUNDLE,
        "productId": moment.product.apple_id,
        "purchaseDate": starts,
        "originalPurchaseDate": me.moments[0].starts,
        "expiresDate": ends,
        "type": "Auto-Renewable Subscription",
        "inAppOwnershipType": "PURCHASED",
        "environment": "Production",
        "price": _milliunits(_price(me, moment), me.currency),
        "currency": me.currency,
        "storefront": COUNTRIES[me.currency],
        "appAccountToken": str(me.profile_id),
        "signedDate": moment.at,
    }
    if moment.trial:
        tx |= {"offerType": 1, "offerDiscountType": "FREE_TRIAL"}
    renewal: dict[str, Any] = {
        "originalTransactionId": original,
        "autoRenewStatus": 0 if moment.kind in ("cancel", "expire") else 1,
        "productId": moment.product.apple_id,
        "autoRenewProductId": moment.detail
        if moment.kind == "change_product"
        else moment.product.apple_id,
        "signedDate": moment.at,
        "environment": "Production",
    }
    if moment.kind == "one_time":
        tx = {
            **tx,
            "transactionId": str(int(original) + 90 + rng.randint(0, 9)),
            "originalTransactionId": str(int(original) + 50 + rng.randint(0, 9)),
            "productId": moment.detail,
            "type": "Consumable",
            "purchaseDate": moment.at,
            "originalPurchaseDate": moment.at,
            "price": _milliunits(700 if me.currency in ZERO_DECIMAL else 499, me.currency),
        }
        del tx["expiresDate"]
        renewal = {}
    elif moment.kind == "billing_issue":
        renewal |= {"isInBillingRetryPeriod": True, "expirationIntent": 2}
        if moment.detail == "grace":
            subtype = "GRACE_PERIOD"
            renewal["gracePeriodExpiresDate"] = moment.ends
    elif moment.kind == "expire":
        renewal["expirationIntent"] = 1
    elif moment.kind == "refund":
        tx |= {"revocationDate": moment.at, "revocationReason": 0}
    data: dict[str, Any] = {
        "environment": "Production",
        "bundleId": BUNDLE,
        "appAppleId": APP_APPLE_ID,
        "transaction": tx,
    }
    if renewal:
        data["renewal"] = renewal
    claims: dict[str, Any] = {
        "notificationType": kind,
        "notificationUUID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "version": "2.0",
        "signedDate": moment.at,
        "data": data,
    }
    if subtype:
        claims["subtype"] = subtype
    what = kind if not subtype else f"{kind}/{subtype}"
    return [Step(moment.at, me.number, "app_store", what, claims)]


# --- Stripe ------------------------------------------------------------------------------


def _stripe(seed: int, me: Life, moment: Moment, rng: random.Random) -> list[Step]:
    sub = chain_id(seed, me)
    metadata = {"profile_id": str(me.profile_id)}
    seconds = moment.at // 1000
    subscription: dict[str, Any] = {
        "id": sub,
        "object": "subscription",
        "status": "trialing" if moment.trial else "active",
        "cancel_at_period_end": False,
        "metadata": metadata,
    }

    def invoice(reason: str, paid: bool = True) -> dict[str, Any]:
        amount = _price(me, moment)
        return {
            "id": f"in_{sub}_{moment.period}",
            "object": "invoice",
            "amount_paid": amount if paid else 0,
            "amount_due": amount,
            "currency": me.currency.lower(),
            "billing_reason": reason,
            "payment_intent": f"pi_{sub}_{moment.period}",
            "customer_address": {"country": COUNTRIES[me.currency][:2]},
            "parent": {"subscription_details": {"subscription": sub, "metadata": metadata}},
            "lines": {
                "data": [
                    {
                        "period": {"start": moment.starts // 1000, "end": moment.ends // 1000},
                        "pricing": {
                            "price_details": {
                                "price": f"price_{moment.product.base_plan}",
                                "product": moment.product.apple_id,
                            }
                        },
                    }
                ]
            },
        }

    events: list[tuple[str, dict[str, Any]]]
    match moment.kind:
        case "start":
            events = [
                ("customer.subscription.created", subscription),
                ("invoice.paid", invoice("subscription_create")),
            ]
        case "renew" | "recover":
            events = [("invoice.paid", invoice("subscription_cycle"))]
        case "cancel":
            events = [
                ("customer.subscription.updated", subscription | {"cancel_at_period_end": True})
            ]
        case "reactivate":
            events = [("customer.subscription.updated", subscription)]
        case "expire" | "grace_expired":
            reason = (
                "payment_failed" if moment.kind == "grace_expired" else "cancellation_requested"
            )
            ended = subscription | {
                "status": "canceled",
                "ended_at": seconds,
                "cancellation_details": {"reason": reason},
            }
            events = [("customer.subscription.deleted", ended)]
        case "billing_issue":
            events = [
                ("invoice.payment_failed", invoice("subscription_cycle", paid=False)),
                ("customer.subscription.updated", subscription | {"status": "past_due"}),
            ]
        case "refund":
            # As API versions before 2025-03-31 send it: the invoice by id, which ingress
            # fetches from the Stripe API (the simulator's stand-in).
            charge = {
                "id": f"ch_{sub}_{moment.period}",
                "object": "charge",
                "amount": _price(me, moment),
                "refunded": True,
                "amount_refunded": _price(me, moment),
                "currency": me.currency.lower(),
                "invoice": f"in_{sub}_{moment.period}",
                "payment_intent": f"pi_{sub}_{moment.period}",
            }
            events = [("charge.refunded", charge)]
        case "pause":
            events = [("customer.subscription.paused", subscription | {"status": "paused"})]
        case _:
            events = []
    steps = []
    for offset, (kind, obj) in enumerate(events):
        event = {
            "id": f"evt_{uuid.UUID(int=rng.getrandbits(128)).hex[:24]}",
            "object": "event",
            "type": kind,
            "created": seconds + offset,
            "livemode": True,
            "data": {"object": obj},
        }
        steps.append(Step(moment.at + offset * 1000, me.number, "stripe", kind, event))
    return steps


# --- Google Play ---------------------------------------------------------------------------


def _google(seed: int, me: Life, moment: Moment, rng: random.Random) -> list[Step]:
    token = chain_id(seed, me)
    if moment.kind == "one_time":
        product_token = f"{token}-otp-{rng.randint(0, 999)}"
        notification: dict[str, Any] = {
            "version": "1.0",
            "packageName": PACKAGE,
            "eventTimeMillis": str(moment.at),
            "oneTimeProductNotification": {
                "version": "1.0",
                "notificationType": 1,
                "purchaseToken": product_token,
                "sku": moment.detail,
            },
        }
        purchase = {
            "orderId": f"GPA.{seed}-{me.number}-otp",
            "purchaseStateContext": {"purchaseState": "PURCHASED"},
            "purchaseCompletionTime": iso(moment.at),
            "obfuscatedExternalAccountId": str(me.profile_id),
            "productLineItem": [{"productId": moment.detail}],
        }
        body = {"notification": notification, "token": product_token, "product": purchase}
        return [Step(moment.at, me.number, "google_play", "ONE_TIME_PRODUCT_PURCHASED", body)]
    status = {
        "cancel": "SUBSCRIPTION_STATE_CANCELED",
        "expire": "SUBSCRIPTION_STATE_EXPIRED",
        "billing_issue": "SUBSCRIPTION_STATE_IN_GRACE_PERIOD"
        if moment.detail == "grace"
        else "SUBSCRIPTION_STATE_ON_HOLD",
        "grace_expired": "SUBSCRIPTION_STATE_ON_HOLD",
        "pause": "SUBSCRIPTION_STATE_PAUSED",
        "refund": "SUBSCRIPTION_STATE_EXPIRED",
    }.get(moment.kind, "SUBSCRIPTION_STATE_ACTIVE")
    kind = _GOOGLE[moment.kind]
    if moment.kind == "billing_issue" and moment.detail != "grace":
        kind = 5
    whole, nanos = _units(moment.product.prices[me.currency], me.currency)
    period = moment.period - 1 if moment.kind == "billing_issue" else moment.period
    expiry = moment.starts if moment.kind == "billing_issue" else moment.ends
    item: dict[str, Any] = {
        "productId": moment.product.apple_id,
        "expiryTime": iso(expiry),
        "latestSuccessfulOrderId": f"GPA.{seed}-{me.number}..{period}",
        "autoRenewingPlan": {
            "autoRenewEnabled": status == "SUBSCRIPTION_STATE_ACTIVE",
            "recurringPrice": {"currencyCode": me.currency, "units": str(whole), "nanos": nanos},
        },
        "offerDetails": {"basePlanId": moment.product.base_plan},
        "offerPhase": {"freeTrial": {}} if moment.trial else {"basePrice": {}},
    }
    state: dict[str, Any] = {
        "subscriptionState": status,
        "startTime": iso(me.moments[0].starts),
        "lineItems": [item],
        "externalAccountIdentifiers": {"obfuscatedExternalAccountId": str(me.profile_id)},
        "regionCode": COUNTRIES[me.currency][:2],
    }
    if moment.kind == "cancel":
        state["canceledStateContext"] = {"userInitiatedCancellation": {}}
    notification = {
        "version": "1.0",
        "packageName": PACKAGE,
        "eventTimeMillis": str(moment.at),
        "subscriptionNotification": {
            "version": "1.0",
            "notificationType": kind,
            "purchaseToken": token,
        },
    }
    body = {"notification": notification, "token": token, "subscription": state}
    return [Step(moment.at, me.number, "google_play", f"SUBSCRIPTION_{kind}", body)]
