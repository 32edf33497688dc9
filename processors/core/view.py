"""The profile as shown at an instant: labels, access, subscriptions, money, engagement."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from processors.core.access import access_levels, cancellation_reason
from processors.core.config import FoldConfig
from processors.core.reading import Phase, Reading, in_retry, read
from processors.core.recall import recalled
from processors.core.status import ChainStanding, purchase_status, subscription_state
from schemas.base import replace
from schemas.enums import Environment
from schemas.events import TransactionInfo
from schemas.money import ZERO, shown_price, shown_proceeds
from schemas.profile import ProfileFields
from schemas.state import ChainDigest, ProfileState
from schemas.views import (
    AccessLevelView,
    EmailMetrics,
    NonSubscriptionView,
    ProfileLink,
    ProfileView,
    Revenue,
    SubscriptionView,
    rate,
    store_fields,
)


@dataclass(frozen=True, slots=True)
class Related:
    chain: ChainDigest
    is_parent: bool
    holds: bool


@recalled(8)
def related_chains(state: ProfileState) -> tuple[Related, ...]:
    """The chains this profile is the parent of or a claimant of, in chain key order."""
    me = state.profile_id
    return tuple(
        Related(chain, chain.parent == me, me in chain.holders)
        for key in sorted(state.chains)
        if (chain := state.chains[key]).parent == me or me in chain.claimants
    )


def due(chain: ChainDigest, now: datetime) -> Iterator[tuple[TransactionInfo, Decimal]]:
    """The chain's transactions since its checkpoint that are due by `now`, with the
    proceeds they keep (refunds taken off)."""
    for p in chain.periods:
        if p.start <= now:
            yield p.tx, p.kept_proceeds_usd
    for one in chain.purchases:
        if one.tx.purchased_at <= now:
            yield one.tx, one.kept_proceeds_usd


@recalled(8)
def revenue(state: ProfileState, now: datetime) -> Revenue:
    """Exact totals of the parent chains' due transactions, less what was refunded."""
    totals = {Environment.PRODUCTION: [ZERO, ZERO], Environment.SANDBOX: [ZERO, ZERO]}
    for r in related_chains(state):
        if not r.is_parent:
            continue
        total = totals[r.chain.environment]
        before = r.chain.before
        if before is not None:
            total[0] += before.revenue_usd
            total[1] += before.proceeds_usd
        for tx, proceeds in due(r.chain, now):
            total[0] += tx.revenue_usd
            total[1] += proceeds
    prod, sandbox = totals[Environment.PRODUCTION], totals[Environment.SANDBOX]
    return Revenue(
        total_revenue_usd=shown_price(prod[0]),
        total_proceeds_usd=shown_proceeds(prod[1]),
        sandbox_total_revenue_usd=shown_price(sandbox[0]),
        sandbox_total_proceeds_usd=shown_proceeds(sandbox[1]),
    )


def _with_store_country(fields: ProfileFields, latest: TransactionInfo | None) -> ProfileFields:
    """The profile's fields with the country its store billed it in (DOMAIN.md 7), when the
    store says so as an ISO 3166 alpha-2 code; else what the app said."""
    country = latest.store_country if latest is not None else None
    if country is None or len(country) != 2 or country == fields.store_country:
        return fields
    return replace(fields, store_country=country)


def _customer_since(state: ProfileState, related: list[Related]) -> datetime | None:
    """The earliest of the profile's creation and the original purchase of each chain it is
    the parent of (a minimum: arrival order cannot move it)."""
    found = [r.chain.first_purchased_at for r in related if r.is_parent]
    return min([t for t in (state.created_at, *found) if t is not None], default=None)


def latest_purchase(state: ProfileState, now: datetime) -> TransactionInfo | None:
    """The parent chains' latest due transaction (a chain's latest is after its checkpoint)."""
    latest: TransactionInfo | None = None
    for r in related_chains(state):
        if r.is_parent:
            for tx, _ in due(r.chain, now):
                if latest is None or (tx.purchased_at, tx.transaction_id) > (
                    latest.purchased_at,
                    latest.transaction_id,
                ):
                    latest = tx
    return latest


def email_metrics(state: ProfileState, now: datetime, config: FoldConfig) -> EmailMetrics:
    records = state.emails.values()
    sent = sum(1 for r in records if r.sent_at is not None)
    opened = sum(1 for r in records if r.opened_at is not None)
    engaged = sorted(
        t for r in records if r.campaign_id is not None for t in (r.opened_at, r.clicked_at) if t
    )
    attributed = ZERO
    if engaged:
        window = config.email_attribution_window
        me = state.profile_id
        for payment in state.payments.values():
            chain = state.chains.get(payment.chain_key)
            if (
                chain is not None
                and chain.parent == me
                and chain.environment is Environment.PRODUCTION
                and not payment.refunded
                and payment.purchased_at <= now
                and any(t <= payment.purchased_at <= t + window for t in engaged)
            ):
                attributed += payment.price_usd
    return EmailMetrics(
        sent=sent,
        delivered=sum(1 for r in records if r.delivered_at is not None),
        opened=opened,
        clicked=sum(1 for r in records if r.clicked_at is not None),
        open_rate=rate(opened, sent),
        attributed_revenue_usd=attributed,
    )


