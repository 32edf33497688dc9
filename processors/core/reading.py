"""What a chain means at an instant: its phase, period and renewal state, from its digest."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from processors.core.recall import recalled
from schemas.events import RenewalInfo
from schemas.state import ChainDigest, Observation, Period


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
    renewal: Observation | None
    # The expiry access shows: the covering periods' end or the grace period's, and while
    # awaiting a renewal (the renewal leeway) the period's own; None without access now.
    access_until: datetime | None
    renewal_cancelled_at: datetime | None
    ever_paid: bool

    @property
    def has_access(self) -> bool:
        return self.phase in (Phase.ACTIVE, Phase.GRACE)

    @property
    def auto_renew(self) -> bool:
        return self.renewal.renewal.auto_renew if self.renewal and self.renewal.renewal else True

    @property
    def is_trial(self) -> bool:
        return self.period is not None and self.period.tx.is_trial

    @property
    def info(self) -> RenewalInfo | None:
        return self.renewal.renewal if self.renewal is not None else None


def renewal_at(digest: ChainDigest, at: datetime) -> Observation | None:
    """The renewal state the store had signed by `at`."""
    renewals = digest.renewals
    index = bisect_right(renewals, at, key=lambda o: o.signed_at)
    if index:
        return renewals[index - 1]
    return digest.before.last_renewal if digest.before is not None else None


def renewal_cancelled_at(digest: ChainDigest, at: datetime) -> datetime | None:
    """When auto-renew was last turned off, if it is off at `at`."""
    cancelled = digest.before.cancelled_at if digest.before is not None else None
    for obs in digest.renewals:
        if obs.signed_at > at:
            break
        assert obs.renewal is not None
        if not obs.renewal.auto_renew and cancelled is None:
            cancelled = obs.signed_at
        elif obs.renewal.auto_renew:
            cancelled = None
    return cancelled


def in_retry(renewal: Observation | None, period: Period) -> RenewalInfo | None:
    """The renewal state if it reports a failed renewal of this period."""
    if renewal is None or renewal.signed_at < period.start:
        return None
    info = renewal.renewal
    return info if info is not None and info.in_billing_retry else None


def _renews(info: RenewalInfo) -> bool:
    return info.auto_renew and info.cancellation_reason is None and not info.in_billing_retry


@recalled(64)
def read(digest: ChainDigest, now: datetime) -> Reading:
    due = [p for p in digest.periods if p.start <= now]
    renewal = renewal_at(digest, now)
    if not due:
        return Reading(Phase.NOT_STARTED, None, renewal, None, None, False)
    before = digest.before
    ever_paid = (before is not None and before.ever_paid) or any(not p.tx.is_trial for p in due)
    cancelled_at = renewal_cancelled_at(digest, now)
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
    info = renewal.renewal if renewal is not None else None
    if info is not None and info.paused and renewal is not None and renewal.signed_at >= last.start:
        return Reading(Phase.PAUSED, last, renewal, None, cancelled_at, ever_paid)
    held = last.held_until
    if held is not None and now < held and (info is None or _renews(info)):
        # Awaiting the renewal the store said would come (the renewal leeway).
        return Reading(Phase.ACTIVE, last, renewal, last.end, cancelled_at, ever_paid)
    return Reading(Phase.ENDED, last, renewal, None, cancelled_at, ever_paid)
