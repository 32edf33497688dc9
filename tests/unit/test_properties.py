"""Properties of the fold that hold for any history of a chain (STYLE.md, DOMAIN.md 3)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.core.access import is_active_at
from processors.core.chain import evolve_chain
from processors.core.ledger import Ledger
from schemas.events import StoreEvent
from schemas.state import ChainState, IdentityState, ProfileState
from tests.builders import ALICE, T0, Chain
from tests.helpers import create

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")


@st.composite
def histories(draw: st.DrawFn) -> tuple[Chain, list[StoreEvent]]:
    """A chain's notifications in the order the store sent them (signed times ascending)."""
    chain = Chain()
    events: list[StoreEvent] = []
    t = T0
    trial_first = draw(st.booleans())
    for i in range(draw(st.integers(1, 4))):
        start = t + timedelta(days=draw(st.sampled_from([0, 0, 3])))
        end = start + timedelta(days=draw(st.sampled_from([7, 30])))
        events.append(
            chain.buy(
                f"t{i}",
                start,
                end,
                trial=trial_first and i == 0,
                price=draw(st.sampled_from(["0.99", "9.99", "49.99"])),
                product=draw(st.sampled_from(["premium.monthly", "premium.yearly"])),
            )
        )
        t = end
    hours = int((t - T0).total_seconds() // 3600) + 240
    count = draw(st.integers(0, 5))
    for h in sorted(draw(st.lists(st.integers(1, hours), min_size=count, max_size=count))):
        at = T0 + timedelta(hours=h)
        bought = [x for x in chain.transactions.values() if x.purchased_at < at]
        action = draw(
            st.sampled_from(
                ["off", "on", "billing", "grace", "refund", "reverse", "defer", "pause"]
            )
        )
        if action in ("off", "on"):
            events.append(chain.auto_renew(action == "on", at))
        elif action == "billing":
            events.append(chain.billing_issue(at))
        elif action == "grace":
            events.append(chain.billing_issue(at, grace_until=at + timedelta(days=6)))
        elif action == "pause":
            events.append(chain.paused(at))
        elif action == "terminate":
            events.append(chain.terminated(at))
        elif action == "refund_id" and (live := [x for x in bought if x.revoked_at is None]):
            events.append(chain.refund_by_id(draw(st.sampled_from(live)).transaction_id, at))
        elif action == "reverse_id" and (gone := [x for x in bought if x.revoked_at is not None]):
            events.append(chain.reversal_by_id(draw(st.sampled_from(gone)).transaction_id, at))
        elif action == "extend_id" and bought:
            tx = draw(st.sampled_from(bought))
            if tx.expires_at is not None:
                events.append(
                    chain.extended_by_id(tx.transaction_id, at, tx.expires_at + timedelta(days=5))
                )
        elif action == "refund" and (live := [x for x in bought if x.revoked_at is None]):
            events.append(chain.refund(draw(st.sampled_from(live)).transaction_id, at))
        elif action == "reverse" and (gone := [x for x in bought if x.revoked_at is not None]):
            events.append(chain.refund_reversed(draw(st.sampled_from(gone)).transaction_id, at))
        elif action == "defer" and bought:
            tx = draw(st.sampled_from(bought))
            if tx.expires_at is not None:
                events.append(
                    chain.deferred(tx.transaction_id, at, tx.expires_at + timedelta(days=10))
                )
    return chain, events


def end_of(events: list[StoreEvent]) -> datetime:
    return max(e.signed_at for e in events) + timedelta(days=1)


def fold_chain(events: list[StoreEvent]) -> ChainState | None:
    state: ChainState | None = None
    for event in events:
        state, _ = evolve_chain(state, event)
    return state


def arriving_at(events: list[StoreEvent], now: datetime) -> list[StoreEvent]:
    """The same notifications, all delivered late at `now`."""
    return [e.model_copy(update={"received_at": now}) for e in events]


def ledger_of(events: list[StoreEvent], now: datetime) -> Ledger:
    ledger = Ledger()
    ledger.submit(create(ALICE))
    ledger.submit_all(arriving_at(events, now))
    return ledger


def shown(ledger: Ledger, now: datetime) -> dict[str, object]:
    return ledger.view(ALICE, now).model_dump(exclude={"version"})


@given(histories(), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_chain_state(history, rnd: random.Random) -> None:
    _, events = history
    shuffled = events[:]
    rnd.shuffle(shuffled)
    assert fold_chain(shuffled) == fold_chain(events)


@given(histories(), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_profile(history, rnd: random.Random) -> None:
    _, events = history
    now = end_of(events)
    shuffled = events[:]
    rnd.shuffle(shuffled)
    assert shown(ledger_of(shuffled, now), now) == shown(ledger_of(events, now), now)


@given(histories(), st.data())
def test_a_duplicate_is_a_no_op(history, data: st.DataObject) -> None:
    _, events = history
    state = fold_chain(events)
    duplicate = data.draw(st.sampled_from(events))
    assert evolve_chain(state, duplicate) == (state, ())
    now = end_of(events)
    ledger = ledger_of(events, now)
    profiles, emitted = dict(ledger.profiles), list(ledger.events)
    ledger.submit(arriving_at([duplicate], now)[0])
    assert ledger.profiles == profiles
    assert ledger.events == emitted


def _snapshot(ledger: Ledger) -> Ledger:
    """Every fold's state through its JSON form, as a changelog or snapshot topic holds it."""
    return Ledger(
        chains={
            k: ChainState.model_validate_json(v.model_dump_json()) for k, v in ledger.chains.items()
        },
        profiles={
            k: ProfileState.model_validate_json(v.model_dump_json())
            for k, v in ledger.profiles.items()
        },
        identities={
            k: IdentityState.model_validate_json(v.model_dump_json())
            for k, v in ledger.identities.items()
        },
    )


@given(histories(), st.data())
def test_folding_everything_equals_snapshot_then_the_rest(history, data: st.DataObject) -> None:
    _, events = history
    cut = data.draw(st.integers(0, len(events)))
    whole = Ledger()
    whole.submit(create(ALICE))
    whole.submit_all(events)
    part = Ledger()
    part.submit(create(ALICE))
    part.submit_all(events[:cut])
    seen = len(part.events)
    resumed = _snapshot(part)
    resumed.submit_all(events[cut:])
    now = end_of(events)
    whole.advance(now)
    resumed.advance(now)
    assert resumed.profiles == whole.profiles
    assert resumed.events == whole.events[seen:]
    assert shown(resumed, now) == shown(whole, now)


@given(histories(), st.integers(-24, 24 * 120))
def test_invariants_hold_at_any_instant(history, hour: int) -> None:
    chain, events = history
    now = T0 + timedelta(hours=hour)
    ledger = ledger_of(events, end_of(events))
    view = ledger.view(ALICE, now)
    expected = sum(
        (
            t.price_usd
            for t in chain.transactions.values()
            if t.purchased_at <= now and t.revoked_at is None
        ),
        Decimal(0),
    )
    assert view.revenue.total_revenue_usd == expected >= 0
    assert 0 <= view.revenue.total_proceeds_usd <= view.revenue.total_revenue_usd
    for level in view.access_levels:
        assert level.is_active == is_active_at(level, now)
    if view.next_wakeup_at is not None:
        assert view.next_wakeup_at > now
