"""What a chain's facts mean: one reading in time order, able to start at a checkpoint.

The reading walks a chain's subscription periods in start order and its renewal
statements in signed order, carrying forward what each step leaves (paid service, the
previous period, auto-renew and billing-retry state, the run of continuous access). A
`Checkpoint` is that state at a period's start, with the money and labels of everything
before it. Reading the facts from a checkpoint on gives exactly what reading them all
from the beginning gives for that part, so the chain fold reads only its tail for input
in time order, and everything only for input that lands before its checkpoint.

The journey items are derived here too: what the facts state outright (purchases,
renewals, cancellations, billing issues, deferrals, refunds) and every lapse of access
that is settled (access resumed by `at`, so nothing later can change it). Lapses still
open are read by the profile at its own instants (`journey.lapse`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from processors.core.config import FoldConfig
from processors.core.journey import lapse
from schemas.base import replace
from schemas.enums import CancellationReason, EventType, Store
from schemas.events import TransactionInfo
from schemas.money import rounded
from schemas.state import (
    Checkpoint,
    Item,
    Observation,
    Period,
    Purchase,
    RevocationObs,
    RevocationPatch,
    Span,
    TransactionFact,
)

E = EventType
R = CancellationReason
FOREVER = datetime.max.replace(tzinfo=UTC)


@dataclass(slots=True)
class Scan:
    """A reading of some facts from a checkpoint (or the beginning) on."""

    # What was read: the facts, from where, as of which instant.
    transactions: Mapping[str, TransactionFact]
    observations: Sequence[Observation]
    start: Checkpoint | None
    at: datetime
    periods: list[Period]
    purchases: list[Purchase]
    # Journey items, each with the instant of the fact it belongs to (its origin): an
    # item whose origin is before a later checkpoint is read before that checkpoint.
    items: list[Item]
    origins: list[datetime]
    # Lapses not yet settled at the reading's instant.
    spans: list[Span]
    # Renewal statements from the start on (signed time order).
    renewals: list[Observation]
    # The last period start at which a new checkpoint can be taken, and that checkpoint.
    anchor: Checkpoint | None = None
    anchor_index: int = 0
    instants: list[datetime] = field(default_factory=list)


def read_facts(
    transactions: Mapping[str, TransactionFact],
    observations: Sequence[Observation],
    start: Checkpoint | None,
    at: datetime,
    config: FoldConfig,
    store: Store = Store.APP_STORE,
) -> Scan:
    """Read the facts (those from `start` on) as of `at`, the instant being folded; the
    store decides the commission (DOMAIN.md 6)."""
    since = start.start if start is not None else None
    patches: dict[str, list[tuple[datetime, str, RevocationPatch]]] = {}
    deferred: dict[str, datetime] = {}
    deferrals: list[Observation] = []
    terminations: list[datetime] = []
    renewals: list[Observation] = []
    for o in observations:
        if o.patch is not None:
            patches.setdefault(o.patch.transaction_id, []).append(
                (o.signed_at, o.event_id, o.patch)
            )
        if o.deferral is not None:
            d = o.deferral
            known = deferred.get(d.transaction_id)
            deferred[d.transaction_id] = d.expires_at if known is None else max(known, d.expires_at)
            deferrals.append(o)
        if o.terminated_at is not None:
            terminations.append(o.terminated_at)
        if o.renewal is not None and (since is None or o.signed_at >= since):
            renewals.append(o)
    subscriptions: list[TransactionFact] = []
    ones: list[TransactionFact] = []
    for fact in transactions.values():
        (subscriptions if fact.info.is_subscription else ones).append(fact)
    subscriptions.sort(key=lambda f: (f.info.purchased_at, f.info.transaction_id))
    ones.sort(key=lambda f: (f.info.purchased_at, f.info.transaction_id))

    prior = start.last_renewal if start is not None else None
    periods, paid_before, natural = _periods(
        subscriptions, patches, deferred, terminations, start, config, store
    )
    if config.renewal_leeway:
        periods = _continued(
            [
                _held(p, renewals, prior, config.renewal_leeway) if ends_at_expiry else p
                for p, ends_at_expiry in zip(periods, natural, strict=True)
            ]
        )
    rate = _rate(config, store, config.small_business)
    purchases = [
        Purchase(
            tx=tx,
            proceeds_usd=(proceeds := rounded(tx.price_usd * (1 - rate))),
            net_proceeds_usd=_net_proceeds(tx, proceeds, rate),
        )
        for tx in _effective(ones, patches)
    ]
    anchor_index = _anchor_index(periods, start, at)
    boundary = periods[anchor_index].start if anchor_index is not None else None

    items: list[Item] = []
    origins: list[datetime] = []
    starts = {p.tx.transaction_id: p.start for p in periods}

    def told(item: Item, origin: datetime) -> None:
        items.append(item)
        origins.append(origin)

    purchase_state = _purchase_items(periods, start, anchor_index, told)
    renewal_state = _renewal_items(renewals, periods, start, boundary, told)
    for o in deferrals:
        deferral = o.deferral
        assert deferral is not None
        owner = transactions.get(deferral.transaction_id)
        told(
            Item(
                key=f"defer:{o.event_id}",
                event_type=E.SUBSCRIPTION_DEFERRED,
                at=o.signed_at,
                tx=owner.info if owner else None,
                expires_at=deferral.expires_at,
            ),
            starts.get(deferral.transaction_id, FOREVER),
        )
    for fact in transactions.values():
        tid = fact.info.transaction_id
        # Most transactions were never refunded: nothing to tell.
        if fact.revocations or tid in patches:
            for item in _refunds_of(fact, patches.get(tid, ())):
                told(item, starts.get(tid, FOREVER))
    for one in purchases:
        told(
            Item(
                key=f"buy:{one.tx.transaction_id}",
                event_type=E.NON_SUBSCRIPTION_PURCHASE,
                at=one.tx.purchased_at,
                tx=one.tx,
                proceeds_usd=one.proceeds_usd,
                rate_after_first_year=False,
            ),
            FOREVER,
        )
    spans, span_end = _spans(periods, start, anchor_index, renewals, prior, at, told)
    scan = Scan(
        transactions, observations, start, at, periods, purchases, items, origins, spans, renewals
    )
    if anchor_index is not None:
        scan.anchor_index = anchor_index
        scan.anchor = _checkpoint(
            periods, paid_before, anchor_index, start, purchase_state, renewal_state, span_end
        )
    scan.instants = _instants(scan, deferrals, starts)
    return scan


# --- periods ---------------------------------------------------------------------------


def _rate(config: FoldConfig, store: Store, reduced: bool) -> Decimal:
    """The share of a price the store keeps: an app store's commission; Stripe takes none
    beyond the fee rate the app configures."""
    if store is Store.STRIPE:
        return config.stripe_fee_rate
    return config.reduced_commission_rate if reduced else config.commission_rate


def _effective_tx(
    fact: TransactionFact, patches: Sequence[tuple[datetime, str, RevocationPatch]]
) -> TransactionInfo:
    """The transaction with newer refund statements made by id alone applied to it."""
    newest: tuple[datetime, str, RevocationPatch] | None = None
    version = (fact.signed_at, fact.event_id)
    for p in patches:
        if (p[0], p[1]) > version and (newest is None or (p[0], p[1]) > (newest[0], newest[1])):
            newest = p
    if newest is None:
        return fact.info
    patch = newest[2]
    return replace(
        fact.info,
        revoked_at=patch.revoked_at,
        revocation_reason=patch.reason,
        refunded_local=patch.refunded_local,
        refunded_usd=patch.refunded_usd,
    )


def _net_proceeds(tx: TransactionInfo, proceeds: Decimal, rate: Decimal) -> Decimal | None:
    """Proceeds less what the store gave back (DOMAIN.md 6); None when it gave nothing."""
    if tx.refunded_usd is not None:
        return max(proceeds - rounded(tx.refunded_usd * (1 - rate)), Decimal(0))
    return Decimal(0) if tx.revoked_at is not None else None


def _effective(
    facts: Iterable[TransactionFact],
    patches: Mapping[str, list[tuple[datetime, str, RevocationPatch]]],
) -> list[TransactionInfo]:
    return [_effective_tx(f, patches.get(f.info.transaction_id, ())) for f in facts]


def _periods(
    subscriptions: list[TransactionFact],
    patches: Mapping[str, list[tuple[datetime, str, RevocationPatch]]],
    deferred: Mapping[str, datetime],
    terminations: list[datetime],
    start: Checkpoint | None,
    config: FoldConfig,
    store: Store,
) -> tuple[list[Period], list[timedelta], list[bool]]:
    """Each subscription transaction's period, the paid service before it, and whether it
    ends at its expiry (neither cut short by the store nor refunded)."""
    paid_service = start.paid_service if start is not None else timedelta(0)
    periods: list[Period] = []
    paid_before: list[timedelta] = []
    ends_at_expiry: list[bool] = []
    for fact in subscriptions:
        tx = _effective_tx(fact, patches.get(fact.info.transaction_id, ()))
        assert tx.expires_at is not None  # guaranteed by TransactionInfo for subscriptions
        begin = tx.purchased_at
        extended = deferred.get(tx.transaction_id)
        end = tx.expires_at if extended is None else max(tx.expires_at, extended)
        # A termination cuts the period it falls in; a later period starts afresh.
        cut = end
        for ended in terminations:
            if begin <= ended < cut:
                cut = ended
        end = cut
        for early in (tx.revoked_at, tx.ended_at):
            if early is not None and early < end:
                end = early
        natural = (
            end == cut == (tx.expires_at if extended is None else max(tx.expires_at, extended))
        )
        end = max(end, begin)
        after_first_year = paid_service >= config.reduced_rate_after
        rate = _rate(config, store, config.small_business or after_first_year)
        proceeds = rounded(tx.price_usd * (1 - rate))
        periods.append(
            Period(
                tx=tx,
                start=begin,
                end=end,
                proceeds_usd=proceeds,
                net_proceeds_usd=_net_proceeds(tx, proceeds, rate),
                rate_after_first_year=after_first_year,
                learned_at=fact.learned_at,
            )
        )
        paid_before.append(paid_service)
        ends_at_expiry.append(natural and tx.revoked_at is None)
        if not tx.is_trial and tx.revoked_at is None:
            paid_service += end - begin
    return periods, paid_before, ends_at_expiry


def _held(
    period: Period, renewals: list[Observation], prior: Observation | None, leeway: timedelta
) -> Period:
    """The period with its renewal leeway (DOMAIN.md 3): one that ends at its expiry while
    the store says it renews stays active for `leeway` past its expiry and past the moment
    it was learned, awaiting the renewal the store reports minutes later."""
    # What the store said before the period ended (a renewal signed at its end is the
    # continuation itself).
    index = bisect_left(renewals, period.end, key=lambda o: o.signed_at)
    state = renewals[index - 1] if index else prior
    info = state.renewal if state is not None and state.signed_at < period.end else None
    if info is not None and (
        not info.auto_renew
        or info.cancellation_reason is not None
        or info.in_billing_retry
        or info.paused
    ):
        return replace(period, held_until=None)
    return replace(period, held_until=max(period.end, period.learned_at) + leeway)


def _continued(periods: list[Period]) -> list[Period]:
    """The periods with each leeway cut at the period that continues it: awaiting a
    renewal ends when one begins (refunded later or not)."""
    for index, p in enumerate(periods):
        held = p.held_until
        if held is None or index + 1 == len(periods):
            continue
        following = periods[index + 1].start
        if following <= held:
            periods[index] = replace(p, held_until=following if following > p.end else None)
    return periods


def _anchor_index(periods: list[Period], start: Checkpoint | None, at: datetime) -> int | None:
    """The last period that starts by `at` after every earlier one has ended: reading from
    its start needs nothing of the periods before it but what a checkpoint carries."""
    reach = start.span_end if start is not None else None
    held = (start.span_reach or reach) if start is not None else None
    found = None
    for index, p in enumerate(periods):
        if p.start > at:
            break
        # A period that starts as the earlier ones end (within their renewal leeway, as
        # a renewal does) and outlasts their leeway needs nothing of them.
        if (reach is None or reach <= p.start) and (held is None or held <= p.reach):
            found = index
        reach = p.end if reach is None else max(reach, p.end)
        held = p.reach if held is None else max(held, p.reach)
    return found


# --- the journey: purchases, renewal statements, refunds ----------------------------------


@dataclass(slots=True)
class _PurchaseState:
    prev: Period | None
    had_trial: bool
    had_paid: bool
    at_anchor: tuple[Period | None, bool, bool] | None = None


def _purchase_items(
    periods: list[Period],
    start: Checkpoint | None,
    anchor_index: int | None,
    told: Callable[[Item, datetime], None],
) -> _PurchaseState:
    state = (
        _PurchaseState(start.prev, start.had_trial, start.had_paid)
        if start is not None
        else _PurchaseState(None, False, False)
    )
    for index, p in enumerate(periods):
        if index == anchor_index:
            state.at_anchor = (state.prev, state.had_trial, state.had_paid)
        tx, prev = p.tx, state.prev
        if prev is None or tx.is_trial:
            kind = E.TRIAL_STARTED if tx.is_trial else E.SUBSCRIPTION_STARTED
        elif tx.product_id != prev.tx.product_id and p.start <= prev.end:
            # A product change inside the group: the old product ends as the new one starts.
            reason = (
                R.UPGRADED
                if prev.tx.is_upgraded or p.start < prev.end
                else R.NEW_SUBSCRIPTION_REPLACE
            )
            told(
                Item(
                    key=f"replaced:{prev.tx.transaction_id}",
                    event_type=E.SUBSCRIPTION_EXPIRED,
                    at=p.start,
                    tx=prev.tx,
                    reason=reason,
                    expires_at=prev.end,
                ),
                p.start,
            )
            kind = E.SUBSCRIPTION_STARTED
        elif state.had_trial and not state.had_paid:
            # The first paid period after a trial converts it, even after a lapse.
            kind = E.TRIAL_CONVERTED
        else:
            kind = E.SUBSCRIPTION_RENEWED
        told(
            Item(
                key=f"tx:{tx.transaction_id}",
                event_type=kind,
                at=p.start,
                tx=tx,
                proceeds_usd=p.proceeds_usd,
                rate_after_first_year=p.rate_after_first_year,
                expires_at=p.end,
            ),
            p.start,
        )
        state.had_trial = state.had_trial or tx.is_trial
        state.had_paid = state.had_paid or not tx.is_trial
        state.prev = p
    return state


@dataclass(slots=True)
class _RenewalState:
    auto_renew: bool
    off_in: str | None
    retry_in: str | None
    grace_until: datetime | None
    cancelled_at: datetime | None
    last_before: Observation | None = None
    at_anchor: tuple[bool, str | None, str | None, datetime | None, datetime | None] | None = None


def _renewal_items(
    renewals: list[Observation],
    periods: list[Period],
    start: Checkpoint | None,
    boundary: datetime | None,
    told: Callable[[Item, datetime], None],
) -> _RenewalState:
    state = (
        _RenewalState(
            start.auto_renew, start.off_in, start.retry_in, start.grace_until, start.cancelled_at
        )
        if start is not None
        else _RenewalState(True, None, None, None, None)
    )
    starts = [p.start for p in periods]
    for obs in renewals:
        info, at = obs.renewal, obs.signed_at
        assert info is not None
        if boundary is not None and state.at_anchor is None and at >= boundary:
            state.at_anchor = _snapshot(state)
        if boundary is not None and at < boundary:
            state.last_before = obs
        # When auto-renew was last turned off, while it stays off.
        if not info.auto_renew and state.cancelled_at is None:
            state.cancelled_at = at
        elif info.auto_renew:
            state.cancelled_at = None
        index = bisect_right(starts, at)
        period = periods[index - 1] if index else None
        if period is None:
            state.auto_renew = info.auto_renew
            continue
        tid = period.tx.transaction_id
        # A user turns renewal off or on while the period or its grace runs; the store
        # turning it off when billing retries end is part of the lapse, not a cancellation.
        in_grace = (
            state.retry_in == tid and state.grace_until is not None and at < state.grace_until
        )
        ongoing = (at <= period.end or in_grace) and (
            info.cancellation_reason is not R.BILLING_ERROR
        )
        if not info.auto_renew and state.auto_renew and ongoing:
            kind = (
                E.TRIAL_RENEWAL_CANCELLED
                if period.tx.is_trial
                else E.SUBSCRIPTION_RENEWAL_CANCELLED
            )
            told(
                Item(
                    key=f"renew:{obs.event_id}",
                    event_type=kind,
                    at=at,
                    tx=period.tx,
                    reason=info.cancellation_reason,
                    expires_at=period.end,
                ),
                at,
            )
            state.off_in = tid
        elif info.auto_renew and not state.auto_renew and state.off_in == tid and ongoing:
            # Turned back on in the period it was turned off in; a re-purchase after the
            # period ended turns it on too, but that is a renewal, not a reactivation.
            kind = (
                E.TRIAL_RENEWAL_REACTIVATED
                if period.tx.is_trial
                else E.SUBSCRIPTION_RENEWAL_REACTIVATED
            )
            told(
                Item(
                    key=f"renew:{obs.event_id}",
                    event_type=kind,
                    at=at,
                    tx=period.tx,
                    expires_at=period.end,
                ),
                at,
            )
        state.auto_renew = info.auto_renew
        if info.in_billing_retry and state.retry_in != tid:
            # A renewal of this period failed: one billing issue per failed period.
            detected = info.billing_issue_detected_at or at
            told(
                Item(
                    key=f"billing:{tid}",
                    event_type=E.BILLING_ISSUE_DETECTED,
                    at=detected,
                    tx=period.tx,
                    expires_at=period.end,
                ),
                at,
            )
            if info.grace_period_expires_at is not None:
                told(
                    Item(
                        key=f"grace:{tid}",
                        event_type=E.ENTERED_GRACE_PERIOD,
                        at=detected,
                        tx=period.tx,
                        expires_at=info.grace_period_expires_at,
                    ),
                    at,
                )
        state.retry_in = tid if info.in_billing_retry else None
        state.grace_until = info.grace_period_expires_at if info.in_billing_retry else None
    if boundary is not None and state.at_anchor is None:
        state.at_anchor = _snapshot(state)
    return state


def _snapshot(
    state: _RenewalState,
) -> tuple[bool, str | None, str | None, datetime | None, datetime | None]:
    return (state.auto_renew, state.off_in, state.retry_in, state.grace_until, state.cancelled_at)


def _refunds_of(
    fact: TransactionFact, patches: Sequence[tuple[datetime, str, RevocationPatch]]
) -> list[Item]:
    tx = fact.info
    statements = [
        *fact.revocations,
        *(
            RevocationObs(signed_at=s, event_id=e, revoked_at=p.revoked_at, reason=p.reason)
            for s, e, p in patches
        ),
    ]
    refunded_kind = (
        E.SUBSCRIPTION_REFUNDED if tx.is_subscription else E.NON_SUBSCRIPTION_PURCHASE_REFUNDED
    )
    items: list[Item] = []
    refunded = False
    for obs in sorted(statements, key=lambda o: (o.signed_at, o.event_id)):
        if obs.revoked_at is not None and not refunded:
            reason = obs.reason or (R.UPGRADED if tx.is_upgraded else R.REFUND)
            items.append(
                Item(
                    key=f"refund:{obs.event_id}",
                    event_type=refunded_kind,
                    at=obs.revoked_at,
                    tx=tx,
                    reason=reason,
                )
            )
        elif obs.revoked_at is None and refunded:
            items.append(
                Item(
                    key=f"reversal:{obs.event_id}",
                    event_type=E.REFUND_REVERSED,
                    at=obs.signed_at,
                    tx=tx,
                )
            )
        refunded = obs.revoked_at is not None
    return items


# --- runs of access and their lapses ------------------------------------------------------


def _spans(
    periods: list[Period],
    start: Checkpoint | None,
    anchor_index: int | None,
    renewals: list[Observation],
    prior: Observation | None,
    at: datetime,
    told: Callable[[Item, datetime], None],
) -> tuple[list[Span], tuple[datetime, datetime] | None]:
    """Runs of continuous access from the start on: each settled lapse is told, the rest
    are returned; with the end of access reached before the anchor period."""
    # Each run: [end, the period that ends it (None: begun before the start), first start,
    # reach (its end or, awaiting a renewal, its leeway's)].
    runs: list[list[Any]] = []
    if start is not None and start.span_end is not None:
        runs.append([start.span_end, None, None, start.span_reach or start.span_end])
    reach_at_anchor: tuple[datetime, datetime] | None = None
    for index, p in enumerate(periods):
        if index == anchor_index:
            reach_at_anchor = (runs[-1][0], runs[-1][3]) if runs else None
        if runs and p.start <= runs[-1][3]:
            run = runs[-1]
            if p.end >= run[0]:
                run[0], run[1], run[3] = p.end, p, p.reach
            else:
                run[3] = max(run[3], p.reach)
            continue
        runs.append([p.end, p, p.start, p.reach])
    open_spans: list[Span] = []
    for index, (end, last, _, reach) in enumerate(runs):
        if last is None:
            continue  # a run that ended before the start: read with the facts before it
        # Access resumes when the next run begins.
        next_start = runs[index + 1][2] if index + 1 < len(runs) else None
        span = Span(
            end=end,
            last=last.tx.transaction_id,
            next_start=next_start,
            held_until=reach if reach > end else None,
        )
        if next_start is not None and next_start <= at:
            # Access resumed by `at`: every statement that bears on this lapse is in.
            item = lapse(span, last, renewals, prior, None)
            if item is not None:
                told(item, last.start)
        else:
            open_spans.append(span)
    return open_spans, reach_at_anchor


# --- checkpoints and wake-up instants ---------------------------------------------------


def _checkpoint(
    periods: list[Period],
    paid_before: list[timedelta],
    index: int,
    start: Checkpoint | None,
    purchases: _PurchaseState,
    renewals: _RenewalState,
    span: tuple[datetime, datetime] | None,
) -> Checkpoint:
    anchor = periods[index]
    before = periods[:index]
    assert purchases.at_anchor is not None
    assert renewals.at_anchor is not None
    prev, had_trial, had_paid = purchases.at_anchor
    auto_renew, off_in, retry_in, grace_until, cancelled_at = renewals.at_anchor
    revenue = start.revenue_usd if start is not None else Decimal(0)
    proceeds = start.proceeds_usd if start is not None else Decimal(0)
    for p in before:
        revenue += p.tx.revenue_usd
        proceeds += p.kept_proceeds_usd
    last_renewal = renewals.last_before or (start.last_renewal if start is not None else None)
    return Checkpoint(
        start=anchor.start,
        paid_service=paid_before[index],
        prev=prev,
        had_trial=had_trial,
        had_paid=had_paid,
        auto_renew=auto_renew,
        off_in=off_in,
        retry_in=retry_in,
        grace_until=grace_until,
        last_renewal=last_renewal,
        cancelled_at=cancelled_at,
        span_end=span[0] if span is not None else None,
        span_reach=span[1] if span is not None and span[1] != span[0] else None,
        ever_paid=(start is not None and start.ever_paid) or any(not p.tx.is_trial for p in before),
        first_purchased_at=min(
            [
                *([start.first_purchased_at] if start and start.first_purchased_at else []),
                *(p.tx.originally_purchased_at or p.start for p in before),
            ],
            default=None,
        ),
        revenue_usd=revenue,
        proceeds_usd=proceeds,
    )


def _instants(
    scan: Scan, deferrals: list[Observation], starts: Mapping[str, datetime]
) -> list[datetime]:
    """Every instant at which what the facts from the anchor on mean can change."""
    since = scan.anchor.start if scan.anchor is not None else None
    instants: set[datetime] = set()
    for p in scan.periods[scan.anchor_index if scan.anchor is not None else 0 :]:
        instants.add(p.start)
        instants.add(p.end)
        if p.held_until is not None:
            instants.add(p.held_until)
    for o in scan.renewals:
        if since is None or o.signed_at >= since:
            instants.add(o.signed_at)
            assert o.renewal is not None
            if o.renewal.grace_period_expires_at is not None:
                instants.add(o.renewal.grace_period_expires_at)
    # A deferral belongs with its period: one before the checkpoint is read before it.
    instants.update(
        o.signed_at
        for o in deferrals
        if o.deferral is not None
        and (since is None or starts.get(o.deferral.transaction_id, FOREVER) >= since)
    )
    instants.update(one.tx.purchased_at for one in scan.purchases)
    # Those before the checkpoint are past for every profile that reads the digest.
    return sorted(t for t in instants if since is None or t >= since)
