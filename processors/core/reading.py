"""What a chain's facts mean at an instant: its periods, money and phase."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum

from processors.core.cache import remembered, remembered_at
from processors.core.config import FoldConfig
from schemas.events import RenewalInfo, TransactionInfo
from schemas.state import ChainState, RenewalObs, TransactionFact


@dataclass(frozen=True, slots=True)
class Period:
    """One subscription transaction as it bears on access and money."""

    fact: TransactionFact
    # The transaction as the newest store statements make it (patches applied).
    tx: TransactionInfo
    start: datetime
    # When its access ends: expiry (deferrals included), refund or early end, whichever first.
    end: datetime
    proceeds_usd: Decimal
    rate_after_first_year: bool

    @property
    def refunded(self) -> bool:
        return self.tx.revoked_at is not None


@dataclass(frozen=True, slots=True)
class Purchase:
    """A one-time purchase."""

    fact: TransactionFact
    tx: TransactionInfo
    proceeds_usd: Decimal


class Phase(Enum):
    NOT_STARTED = "not_started"
    ACTIVE = "active"
    GRACE = "grace"
    BILLING_RETRY = "billing_retry"
    PAUSED = "paused"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Reading:
    phase: Phase
    # The period covering `now`, else the one that ended last.
    period: Period | None
    renewal: RenewalObs | None
    # Access lasts until this instant (grace included); None when there is none now.
    access_until: datetime | None
    renewal_cancelled_at: datetime | None
    ever_paid: bool

    @property
    def has_access(self) -> bool:
        return self.phase in (Phase.ACTIVE, Phase.GRACE)

    @property
    def auto_renew(self) -> bool:
        return self.renewal.info.auto_renew if self.renewal else True

    @property
    def is_trial(self) -> bool:
        return self.period is not None and self.period.tx.is_trial


def _rate(config: FoldConfig, reduced: bool) -> Decimal:
    return config.reduced_commission_rate if reduced else config.commission_rate


def periods(chain: ChainState, config: FoldConfig) -> tuple[Period, ...]:
    return remembered("periods", chain, config, lambda: _periods(chain, config))


def _periods(chain: ChainState, config: FoldConfig) -> tuple[Period, ...]:
    deferred: dict[str, datetime] = {}
    for d in chain.deferrals:
        deferred[d.transaction_id] = max(d.expires_at, deferred.get(d.transaction_id, d.expires_at))
    subscriptions = sorted(
        (f for f in chain.transactions.values() if f.info.is_subscription),
        key=lambda f: (f.info.purchased_at, f.info.transaction_id),
    )
    paid_service = timedelta(0)
    out: list[Period] = []
    for fact in subscriptions:
        tx = effective(fact, chain)
        assert tx.expires_at is not None  # guaranteed by TransactionInfo for subscriptions
        end = max(tx.expires_at, deferred.get(tx.transaction_id, tx.expires_at))
        # A termination cuts the period it falls in; a later period starts afresh.
        for termination in chain.terminations:
            if tx.purchased_at <= termination.ended_at < end:
                end = termination.ended_at
        for early in (tx.revoked_at, tx.ended_at):
            if early is not None and early < end:
                end = early
        end = max(end, tx.purchased_at)
        after_first_year = paid_service >= config.reduced_rate_after
        rate = _rate(config, config.small_business or after_first_year)
        out.append(
            Period(fact, tx, tx.purchased_at, end, tx.price_usd * (1 - rate), after_first_year)
        )
        if not tx.is_trial and tx.revoked_at is None:
            paid_service += end - tx.purchased_at
    return tuple(out)


def purchases(chain: ChainState, config: FoldConfig) -> tuple[Purchase, ...]:
    return remembered("purchases", chain, config, lambda: _purchases(chain, config))


def _purchases(chain: ChainState, config: FoldConfig) -> tuple[Purchase, ...]:
    rate = _rate(config, config.small_business)
    ones = sorted(
        (f for f in chain.transactions.values() if not f.info.is_subscription),
        key=lambda f: (f.info.purchased_at, f.info.transaction_id),
    )
    return tuple(
        Purchase(f, tx, tx.price_usd * (1 - rate)) for f in ones for tx in (effective(f, chain),)
    )


def effective(fact: TransactionFact, chain: ChainState) -> TransactionInfo:
    """The transaction with newer refund statements made by id alone applied to it."""
    if not chain.revocation_patches:
        return fact.info
    patches = [
        p
        for p in chain.revocation_patches
        if p.transaction_id == fact.info.transaction_id
        and (p.signed_at, p.event_id) > (fact.signed_at, fact.event_id)
    ]
    if not patches:
        return fact.info
    newest = max(patches, key=lambda p: (p.signed_at, p.event_id))
    return fact.info.model_copy(
        update={"revoked_at": newest.revoked_at, "revocation_reason": newest.reason}
    )


def renewal_at(chain: ChainState, at: datetime) -> RenewalObs | None:
    """The renewal state the store had signed by `at`."""
    index = bisect_right([o.signed_at for o in chain.renewals], at)
    return chain.renewals[index - 1] if index else None


def renewal_cancelled_at(chain: ChainState, at: datetime) -> datetime | None:
    """When auto-renew was last turned off, if it is off at `at`."""
    cancelled: datetime | None = None
    for obs in chain.renewals:
        if obs.signed_at > at:
            break
        if not obs.info.auto_renew and cancelled is None:
            cancelled = obs.signed_at
        elif obs.info.auto_renew:
            cancelled = None
    return cancelled


def in_retry(renewal: RenewalObs | None, period: Period) -> RenewalInfo | None:
    """The renewal state if it reports a failed renewal of this period."""
    if renewal is None or not renewal.info.in_billing_retry or renewal.signed_at < period.start:
        return None
    return renewal.info


def read(chain: ChainState, now: datetime, config: FoldConfig) -> Reading:
    return remembered_at("read", chain, config, now, lambda: _read(chain, now, config))


def _read(chain: ChainState, now: datetime, config: FoldConfig) -> Reading:
    due = [p for p in periods(chain, config) if p.start <= now]
    renewal = renewal_at(chain, now)
    if not due:
        return Reading(Phase.NOT_STARTED, None, renewal, None, None, False)
    ever_paid = any(not p.tx.is_trial for p in due)
    cancelled_at = renewal_cancelled_at(chain, now)
    covering = [p for p in due if now < p.end]
    if covering:
        period = max(covering, key=lambda p: (p.start, p.tx.transaction_id))
        until = max(p.end for p in covering)
        return Reading(Phase.ACTIVE, period, renewal, until, cancelled_at, ever_paid)
    last = max(due, key=lambda p: (p.end, p.start, p.tx.transaction_id))
    retry = in_retry(renewal, last)
    if retry is not None:
        grace_end = retry.grace_period_expires_at
        if grace_end is not None and now < grace_end:
            return Reading(Phase.GRACE, last, renewal, grace_end, cancelled_at, ever_paid)
        return Reading(Phase.BILLING_RETRY, last, renewal, None, cancelled_at, ever_paid)
    if renewal is not None and renewal.info.paused and renewal.signed_at >= last.start:
        return Reading(Phase.PAUSED, last, renewal, None, cancelled_at, ever_paid)
    return Reading(Phase.ENDED, last, renewal, None, cancelled_at, ever_paid)
