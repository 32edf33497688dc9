"""Concise builders of canonical events and commands for scenario tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

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

T0 = datetime(2026, 4, 1, tzinfo=UTC)
ALICE = UUID("00000000-0000-4000-8000-00000000a11c")
BOB = UUID("00000000-0000-4000-8000-0000000000b0")
CAROL = UUID("00000000-0000-4000-8000-00000000ca20")
TRIAL = Offer(category=OfferCategory.INTRODUCTORY, type=OfferType.FREE_TRIAL)
E = EventType
R = CancellationReason

_serial = itertools.count(1)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


@dataclass
class Chain:
    """One store chain and the notifications a store would send about it."""

    otid: str = "1000"
    profile: UUID | None = ALICE
    store: Store = Store.APP_STORE
    product: str = "premium.monthly"
    environment: Environment = Environment.PRODUCTION
    transactions: dict[str, TransactionInfo] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.store.value}:{self.otid}"

    def event(
        self,
        kind: EventType,
        signed: datetime,
        tx: TransactionInfo | None = None,
        renewal: RenewalInfo | None = None,
        *,
        received: datetime | None = None,
        event_id: str | None = None,
    ) -> StoreEvent:
        tx = tx or self.latest()
        return StoreEvent(
            event_id=event_id or f"evt-{next(_serial)}",
            event_type=kind,
            store=self.store,
            environment=self.environment,
            original_transaction_id=self.otid,
            transaction_id=tx.transaction_id if tx else None,
            product_id=tx.product_id if tx else None,
            effective_at=tx.purchased_at if tx and kind in _PURCHASES else signed,
            signed_at=signed,
            received_at=received or signed,
            profile=ProfileRef(profile_id=self.profile) if self.profile else None,
            transaction=tx,
            renewal=renewal,
        )

    def latest(self) -> TransactionInfo | None:
        if not self.transactions:
            return None
        return max(self.transactions.values(), key=lambda t: t.purchased_at)

    def buy(
        self,
        tid: str,
        start: datetime,
        end: datetime,
        *,
        trial: bool = False,
        price: str = "9.99",
        product: str | None = None,
        kind: EventType | None = None,
        received: datetime | None = None,
        **extra: Any,
    ) -> StoreEvent:
        tx = TransactionInfo(
            transaction_id=tid,
            original_transaction_id=self.otid,
            product_id=product or self.product,
            purchased_at=start,
            originally_purchased_at=min(
                [t.purchased_at for t in self.transactions.values()] + [start]
            ),
            expires_at=end,
            offer=TRIAL if trial else None,
            price_local=Decimal(0) if trial else Decimal(price),
            price_usd=Decimal(0) if trial else Decimal(price),
            **extra,
        )
        self.transactions[tid] = tx
        kind = kind or (E.TRIAL_STARTED if trial else E.SUBSCRIPTION_RENEWED)
        return self.event(kind, start, tx, RenewalInfo(), received=received)

    def one_time(
        self,
        tid: str,
        at: datetime,
        price: str = "4.99",
        consumable: bool = False,
        product: str = "lifetime",
    ) -> StoreEvent:
        self.otid = tid
        tx = TransactionInfo(
            transaction_id=tid,
            original_transaction_id=tid,
            product_id=product,
            is_subscription=False,
            is_consumable=consumable,
            purchased_at=at,
            price_local=Decimal(price),
            price_usd=Decimal(price),
        )
        self.transactions[tid] = tx
        return self.event(E.NON_SUBSCRIPTION_PURCHASE, at, tx)

    def auto_renew(
        self, on: bool, at: datetime, reason: CancellationReason | None = None
    ) -> StoreEvent:
        kind = E.SUBSCRIPTION_RENEWAL_REACTIVATED if on else E.SUBSCRIPTION_RENEWAL_CANCELLED
        return self.event(kind, at, renewal=RenewalInfo(auto_renew=on, cancellation_reason=reason))

    def billing_issue(self, at: datetime, grace_until: datetime | None = None) -> StoreEvent:
        renewal = RenewalInfo(
            in_billing_retry=True, billing_issue_detected_at=at, grace_period_expires_at=grace_until
        )
        return self.event(E.BILLING_ISSUE_DETECTED, at, renewal=renewal)

    def expired(
        self, at: datetime, reason: CancellationReason, auto_renew: bool = False
    ) -> StoreEvent:
        renewal = RenewalInfo(auto_renew=auto_renew, cancellation_reason=reason)
        return self.event(E.SUBSCRIPTION_EXPIRED, at, renewal=renewal)

    def refund(self, tid: str, at: datetime, reason: CancellationReason = R.REFUND) -> StoreEvent:
        tx = replace(self.transactions[tid], revoked_at=at, revocation_reason=reason)
        self.transactions[tid] = tx
        kind = (
            E.SUBSCRIPTION_REFUNDED if tx.is_subscription else E.NON_SUBSCRIPTION_PURCHASE_REFUNDED
        )
        return self.event(kind, at, tx)

    def refund_reversed(self, tid: str, at: datetime) -> StoreEvent:
        tx = replace(self.transactions[tid], revoked_at=None, revocation_reason=None)
        self.transactions[tid] = tx
        return self.event(E.REFUND_REVERSED, at, tx)

    def paused(self, at: datetime, resume_at: datetime | None = None) -> StoreEvent:
        return self.event(
            E.SUBSCRIPTION_PAUSED, at, renewal=RenewalInfo(paused=True, auto_resume_at=resume_at)
        )

    def terminated(self, at: datetime) -> StoreEvent:
        """The store ends access now (Stripe cancels a subscription at once)."""
        event = self.event(E.SUBSCRIPTION_EXPIRED, at, renewal=RenewalInfo(auto_renew=False))
        return replace(event, terminated_at=at, transaction=None, transaction_id=None)

    def patched(self, at: datetime, patch: TransactionPatch, kind: EventType) -> StoreEvent:
        """A store event that names a transaction by id only (Google Play's revocations)."""
        event = self.event(kind, at)
        return replace(
            event, transaction=None, renewal=None, patch=patch, transaction_id=patch.transaction_id
        )

    def refund_by_id(self, tid: str, at: datetime) -> StoreEvent:
        self.transactions[tid] = replace(
            self.transactions[tid], revoked_at=at, revocation_reason=R.REFUND
        )
        patch = TransactionPatch(
            transaction_id=tid, revoked=True, revoked_at=at, revocation_reason=R.REFUND
        )
        return self.patched(at, patch, E.SUBSCRIPTION_REFUNDED)

    def partial_refund_by_id(self, tid: str, at: datetime, more: Decimal) -> StoreEvent:
        """Stripe's way: `more` given back, stated as what was given back in all."""
        tx = self.transactions[tid]
        refunded = min((tx.refunded_usd or Decimal(0)) + more, tx.price_usd)
        self.transactions[tid] = replace(tx, refunded_local=refunded, refunded_usd=refunded)
        patch = TransactionPatch(
            transaction_id=tid, revoked=False, refunded_local=refunded, refunded_usd=refunded
        )
        return self.patched(at, patch, E.SUBSCRIPTION_REFUNDED)

    def reversal_by_id(self, tid: str, at: datetime) -> StoreEvent:
        self.transactions[tid] = replace(
            self.transactions[tid], revoked_at=None, revocation_reason=None
        )
        return self.patched(
            at, TransactionPatch(transaction_id=tid, revoked=False), E.REFUND_REVERSED
        )

    def extended_by_id(self, tid: str, at: datetime, new_end: datetime) -> StoreEvent:
        return self.patched(
            at, TransactionPatch(transaction_id=tid, expires_at=new_end), E.SUBSCRIPTION_DEFERRED
        )

    def deferred(self, tid: str, at: datetime, new_end: datetime) -> StoreEvent:
        tx = replace(self.transactions[tid], expires_at=new_end)
        self.transactions[tid] = tx
        return self.event(E.SUBSCRIPTION_DEFERRED, at, tx)


_PURCHASES = {
    E.SUBSCRIPTION_STARTED,
    E.SUBSCRIPTION_RENEWED,
    E.TRIAL_STARTED,
    E.TRIAL_CONVERTED,
    E.NON_SUBSCRIPTION_PURCHASE,
}
