"""Every enumeration of the domain, in one place (DOMAIN.md sections 2, 4 and 7; facts 1.5)."""

from __future__ import annotations

from enum import StrEnum


class Store(StrEnum):
    APP_STORE = "app_store"
    PLAY_STORE = "play_store"
    STRIPE = "stripe"
    ADAPTY = "adapty"
    PADDLE = "paddle"


class Environment(StrEnum):
    PRODUCTION = "Production"
    SANDBOX = "Sandbox"


class EventType(StrEnum):
    """The one enum of event types: Adapty's 18 plus subledger's own."""

    SUBSCRIPTION_STARTED = "subscription_started"
    SUBSCRIPTION_RENEWED = "subscription_renewed"
    SUBSCRIPTION_RENEWAL_CANCELLED = "subscription_renewal_cancelled"
    SUBSCRIPTION_RENEWAL_REACTIVATED = "subscription_renewal_reactivated"
    SUBSCRIPTION_EXPIRED = "subscription_expired"
    SUBSCRIPTION_PAUSED = "subscription_paused"
    SUBSCRIPTION_DEFERRED = "subscription_deferred"
    NON_SUBSCRIPTION_PURCHASE = "non_subscription_purchase"
    TRIAL_STARTED = "trial_started"
    TRIAL_CONVERTED = "trial_converted"
    TRIAL_RENEWAL_CANCELLED = "trial_renewal_cancelled"
    TRIAL_RENEWAL_REACTIVATED = "trial_renewal_reactivated"
    TRIAL_EXPIRED = "trial_expired"
    ENTERED_GRACE_PERIOD = "entered_grace_period"
    BILLING_ISSUE_DETECTED = "billing_issue_detected"
    SUBSCRIPTION_REFUNDED = "subscription_refunded"
    NON_SUBSCRIPTION_PURCHASE_REFUNDED = "non_subscription_purchase_refunded"
    ACCESS_LEVEL_UPDATED = "access_level_updated"
    REFUND_REVERSED = "refund_reversed"
    ACCESS_LEVEL_GRANTED = "access_level_granted"
    ACCESS_LEVEL_REVOKED = "access_level_revoked"
    ENTITLEMENTS_TRANSFERRED = "entitlements_transferred"
    PROFILE_CREATED = "profile_created"
    PROFILE_IDENTIFIED = "profile_identified"
    PROFILE_UPDATED = "profile_updated"
    PROFILE_DELETED = "profile_deleted"
    EMAIL_SENT = "email_sent"
    EMAIL_DELIVERED = "email_delivered"
    EMAIL_OPENED = "email_opened"
    EMAIL_CLICKED = "email_clicked"
    EMAIL_UNSUBSCRIBED = "email_unsubscribed"


class CancellationReason(StrEnum):
    VOLUNTARILY_CANCELLED = "voluntarily_cancelled"
    BILLING_ERROR = "billing_error"
    PRICE_INCREASE = "price_increase"
    PRODUCT_WAS_NOT_AVAILABLE = "product_was_not_available"
    REFUND = "refund"
    CANCELLED_BY_DEVELOPER = "cancelled_by_developer"
    NEW_SUBSCRIPTION_REPLACE = "new_subscription_replace"
    UPGRADED = "upgraded"
    UNKNOWN = "unknown"
    ADAPTY_REVOKED = "adapty_revoked"


class OfferCategory(StrEnum):
    INTRODUCTORY = "introductory"
    PROMOTIONAL = "promotional"
    OFFER_CODE = "offer_code"
    WIN_BACK = "win_back"


class OfferType(StrEnum):
    FREE_TRIAL = "free_trial"
    PAY_AS_YOU_GO = "pay_as_you_go"
    PAY_UP_FRONT = "pay_up_front"


class SubscriptionState(StrEnum):
    """Adapty CRM label (DOMAIN.md section 4, first table), in precedence order."""

    SUBSCRIBED = "subscribed"
    ACTIVE_TRIAL = "active_trial"
    AUTO_RENEW_OFF = "auto_renew_off"
    GRACE_PERIOD = "grace_period"
    BILLING_ISSUE = "billing_issue"
    TRIAL_CANCELLED = "trial_cancelled"
    SUBSCRIPTION_CANCELLED = "subscription_cancelled"
    NEVER_SUBSCRIBED = "never_subscribed"


class PurchaseStatus(StrEnum):
    """Adapty Mail label (DOMAIN.md section 4, second table), in precedence order."""

    ACTIVE_SUBSCRIBER = "active_subscriber"
    CANCELLING = "cancelling"
    GRACE_PERIOD = "grace_period"
    BILLING_ISSUE = "billing_issue"
    REFUNDED = "refunded"
    CHURNED = "churned"
    PURCHASED = "purchased"
    NEVER_PURCHASED = "never_purchased"


class SharingPolicy(StrEnum):
    """What a restore by another profile does (seed 004)."""

    SHARED = "shared"
    TRANSFER = "transfer"
    DISABLED = "disabled"


class Gender(StrEnum):
    FEMALE = "f"
    MALE = "m"
    OTHER = "o"


class Platform(StrEnum):
    IOS = "iOS"
    MACOS = "macOS"
    IPADOS = "iPadOS"
    ANDROID = "Android"
    VISIONOS = "visionOS"
    WEB = "web"


class EmailEventKind(StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"


class ClaimKind(StrEnum):
    """How a profile came to be related to a chain."""

    PURCHASE = "purchase"
    RESTORE = "restore"
    # From `counterpart` to the claiming profile.
    TRANSFER = "transfer"
    DELETE = "delete"