def _subscription(r: Related, reading: Reading) -> SubscriptionView:
    assert reading.period is not None
    period, tx = reading.period, reading.period.tx
    retry = in_retry(reading.renewal, period)
    return SubscriptionView(
        chain_key=r.chain.chain_key,
        store=r.chain.store,
        environment=r.chain.environment,
        **store_fields(tx),
        offer=tx.offer,
        purchased_at=tx.purchased_at,
        originally_purchased_at=tx.originally_purchased_at or period.start,
        expires_at=period.end,
        is_active=reading.has_access,
        is_trial=tx.is_trial,
        will_renew=reading.has_access and reading.auto_renew and not period.refunded,
        renewal_cancelled_at=reading.renewal_cancelled_at,
        billing_issue_detected_at=(retry.billing_issue_detected_at if retry else None),
        is_in_grace_period=reading.phase is Phase.GRACE,
        grace_period_expires_at=retry.grace_period_expires_at if retry else None,
        is_in_billing_retry=retry is not None,
        is_paused=reading.phase is Phase.PAUSED,
        is_refund=period.refunded,
        cancellation_reason=cancellation_reason(reading),
        price_local=tx.price_local,
        currency=tx.currency,
        price_usd=shown_price(tx.price_usd),
        is_parent=r.is_parent,
    )


def profile_view(state: ProfileState, now: datetime, config: FoldConfig) -> ProfileView:
    related = list(related_chains(state))
    readings = [(r, read(r.chain, now)) for r in related]
    standings = [ChainStanding(reading, r.holds) for r, reading in readings]
    latest = latest_purchase(state, now)
    one_time = [
        (r.chain, one.tx)
        for r in related
        if r.is_parent
        for one in r.chain.purchases
        if one.tx.purchased_at <= now
    ]
    inheritors, parents = [], []
    for r in related:
        if r.is_parent:
            inheritors += [
                ProfileLink(profile_id=p, chain_key=r.chain.chain_key)
                for p in r.chain.holders
                if p != state.profile_id
            ]
        elif r.chain.parent is not None:
            parents.append(ProfileLink(profile_id=r.chain.parent, chain_key=r.chain.chain_key))
    return ProfileView(
        profile_id=state.profile_id,
        customer_user_id=state.customer_user_id,
        deleted=state.deleted,
        created_at=_customer_since(state, related),
        last_seen_at=state.last_seen_at,
        fields=_with_store_country(state.fields, latest),
        custom_attributes=state.custom_attributes,
        notes=state.notes,
        subscription_state=subscription_state(standings),
        purchase_status=purchase_status(
            standings, None if latest is None else latest.revoked_at is not None, bool(one_time)
        ),
        access_levels=tuple(_levels_at(state, now, config).values()),
        subscriptions=tuple(
            _subscription(r, reading) for r, reading in readings if reading.period is not None
        ),
        non_subscriptions=tuple(
            NonSubscriptionView(
                purchase_id=tx.transaction_id,
                store=chain.store,
                environment=chain.environment,
                store_product_id=tx.product_id,
                store_base_plan_id=tx.base_plan_id,
                store_transaction_id=tx.transaction_id,
                store_original_transaction_id=tx.original_transaction_id,
                purchased_at=tx.purchased_at,
                is_refund=tx.revoked_at is not None,
                is_consumable=tx.is_consumable,
                price_local=tx.price_local,
                currency=tx.currency,
                price_usd=shown_price(tx.price_usd),
            )
            for chain, tx in one_time
        ),
        revenue=revenue(state, now),
        email=email_metrics(state, now, config),
        email_subscribed=state.email_unsubscribed_at is None,
        inheritors=tuple(inheritors),
        parents=tuple(parents),
        next_wakeup_at=state.next_wakeup_at
        if now == state.as_of
        else next_wakeup(state, now, config),
        as_of=now,
        version=state.version,
    )


def _levels_at(
    state: ProfileState, now: datetime, config: FoldConfig
) -> dict[str, AccessLevelView]:
    """The access levels at `now`: those the fold recorded, when it evaluated them then."""
    if now == state.as_of and state.exists and not state.deleted:
        return state.levels
    return access_levels(state, now, config)


def next_wakeup(state: ProfileState, after: datetime, config: FoldConfig) -> datetime | None:
    """The next instant at which this profile would change without new input."""
    candidates = [grant.starts_at for grant in state.grants.values()]
    candidates += (g.expires_at for g in state.grants.values() if g.expires_at is not None)
    candidates += state.level_cutoffs.values()
    for r in related_chains(state):
        instants = r.chain.instants
        index = bisect_right(instants, after)
        if index < len(instants):
            candidates.append(instants[index])
    return min((t for t in candidates if t > after), default=None)
