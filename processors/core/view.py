"""The profile as shown at an instant: labels, access, subscriptions, money, engagement."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from processors.core.access import access_levels
from processors.core.cache import remembered
from processors.core.claims import Relations, relations
from processors.core.config import FoldConfig
from processors.core.reading import Phase, Reading, in_retry, periods, purchases, read
from processors.core.status import ChainStanding, purchase_status, subscription_state
from schemas.enums import Environment, Store
from schemas.events import TransactionInfo
from schemas.money import ZERO
from schemas.state import ChainState, ProfileState
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
    chain: ChainState
    relations: Relations
    is_parent: bool
    holds: bool


def related_chains(state: ProfileState, config: FoldConfig) -> tuple[Related, ...]:
    me = state.profile_id
    related = []
    for key in sorted(state.chains):
        chain = state.chains[key]
        rel = relations(chain, config.sharing_policy)
        if rel.parent == me or me in rel.claimants:
            related.append(Related(chain, rel, rel.parent == me, me in rel.holders))
    return tuple(related)


@dataclass(frozen=True, slots=True)
class Money:
    """One production or sandbox amount the profile paid, after refunds."""

    tx: TransactionInfo
    store: Store
    environment: Environment
    price_usd: Decimal
    proceeds_usd: Decimal


def paid(state: ProfileState, now: datetime, config: FoldConfig) -> list[Money]:
    """Every due transaction of the chains this profile is the parent of."""
    out: list[Money] = []
    for r in related_chains(state, config):
        if not r.is_parent:
            continue
        for p in periods(r.chain, config):
            if p.start <= now:
                out.append(
                    Money(p.tx, r.chain.store, r.chain.environment, p.tx.price_usd, p.proceeds_usd)
                )
        for one in purchases(r.chain, config):
            if one.tx.purchased_at <= now:
                out.append(
                    Money(
                        one.tx,
                        r.chain.store,
                        r.chain.environment,
                        one.tx.price_usd,
                        one.proceeds_usd,
                    )
                )
    return out


def revenue(payments: list[Money]) -> Revenue:
    totals = {Environment.PRODUCTION: [ZERO, ZERO], Environment.SANDBOX: [ZERO, ZERO]}
    for m in payments:
        if m.tx.revoked_at is None:
            totals[m.environment][0] += m.price_usd
            totals[m.environment][1] += m.proceeds_usd
    prod, sandbox = totals[Environment.PRODUCTION], totals[Environment.SANDBOX]
    return Revenue(
        total_revenue_usd=prod[0],
        total_proceeds_usd=prod[1],
        sandbox_total_revenue_usd=sandbox[0],
        sandbox_total_proceeds_usd=sandbox[1],
    )


def email_metrics(state: ProfileState, payments: list[Money], config: FoldConfig) -> EmailMetrics:
    records = state.emails.values()
    sent = sum(1 for r in records if r.sent_at is not None)
    opened = sum(1 for r in records if r.opened_at is not None)
    engaged = sorted(
        t for r in records if r.campaign_id is not None for t in (r.opened_at, r.clicked_at) if t
    )
    window = config.email_attribution_window
    attributed = sum(
        (
            m.price_usd
            for m in payments
            if m.environment is Environment.PRODUCTION
            and m.tx.revoked_at is None
            and any(t <= m.tx.purchased_at <= t + window for t in engaged)
        ),
        ZERO,
    )
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
        price_local=tx.price_local,
        currency=tx.currency,
        price_usd=tx.price_usd,
        is_parent=r.is_parent,
    )


def profile_view(state: ProfileState, now: datetime, config: FoldConfig) -> ProfileView:
    related = list(related_chains(state, config))
    readings = [(r, read(r.chain, now, config)) for r in related]
    standings = [ChainStanding(reading, r.holds) for r, reading in readings]
    payments = paid(state, now, config)
    latest = max(payments, key=lambda m: (m.tx.purchased_at, m.tx.transaction_id), default=None)
    one_time = [m for m in payments if not m.tx.is_subscription]
    inheritors, parents = [], []
    for r in related:
        if r.is_parent:
            inheritors += [
                ProfileLink(profile_id=p, chain_key=r.chain.chain_key)
                for p in r.relations.holders
                if p != state.profile_id
            ]
        elif r.relations.parent is not None:
            parents.append(ProfileLink(profile_id=r.relations.parent, chain_key=r.chain.chain_key))
    return ProfileView(
        profile_id=state.profile_id,
        customer_user_id=state.customer_user_id,
        deleted=state.deleted,
        created_at=state.created_at,
        last_seen_at=state.last_seen_at,
        fields=state.fields,
        custom_attributes=state.custom_attributes,
        notes=state.notes,
        subscription_state=subscription_state(standings),
        purchase_status=purchase_status(
            standings, None if latest is None else latest.tx.revoked_at is not None, bool(one_time)
        ),
        access_levels=tuple(_levels_at(state, now, config).values()),
        subscriptions=tuple(
            _subscription(r, reading) for r, reading in readings if reading.period is not None
        ),
        non_subscriptions=tuple(
            NonSubscriptionView(
                purchase_id=m.tx.transaction_id,
                store=m.store,
                environment=m.environment,
                store_product_id=m.tx.product_id,
                store_base_plan_id=m.tx.base_plan_id,
                store_transaction_id=m.tx.transaction_id,
                store_original_transaction_id=m.tx.original_transaction_id,
                purchased_at=m.tx.purchased_at,
                is_refund=m.tx.revoked_at is not None,
                is_consumable=m.tx.is_consumable,
                price_local=m.tx.price_local,
                currency=m.tx.currency,
                price_usd=m.price_usd,
            )
            for m in one_time
        ),
        revenue=revenue(payments),
        email=email_metrics(state, payments, config),
        email_subscribed=state.email_unsubscribed_at is None,
        inheritors=tuple(inheritors),
        parents=tuple(parents),
        transaction_ids=_transaction_ids(r.chain for r in related),
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


def _transaction_ids(chains: Iterable[ChainState]) -> tuple[str, ...]:
    ids: set[str] = set()
    for chain in chains:
        ids.add(chain.original_transaction_id)
        ids.update(chain.transactions)
    return tuple(sorted(ids))


def next_wakeup(state: ProfileState, after: datetime, config: FoldConfig) -> datetime | None:
    """The next instant at which this profile would change without new input."""
    candidates = [grant.starts_at for grant in state.grants.values()]
    candidates += (g.expires_at for g in state.grants.values() if g.expires_at is not None)
    candidates += state.level_cutoffs.values()
    for r in related_chains(state, config):
        instants = chain_instants(r.chain, config)
        index = bisect_right(instants, after)
        if index < len(instants):
            candidates.append(instants[index])
    return min((t for t in candidates if t > after), default=None)


def chain_instants(chain: ChainState, config: FoldConfig) -> tuple[datetime, ...]:
    """Every instant at which what a chain's facts mean can change, in order."""
    return remembered("instants", chain, config, lambda: _chain_instants(chain, config))


def _chain_instants(chain: ChainState, config: FoldConfig) -> tuple[datetime, ...]:
    instants: set[datetime] = set()
    for p in periods(chain, config):
        instants.update((p.start, p.end))
    for obs in chain.renewals:
        instants.add(obs.signed_at)
        if obs.info.grace_period_expires_at is not None:
            instants.add(obs.info.grace_period_expires_at)
    instants.update(d.signed_at for d in chain.deferrals)
    instants.update(one.tx.purchased_at for one in purchases(chain, config))
    return tuple(sorted(instants))
