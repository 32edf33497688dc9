"""What a profile shows: derived from state and `now`, never stored as a source of truth."""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict
from uuid import UUID

from schemas.base import Instant, Record
from schemas.enums import CancellationReason, Environment, PurchaseStatus, Store, SubscriptionState
from schemas.events import Offer, TransactionInfo
from schemas.money import ZERO, Amount
from schemas.profile import AttributeValue, Note, ProfileFields


class StoreFields(TypedDict):
    store_product_id: str
    store_base_plan_id: str | None
    store_transaction_id: str
    store_original_transaction_id: str


def store_fields(tx: TransactionInfo) -> StoreFields:
    """The store identifiers every view repeats from its transaction."""
    return {
        "store_product_id": tx.product_id,
        "store_base_plan_id": tx.base_plan_id,
        "store_transaction_id": tx.transaction_id,
        "store_original_transaction_id": tx.original_transaction_id,
    }


class AccessLevelView(Record, frozen=True, kw_only=True):
    """The Adapty AccessLevel fields (facts 1.8.2)."""

    access_level_id: str
    is_active: bool
    is_lifetime: bool
    expires_at: Instant | None
    starts_at: Instant | None = None
    store: Store
    store_product_id: str | None = None
    store_base_plan_id: str | None = None
    store_transaction_id: str | None = None
    store_original_transaction_id: str | None = None
    offer: Offer | None = None
    purchased_at: Instant | None = None
    originally_purchased_at: Instant | None = None
    renewal_cancelled_at: Instant | None = None
    billing_issue_detected_at: Instant | None = None
    is_in_grace_period: bool = False
    cancellation_reason: CancellationReason | None = None
    will_renew: bool = False
    is_refund: bool = False
    environment: Environment = Environment.PRODUCTION
    # For an inheritor: the parent profile whose purchase gives the access.
    shared_from_profile_id: UUID | None = None


class SubscriptionView(Record, frozen=True, kw_only=True):
    chain_key: str
    store: Store
    environment: Environment
    store_product_id: str
    store_base_plan_id: str | None = None
    store_transaction_id: str
    store_original_transaction_id: str
    offer: Offer | None = None
    purchased_at: Instant
    originally_purchased_at: Instant
    expires_at: Instant
    is_active: bool
    is_trial: bool
    will_renew: bool
    renewal_cancelled_at: Instant | None = None
    billing_issue_detected_at: Instant | None = None
    is_in_grace_period: bool = False
    grace_period_expires_at: Instant | None = None
    is_in_billing_retry: bool = False
    is_paused: bool = False
    is_refund: bool = False
    cancellation_reason: CancellationReason | None = None
    price_local: Amount = ZERO
    currency: str = "USD"
    price_usd: Amount = ZERO
    is_parent: bool = True


class NonSubscriptionView(Record, frozen=True, kw_only=True):
    purchase_id: str
    store: Store
    environment: Environment
    store_product_id: str
    store_base_plan_id: str | None = None
    store_transaction_id: str
    store_original_transaction_id: str
    purchased_at: Instant
    is_refund: bool
    is_consumable: bool
    price_local: Amount = ZERO
    currency: str = "USD"
    price_usd: Amount = ZERO


class Revenue(Record, frozen=True, kw_only=True):
    """Exact totals, refunds subtracted. Sandbox money is kept apart."""

    total_revenue_usd: Amount = ZERO
    total_proceeds_usd: Amount = ZERO
    sandbox_total_revenue_usd: Amount = ZERO
    sandbox_total_proceeds_usd: Amount = ZERO


class EmailMetrics(Record, frozen=True, kw_only=True):
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    # None when nothing was sent.
    open_rate: Amount | None = None
    attributed_revenue_usd: Amount = ZERO


class ProfileLink(Record, frozen=True, kw_only=True):
    profile_id: UUID
    chain_key: str


class ProfileView(Record, frozen=True, kw_only=True):
    profile_id: UUID
    customer_user_id: str | None
    deleted: bool = False
    created_at: Instant | None = None
    last_seen_at: Instant | None = None
    fields: ProfileFields = ProfileFields()
    custom_attributes: dict[str, AttributeValue] = {}
    notes: tuple[Note, ...] = ()
    subscription_state: SubscriptionState
    purchase_status: PurchaseStatus
    access_levels: tuple[AccessLevelView, ...] = ()
    subscriptions: tuple[SubscriptionView, ...] = ()
    non_subscriptions: tuple[NonSubscriptionView, ...] = ()
    revenue: Revenue = Revenue()
    email: EmailMetrics = EmailMetrics()
    email_subscribed: bool = True
    # Profiles that get access through this profile's purchases, and vice versa.
    inheritors: tuple[ProfileLink, ...] = ()
    parents: tuple[ProfileLink, ...] = ()
    next_wakeup_at: Instant | None = None
    as_of: Instant | None = None
    version: int = 0


def rate(numerator: int, denominator: int) -> Decimal | None:
    if denominator == 0:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"))
