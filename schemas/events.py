"""Canonical store events: what normalizers make of store notifications (DOMAIN.md section 2).

A canonical event carries the store's own view of one transaction and of the renewal
state at the store's signed time. The chain fold merges these facts; the journey events
(`subscription_renewed`, `trial_converted`, ...) are derived from the merged facts.
"""

from __future__ import annotations

from typing import Any, Literal, Self
from uuid import UUID

from pydantic import Field, model_validator

from schemas.base import Frozen, Instant
from schemas.enums import (
    CancellationReason,
    Environment,
    EventType,
    OfferCategory,
    OfferType,
    Store,
)
from schemas.money import ZERO, Amount, CurrencyCode


class Offer(Frozen):
    category: OfferCategory
    type: OfferType
    id: str | None = None


class TransactionInfo(Frozen):
    """One store transaction as the store last described it."""

    transaction_id: str = Field(min_length=1)
    original_transaction_id: str = Field(min_length=1)
    product_id: str = Field(min_length=1)
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

    @property
    def is_trial(self) -> bool:
        return self.offer is not None and self.offer.type is OfferType.FREE_TRIAL

    @model_validator(mode="after")
    def _subscription_has_expiry(self) -> Self:
        if self.is_subscription and self.expires_at is None:
            raise ValueError("a subscription transaction needs expires_at")
        if self.expires_at is not None and self.expires_at <= self.purchased_at:
            raise ValueError("expires_at must be later than purchased_at")
        return self


class RenewalInfo(Frozen):
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


class TransactionPatch(Frozen):
    """A change to one known transaction, without restating it (the store gave no more).

    `revoked` True refunds it at `revoked_at`, False reverses a refund; `expires_at`
    extends it (a deferral). Newer store statements win, patch or full version alike.
    """

    transaction_id: str = Field(min_length=1)
    revoked: bool | None = None
    revoked_at: Instant | None = None
    revocation_reason: CancellationReason | None = None
    expires_at: Instant | None = None

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if self.revoked is None and self.expires_at is None:
            raise ValueError("a patch revokes, reverses or extends a transaction")
        if self.revoked and self.revoked_at is None:
            raise ValueError("a revocation needs revoked_at")
        return self


class ProfileRef(Frozen):
    """Who a store event names as its buyer (appAccountToken, obfuscated account id, metadata)."""

    profile_id: UUID | None = None
    customer_user_id: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_required(self) -> Self:
        if self.profile_id is None and self.customer_user_id is None:
            raise ValueError("profile_id or customer_user_id is required")
        return self


def chain_key_of(store: Store, original_transaction_id: str) -> str:
    return f"{store.value}:{original_transaction_id}"


class StoreEvent(Frozen):
    kind: Literal["store_event"] = "store_event"
    event_id: str = Field(min_length=1)
    event_type: EventType
    store: Store
    environment: Environment = Environment.PRODUCTION
    original_transaction_id: str = Field(min_length=1)
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

    @model_validator(mode="before")
    @classmethod
    def _derive_chain_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("chain_key"):
            store, otid = data.get("store"), data.get("original_transaction_id")
            if store is not None and otid:
                data = {**data, "chain_key": chain_key_of(Store(store), str(otid))}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.chain_key != chain_key_of(self.store, self.original_transaction_id):
            raise ValueError("chain_key does not match store and original_transaction_id")
        tx = self.transaction
        if tx is not None and tx.original_transaction_id != self.original_transaction_id:
            raise ValueError("transaction belongs to another chain")
        return self
