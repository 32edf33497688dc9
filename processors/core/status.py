"""The two status labels of a profile (DOMAIN.md section 4). The one home of status rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from processors.core.reading import Phase, Reading
from schemas.enums import PurchaseStatus, SubscriptionState

S = SubscriptionState
P = PurchaseStatus


@dataclass(frozen=True, slots=True)
class ChainStanding:
    """A chain as it bears on one profile's labels."""

    reading: Reading
    # The profile has the chain's access (parent or sharing inheritor).
    held: bool


def _active_state(reading: Reading) -> SubscriptionState:
    if reading.is_trial:
        return S.ACTIVE_TRIAL
    return S.SUBSCRIBED if reading.auto_renew else S.AUTO_RENEW_OFF


def subscription_state(chains: Iterable[ChainStanding]) -> SubscriptionState:
    found: set[SubscriptionState] = set()
    latest_end: tuple[datetime, bool] | None = None
    for standing in chains:
        reading = standing.reading
        if reading.phase is Phase.NOT_STARTED or reading.period is None:
            continue
        if standing.held and reading.phase is Phase.ACTIVE:
            found.add(_active_state(reading))
        elif standing.held and reading.phase is Phase.GRACE:
            found.add(S.GRACE_PERIOD)
        elif standing.held and reading.phase is Phase.BILLING_RETRY:
            found.add(S.BILLING_ISSUE)
        else:
            # Ended (expired, refunded, paused, or its access went to another profile).
            ended = (reading.period.end, reading.ever_paid)
            latest_end = ended if latest_end is None or ended > latest_end else latest_end
    for state in (S.SUBSCRIBED, S.ACTIVE_TRIAL, S.AUTO_RENEW_OFF, S.GRACE_PERIOD, S.BILLING_ISSUE):
        if state in found:
            return state
    if latest_end is None:
        return S.NEVER_SUBSCRIBED
    # The chain that ended last tells whether the story ended on a trial or a paid period.
    return S.SUBSCRIPTION_CANCELLED if latest_end[1] else S.TRIAL_CANCELLED


def purchase_status(
    chains: Iterable[ChainStanding], latest_purchase_refunded: bool | None, has_one_time: bool
) -> PurchaseStatus:
    """`latest_purchase_refunded` is None when nothing was ever bought."""
    found: set[PurchaseStatus] = set()
    for standing in chains:
        reading = standing.reading
        if reading.phase is Phase.NOT_STARTED:
            continue
        if standing.held and reading.phase is Phase.ACTIVE:
            found.add(P.ACTIVE_SUBSCRIBER if reading.auto_renew else P.CANCELLING)
        elif standing.held and reading.phase is Phase.GRACE:
            found.add(P.GRACE_PERIOD)
        elif standing.held and reading.phase is Phase.BILLING_RETRY:
            found.add(P.BILLING_ISSUE)
        else:
            found.add(P.CHURNED)
    for status in (P.ACTIVE_SUBSCRIBER, P.CANCELLING, P.GRACE_PERIOD, P.BILLING_ISSUE):
        if status in found:
            return status
    if latest_purchase_refunded:
        return P.REFUNDED
    if P.CHURNED in found:
        return P.CHURNED
    return P.PURCHASED if has_one_time else P.NEVER_PURCHASED
