"""A chain's journey: the Adapty events its facts amount to (facts 1.6), derived, not stored.

Deriving the journey from merged facts makes it independent of arrival order: a late
notification slots into place instead of being appended after the fact. Each item has
a stable key, so a profile tells an item once, when it first appears. The items the facts
state outright are derived with the chain (`scan.py`); a lapse of access is read here, at
the instant it is asked about, since what the store said by then decides its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from schemas.enums import CancellationReason, EventType
from schemas.state import Item, Observation, Period, Span

E = EventType
R = CancellationReason

# Within one instant, the order in which a person would tell the story.
_RANK = {
    E.SUBSCRIPTION_RENEWAL_CANCELLED: 0,
    E.TRIAL_RENEWAL_CANCELLED: 0,
    E.BILLING_ISSUE_DETECTED: 1,
    E.ENTERED_GRACE_PERIOD: 2,
    E.SUBSCRIPTION_REFUNDED: 3,
    E.NON_SUBSCRIPTION_PURCHASE_REFUNDED: 3,
    E.SUBSCRIPTION_EXPIRED: 4,
    E.TRIAL_EXPIRED: 4,
    E.SUBSCRIPTION_PAUSED: 4,
}


def story_order(item: Item) -> tuple[datetime, int, str]:
    return (item.at, _RANK.get(item.event_type, 5), item.key)


def is_lapse(item: Item) -> bool:
    return item.key.startswith("end:")


def lapse(
    span: Span,
    last: Period,
    renewals: Sequence[Observation],
    prior: Observation | None,
    now: datetime | None,
) -> Item | None:
    """The lapse of access that ends `span` (its last period `last`), if it has happened
    by `now` (None: ever). `renewals` are the chain's renewal statements in signed order
    from some instant on, `prior` the last one before them."""
    end, next_start = span.end, span.next_start
    if now is not None and end > now:
        return None
    # Renewal states signed by `now` and before access resumed.
    known = [
        o
        for o in renewals
        if (now is None or o.signed_at <= now) and (next_start is None or o.signed_at < next_start)
    ]
    renewal = known[-1] if known else prior
    if renewal is not None and now is not None and renewal.signed_at > now:
        renewal = None
    retries = [
        o.renewal
        for o in known
        if o.renewal is not None and o.renewal.in_billing_retry and o.signed_at >= last.start
    ]
    tx = last.tx
    kind = E.TRIAL_EXPIRED if tx.is_trial else E.SUBSCRIPTION_EXPIRED
    at = end
    info = renewal.renewal if renewal is not None else None
    reason: CancellationReason | None
    if tx.revoked_at is not None and tx.revoked_at <= end:
        reason = tx.revocation_reason or R.REFUND
    elif retries:
        # A failed renewal: access lasts through the grace period the store granted,
        # whatever the store said after the retries ended.
        graces = [r.grace_period_expires_at for r in retries if r.grace_period_expires_at]
        at = max([end, *graces])
        if (now is not None and at > now) or (next_start is not None and next_start <= at):
            return None  # still in grace, or recovered within it: no lapse
        reason = R.BILLING_ERROR
    elif (
        info is not None and info.paused and renewal is not None and renewal.signed_at >= last.start
    ):
        kind, reason = E.SUBSCRIPTION_PAUSED, None
    elif info is not None and info.cancellation_reason is not None:
        reason = info.cancellation_reason
    elif (
        tx.ended_at is not None
        or (tx.expires_at is not None and end < tx.expires_at)
        or (info is not None and not info.auto_renew)
    ):
        reason = R.VOLUNTARILY_CANCELLED
    else:
        reason = R.UNKNOWN
        if span.held_until is not None:
            # The store said it renews: access lasts through the leeway awaiting it.
            at = span.held_until
            if now is not None and at > now:
                return None
    return Item(
        key=f"end:{tx.transaction_id}:{at.isoformat()}",
        event_type=kind,
        at=at,
        tx=tx,
        reason=reason,
        expires_at=end,
    )
