"""Access levels: from the chains a profile holds and from grants (DOMAIN.md section 5)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from processors.core.config import FoldConfig
from processors.core.reading import Phase, Reading, in_retry, read
from schemas.base import replace
from schemas.enums import CancellationReason, Store
from schemas.events import TransactionInfo
from schemas.state import ChainDigest, Grant, ProfileState
from schemas.views import AccessLevelView, store_fields

R = CancellationReason


def access_levels(
    state: ProfileState, now: datetime, config: FoldConfig
) -> dict[str, AccessLevelView]:
    candidates: dict[str, list[tuple[datetime, AccessLevelView]]] = {}

    def offer(level: str, started: datetime, view: AccessLevelView) -> None:
        candidates.setdefault(level, []).append((started, view))

    for chain in state.chains.values():
        if state.profile_id not in chain.holders:
            continue
        shared_from = chain.parent if chain.parent != state.profile_id else None
        reading = read(chain, now)
        if reading.period is not None:
            for level in config.levels_of(reading.period.tx.product_id):
                view = _subscription_view(level, chain, reading, shared_from)
                offer(level, reading.period.start, view)
        for one in chain.purchases:
            tx = one.tx
            if tx.is_consumable or tx.purchased_at > now:
                continue
            for level in config.levels_of(tx.product_id):
                offer(level, tx.purchased_at, _purchase_view(level, chain, tx, shared_from))
    for grant in state.grants.values():
        offer(grant.access_level_id, grant.granted_at, _grant_view(grant, now))

    levels: dict[str, AccessLevelView] = {}
    for level, found in sorted(candidates.items()):
        cutoff = state.level_cutoffs.get(level)
        views = [_cut(view, started, cutoff, now) for started, view in found]
        levels[level] = max(views, key=_preference)
    return levels


def is_active_at(view: AccessLevelView, now: datetime) -> bool:
    """The rule every access level obeys: started, and lifetime or not yet expired; the
    one exception is a period awaiting its renewal (the renewal leeway, DOMAIN.md 3), active
    and renewing for up to the leeway past its expiry."""
    started = view.starts_at is None or view.starts_at <= now
    return started and (view.is_lifetime or (view.expires_at is not None and now < view.expires_at))


def _preference(view: AccessLevelView) -> tuple[bool, bool, float, str]:
    """Active first, then lifetime, then the latest expiry; the transaction id breaks ties."""
    expiry = view.expires_at.timestamp() if view.expires_at else float("-inf")
    return (view.is_active, view.is_lifetime, expiry, view.store_transaction_id or "")


def _cut(
    view: AccessLevelView, started: datetime, cutoff: datetime | None, now: datetime
) -> AccessLevelView:
    """A revoke ends every source of the level that began before it."""
    if cutoff is None or started >= cutoff:
        return view
    if not view.is_lifetime and view.expires_at is not None and view.expires_at <= cutoff:
        return view
    active = view.is_active and now < cutoff
    return replace(
        view,
        is_active=active,
        is_lifetime=False,
        expires_at=cutoff,
        will_renew=False,
        cancellation_reason=view.cancellation_reason if active else R.ADAPTY_REVOKED,
    )


def _subscription_view(
    level: str, chain: ChainDigest, reading: Reading, shared_from: UUID | None
) -> AccessLevelView:
    assert reading.period is not None
    period = reading.period
    tx = period.tx
    retry = in_retry(reading.renewal, period)
    active = reading.has_access
    return AccessLevelView(
        access_level_id=level,
        is_active=active,
        is_lifetime=False,
        expires_at=reading.access_until if active else period.end,
        starts_at=tx.originally_purchased_at or period.start,
        store=chain.store,
        **store_fields(tx),
        offer=tx.offer,
        purchased_at=tx.purchased_at,
        originally_purchased_at=tx.originally_purchased_at or period.start,
        renewal_cancelled_at=reading.renewal_cancelled_at,
        billing_issue_detected_at=(retry.billing_issue_detected_at or reading.renewal.signed_at)
        if retry is not None and reading.renewal is not None
        else None,
        is_in_grace_period=reading.phase is Phase.GRACE,
        cancellation_reason=cancellation_reason(reading),
        will_renew=active and reading.auto_renew and not period.refunded,
        is_refund=period.refunded,
        environment=chain.environment,
        shared_from_profile_id=shared_from,
    )


def cancellation_reason(reading: Reading) -> CancellationReason | None:
    """Why the reading's period stops renewing or ended: one answer for its subscription
    and its access level (DOMAIN.md 7)."""
    assert reading.period is not None
    if reading.period.refunded:
        return reading.period.tx.revocation_reason or R.REFUND
    if reading.phase in (Phase.GRACE, Phase.BILLING_RETRY):
        return R.BILLING_ERROR
    info = reading.info
    if info is not None and info.cancellation_reason is not None:
        return info.cancellation_reason
    if (info is not None and not info.auto_renew) or reading.period.tx.ended_at is not None:
        return R.VOLUNTARILY_CANCELLED
    return None


def _purchase_view(
    level: str, chain: ChainDigest, tx: TransactionInfo, shared_from: UUID | None
) -> AccessLevelView:
    refunded = tx.revoked_at is not None
    return AccessLevelView(
        access_level_id=level,
        is_active=not refunded,
        is_lifetime=not refunded,
        expires_at=tx.revoked_at,
        starts_at=tx.purchased_at,
        store=chain.store,
        **store_fields(tx),
        purchased_at=tx.purchased_at,
        originally_purchased_at=tx.originally_purchased_at or tx.purchased_at,
        cancellation_reason=(tx.revocation_reason or R.REFUND) if refunded else None,
        is_refund=refunded,
        environment=chain.environment,
        shared_from_profile_id=shared_from,
    )


def _grant_view(grant: Grant, now: datetime) -> AccessLevelView:
    lifetime = grant.expires_at is None
    started = grant.starts_at <= now
    return AccessLevelView(
        access_level_id=grant.access_level_id,
        is_active=started
        and (lifetime or (grant.expires_at is not None and now < grant.expires_at)),
        is_lifetime=lifetime,
        expires_at=grant.expires_at,
        starts_at=grant.starts_at,
        store=Store.ADAPTY,
        purchased_at=grant.granted_at,
        originally_purchased_at=grant.granted_at,
    )
