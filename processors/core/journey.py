"""A chain's journey: the Adapty events its facts amount to (facts 1.6), derived, not stored.

Deriving the journey from merged facts makes it independent of arrival order: a late
notification slots into place instead of being appended after the fact. Each item has
a stable key, so the profile fold emits an item once, when it first appears.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from processors.core.cache import remembered, remembered_at
from processors.core.config import FoldConfig
from processors.core.reading import Period, periods, purchases
from schemas.enums import CancellationReason, EventType
from schemas.events import TransactionInfo
from schemas.state import ChainState, RenewalObs, RevocationObs, TransactionFact

E = EventType
R = CancellationReason


@dataclass(frozen=True, slots=True)
class Item:
    key: str
    event_type: EventType
    at: datetime
    tx: TransactionInfo | None = None
    proceeds_usd: Decimal | None = None
    rate_after_first_year: bool | None = None
    reason: CancellationReason | None = None
    expires_at: datetime | None = None


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


def journey(chain: ChainState, now: datetime, config: FoldConfig) -> tuple[Item, ...]:
    return remembered_at("journey", chain, config, now, lambda: _journey(chain, now, config))


def _journey(chain: ChainState, now: datetime, config: FoldConfig) -> tuple[Item, ...]:
    items = [*told(chain, config), *_end_items(chain, periods(chain, config), now)]
    items.sort(key=lambda i: (i.at, _RANK.get(i.event_type, 5), i.key))
    return tuple(items)


def told(chain: ChainState, config: FoldConfig) -> tuple[Item, ...]:
    """The items the facts state outright; only lapses depend on the instant."""
    return remembered("told", chain, config, lambda: _told(chain, config))


def _told(chain: ChainState, config: FoldConfig) -> tuple[Item, ...]:
    chain_periods = periods(chain, config)
    items = [
        *_purchase_items(chain_periods),
        *_renewal_items(chain, chain_periods),
        *_deferral_items(chain),
        *_refund_items(chain),
    ]
    for one in purchases(chain, config):
        items.append(
            Item(
                f"buy:{one.tx.transaction_id}",
                E.NON_SUBSCRIPTION_PURCHASE,
                one.tx.purchased_at,
                one.tx,
                one.proceeds_usd,
                False,
            )
        )
    return tuple(items)


def _purchase_items(chain_periods: tuple[Period, ...]) -> list[Item]:
    items: list[Item] = []
    prev: Period | None = None
    had_trial = had_paid = False
    for p in chain_periods:
        tx = p.tx
        if prev is None or tx.is_trial:
            kind = E.TRIAL_STARTED if tx.is_trial else E.SUBSCRIPTION_STARTED
        elif tx.product_id != prev.tx.product_id and p.start <= prev.end:
            # A product change inside the group: the old product ends as the new one starts.
            reason = (
                R.UPGRADED
                if prev.tx.is_upgraded or p.start < prev.end
                else (R.NEW_SUBSCRIPTION_REPLACE)
            )
            items.append(
                Item(
                    f"replaced:{prev.tx.transaction_id}",
                    E.SUBSCRIPTION_EXPIRED,
                    p.start,
                    prev.tx,
                    reason=reason,
                    expires_at=prev.end,
                )
            )
            kind = E.SUBSCRIPTION_STARTED
        elif had_trial and not had_paid:
            # The first paid period after a trial converts it, even after a lapse.
            kind = E.TRIAL_CONVERTED
        else:
            kind = E.SUBSCRIPTION_RENEWED
        items.append(
            Item(
                f"tx:{tx.transaction_id}",
                kind,
                p.start,
                tx,
                p.proceeds_usd,
                p.rate_after_first_year,
                expires_at=p.end,
            )
        )
        had_trial = had_trial or tx.is_trial
        had_paid = had_paid or not tx.is_trial
        prev = p
    return items


def _end_items(chain: ChainState, chain_periods: tuple[Period, ...], now: datetime) -> list[Item]:
    """Each lapse of access that has happened by `now`: expiry, billing failure, pause."""
    items: list[Item] = []
    spans = _spans(chain_periods)
    for index, (end, last) in enumerate(spans):
        next_start = spans[index + 1][1].start if index + 1 < len(spans) else None
        if end > now:
            continue
        known = _signed_before(chain, next_start, now)
        renewal = known[-1] if known else None
        retries = [o.info for o in known if o.info.in_billing_retry and o.signed_at >= last.start]
        tx = last.tx
        kind = E.TRIAL_EXPIRED if tx.is_trial else E.SUBSCRIPTION_EXPIRED
        at = end
        reason: CancellationReason | None
        if tx.revoked_at is not None and tx.revoked_at <= end:
            reason = tx.revocation_reason or R.REFUND
        elif retries:
            # A failed renewal: access lasts through the grace period the store granted,
            # whatever the store said after the retries ended.
            graces = [r.grace_period_expires_at for r in retries if r.grace_period_expires_at]
            at = max([end, *graces])
            if at > now or (next_start is not None and next_start <= at):
                continue  # still in grace, or recovered within it: no lapse
            reason = R.BILLING_ERROR
        elif renewal is not None and renewal.info.paused and renewal.signed_at >= last.start:
            kind, reason = E.SUBSCRIPTION_PAUSED, None
        elif renewal is not None and renewal.info.cancellation_reason is not None:
            reason = renewal.info.cancellation_reason
        elif (
            tx.ended_at is not None
            or (tx.expires_at is not None and end < tx.expires_at)
            or (renewal is not None and not renewal.info.auto_renew)
        ):
            reason = R.VOLUNTARILY_CANCELLED
        else:
            reason = R.UNKNOWN
        items.append(
            Item(
                f"end:{tx.transaction_id}:{at.isoformat()}",
                kind,
                at,
                tx,
                reason=reason,
                expires_at=end,
            )
        )
    return items


def _signed_before(
    chain: ChainState, next_start: datetime | None, now: datetime
) -> list[RenewalObs]:
    """Renewal states signed by `now` and before access resumed."""
    return [
        o
        for o in chain.renewals
        if o.signed_at <= now and (next_start is None or o.signed_at < next_start)
    ]


def _spans(chain_periods: tuple[Period, ...]) -> list[tuple[datetime, Period]]:
    """Runs of continuous access: (end, period that ends the run), in time order."""
    spans: list[tuple[datetime, Period]] = []
    for p in chain_periods:
        if spans and p.start <= spans[-1][0]:
            if p.end >= spans[-1][0]:
                spans[-1] = (p.end, p)
            continue
        spans.append((p.end, p))
    return spans


def _renewal_items(chain: ChainState, chain_periods: tuple[Period, ...]) -> list[Item]:
    items: list[Item] = []
    starts = [p.start for p in chain_periods]
    auto_renew = True
    off_in: Period | None = None
    retry_in: Period | None = None
    grace_until: datetime | None = None
    for obs in chain.renewals:
        info, at = obs.info, obs.signed_at
        index = bisect_right(starts, at)
        period = chain_periods[index - 1] if index else None
        if period is None:
            auto_renew = info.auto_renew
            continue
        # A user turns renewal off or on while the period or its grace runs; the store
        # turning it off when billing retries end is part of the lapse, not a cancellation.
        in_grace = retry_in is period and grace_until is not None and at < grace_until
        ongoing = (at <= period.end or in_grace) and (
            info.cancellation_reason is not R.BILLING_ERROR
        )
        if not info.auto_renew and auto_renew and ongoing:
            kind = (
                E.TRIAL_RENEWAL_CANCELLED
                if period.tx.is_trial
                else E.SUBSCRIPTION_RENEWAL_CANCELLED
            )
            items.append(
                Item(
                    f"renew:{obs.event_id}",
                    kind,
                    at,
                    period.tx,
                    reason=info.cancellation_reason,
                    expires_at=period.end,
                )
            )
            off_in = period
        elif info.auto_renew and not auto_renew and off_in is period and ongoing:
            # Turned back on in the period it was turned off in; a re-purchase after the
            # period ended turns it on too, but that is a renewal, not a reactivation.
            kind = (
                E.TRIAL_RENEWAL_REACTIVATED
                if period.tx.is_trial
                else (E.SUBSCRIPTION_RENEWAL_REACTIVATED)
            )
            items.append(Item(f"renew:{obs.event_id}", kind, at, period.tx, expires_at=period.end))
        auto_renew = info.auto_renew
        if info.in_billing_retry and retry_in is not period:
            # A renewal of this period failed: one billing issue per failed period.
            detected = info.billing_issue_detected_at or at
            items.append(
                Item(
                    f"billing:{period.tx.transaction_id}",
                    E.BILLING_ISSUE_DETECTED,
                    detected,
                    period.tx,
                    expires_at=period.end,
                )
            )
            if info.grace_period_expires_at is not None:
                items.append(
                    Item(
                        f"grace:{period.tx.transaction_id}",
                        E.ENTERED_GRACE_PERIOD,
                        detected,
                        period.tx,
                        expires_at=info.grace_period_expires_at,
                    )
                )
        retry_in = period if info.in_billing_retry else None
        grace_until = info.grace_period_expires_at if info.in_billing_retry else None
    return items


def _deferral_items(chain: ChainState) -> list[Item]:
    items: list[Item] = []
    for d in chain.deferrals:
        fact = chain.transactions.get(d.transaction_id)
        items.append(
            Item(
                f"defer:{d.event_id}",
                E.SUBSCRIPTION_DEFERRED,
                d.signed_at,
                fact.info if fact else None,
                expires_at=d.expires_at,
            )
        )
    return items


def _refund_items(chain: ChainState) -> list[Item]:
    patched = {p.transaction_id for p in chain.revocation_patches}
    items: list[Item] = []
    for fact in chain.transactions.values():
        # Most transactions were never refunded: nothing to tell.
        if fact.revocations or fact.info.transaction_id in patched:
            items.extend(_refunds_of(fact, chain))
    return items


def _refunds_of(fact: TransactionFact, chain: ChainState) -> list[Item]:
    tx = fact.info
    statements = [
        *fact.revocations,
        *(
            RevocationObs(
                signed_at=p.signed_at, event_id=p.event_id, revoked_at=p.revoked_at, reason=p.reason
            )
            for p in chain.revocation_patches
            if p.transaction_id == tx.transaction_id
        ),
    ]
    refunded_kind = (
        E.SUBSCRIPTION_REFUNDED if tx.is_subscription else (E.NON_SUBSCRIPTION_PURCHASE_REFUNDED)
    )
    items: list[Item] = []
    refunded = False
    for obs in sorted(statements, key=lambda o: (o.signed_at, o.event_id)):
        if obs.revoked_at is not None and not refunded:
            reason = obs.reason or (R.UPGRADED if tx.is_upgraded else R.REFUND)
            items.append(
                Item(f"refund:{obs.event_id}", refunded_kind, obs.revoked_at, tx, reason=reason)
            )
        elif obs.revoked_at is None and refunded:
            items.append(Item(f"reversal:{obs.event_id}", E.REFUND_REVERSED, obs.signed_at, tx))
        refunded = obs.revoked_at is not None
    return items
