"""Canonical store events: what normalizers make of store notifications (DOMAIN.md section 2).

A canonical event carries the store's own view of one transaction and of the renewal
state at the store's signed time. The chain fold merges these facts; the journey events
(`subscription_renewed`, `trial_converted`, ...) are derived from the merged facts.
"""

from __future__ import annotations

from uuid import UUID

from msgspec.structs import force_setattr

from schemas.base import Instant, NonEmpty, Record, require, utc
from schemas.enums import (
    CancellationReason,
    Environment,
    EventType,
    OfferCategory,
    OfferType,
    Store,
)
from schemas.money import ZERO, Amount, CurrencyCode, exact


class Offer(Record, frozen=True, kw_only=True):
    category: OfferCategory
    type: OfferType
    id: str | None = None


_TX_INSTANTS = ("purchased_at", "originally_purchased_at", "expires_at", "ended_at", "revoked_at")


class TransactionInfo(Record, frozen=True, kw_only=True, omit_defaults=True):
    """One store transaction as the store last described it."""

    transaction_id: NonEmpty
    original_transaction_id: NonEmpty
    product_id: NonEmpty
    base_plan_id: str | None = None
    is_subscription: bool = True
    is_consumable: bool = False
    purchased_at: Instant
    originally_purchased_at: Instant | None = None
    expires_at: Instant | None = None
    offer: Offer | None = None
    price_local: Amount = ZERO
    currency: CurrencyCode = "USD"
    price_usd: Amount = ZERO
    store_country: str | None = None
    is_family_shared: bool = False
    # Replaced by an upgrade inside the subscription group.
    is_upgraded: bool = False
    # Ended before `expires_at` without a refund (Stripe immediate cancel).
    ended_at: Instant | None = None
    # Refund: set while refunded, cleared by a refund reversal.
    revoked_at: Instant | None = None
    revocation_reason: CancellationReason | None = None
    # How much of the price the store gave back (a partial or prorated refund), in all:
    # None with `revoked_at` set is all of it. A partial refund keeps access unless the
    # store also revokes the transaction (DOMAIN.md 6).
    refunded_local: Amount | None = None
    refunded_usd: Amount | None = None

    @property
    def is_trial(self) -> bool:
        return self.offer is not None and self.offer.type is OfferType.FREE_TRIAL

    @property
    def revenue_usd(self) -> Amount:
        """What the transaction earned: its price less what the store gave back."""
        if self.refunded_usd is not None:
            return max(self.price_usd - self.refunded_usd, ZERO)
        return ZERO if self.revoked_at is not None else self.price_usd

    def __post_init__(self) -> None:
        utc(self, _TX_INSTANTS)
        exact("price_local", self.price_local)
        exact("price_usd", self.price_usd)
        _refund_amounts(self.refunded_local, self.refunded_usd)
        require(
            not self.is_subscription or self.expires_at is not None,
            "a subscription transaction needs expires_at",
        )
        require(
            self.expires_at is None or self.expires_at > self.purchased_at,
            "expires_at must be later than purchased_at",
        )


def _refund_amounts(local: Amount | None, usd: Amount | None) -> None:
    require((local is None) == (usd is None), "refunded_local and refunded_usd come together")
    for name, value in (("refunded_local", local), ("refunded_usd", usd)):
        if value is not None:
            exact(name, value)
            require(value >= 0, f"{name} cannot be negative")


_RENEWAL_INSTANTS = ("billing_issue_detected_at", "grace_period_expires_at", "auto_resume_at")


class RenewalInfo(Record, frozen=True, kw_only=True, omit_defaults=True):
    """The store's renewal state of a chain at its signed time."""

    auto_renew: bool = True
    auto_renew_product_id: str | None = None
    # Why renewal stopped (Apple expirationIntent, Google cancel reason, ...).
    cancellation_reason: CancellationReason | None = None
    in_billing_retry: bool = False
    billing_issue_detected_at: Instant | None = None
    grace_period_expires_at: Instant | None = None
    paused: bool = False
    auto_resume_at: Instant | None = None

    def __post_init__(self) -> None:
        utc(self, _RENEWAL_INSTANTS)


class TransactionPatch(Record, frozen=True, kw_only=True, omit_defaults=True):
    """A change to one known transaction, without restating it (the store gave no more).

    `revoked` True refunds it at `revoked_at`, False reverses a refund (or, with
    `refunded_*`, gives back part of its price and keeps access); `expires_at` extends it
    (a deferral). Newer store statements win, patch or full version alike.
    """

    transaction_id: NonEmpty
    revoked: bool | None = None
    revoked_at: Instant | None = None
    revocation_reason: CancellationReason | None = None
    expires_at: Instant | None = None
    # What the store has given back of the price in all, when it says so.
    refunded_local: Amount | None = None
    refunded_usd: Amount | None = None

    def __post_init__(self) -> None:
        utc(self, ("revoked_at", "expires_at"))
        _refund_amounts(self.refunded_local, self.refunded_usd)
        require(
            self.revoked is not None or self.expires_at is not None,
            "a patch revokes, reverses or extends a transaction",
        )
        require(
            self.refunded_usd is None or self.revoked is not None,
            "a refunded amount comes with the refund state",
        )
        require(not self.revoked or self.revoked_at is not None, "a revocation needs revoked_at")


class ProfileRef(Record, frozen=True, kw_only=True, omit_defaults=True):
    """Who a store event names as its buyer (appAccountToken, obfuscated account id, metadata)."""

    profile_id: UUID | None = None
    customer_user_id: NonEmpty | None = None

    def __post_init__(self) -> None:
        require(
            self.profile_id is not None or self.customer_user_id is not None,
            "profile_id or customer_user_id is required",
        )


def chain_key_of(store: Store, original_transaction_id: str) -> str:
    return f"{store.value}:{original_transaction_id}"


_EVENT_INSTANTS = ("effective_at", "signed_at", "received_at", "terminated_at")


class StoreEvent(
    Record, tag="store_event", tag_field="kind", frozen=True, kw_only=True, omit_defaults=True
):
    event_id: NonEmpty
    event_type: EventType
    store: Store
    environment: Environment = Environment.PRODUCTION
    original_transaction_id: NonEmpty
    # Derived from store and original transaction id when left empty.
    chain_key: str = ""
    transaction_id: str | None = None
    product_id: str | None = None
    effective_at: Instant
    signed_at: Instant
    received_at: Instant
    # Where this came from: raw topic and dedupe key of the notification.
    source: str = ""
    profile: ProfileRef | None = None
    transaction: TransactionInfo | None = None
    renewal: RenewalInfo | None = None
    # The store ended access now, whatever period was running (Stripe immediate cancel).
    terminated_at: Instant | None = None
    patch: TransactionPatch | None = None

    def __post_init__(self) -> None:
        utc(self, _EVENT_INSTANTS)
        key = chain_key_of(self.store, self.original_transaction_id)
        if not self.chain_key:
            force_setattr(self, "chain_key", key)
        require(self.chain_key == key, "chain_key does not match store and original_transaction_id")
        tx = self.transaction
        require(
            tx is None or tx.original_transaction_id == self.original_transaction_id,
            "transaction belongs to another chain",
        )
