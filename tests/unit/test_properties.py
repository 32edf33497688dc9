"""Properties of the fold that hold for any history of a chain (STYLE.md, DOMAIN.md 3)."""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.core.access import is_active_at
from processors.core.chain import evolve_chain
from processors.core.config import DEFAULT_CONFIG
from processors.core.facts import FactBook
from processors.core.ledger import Ledger
from processors.stream import codecs
from processors.stream.codecs import LAYOUTS
from schemas.base import replace, to_builtins
from schemas.events import StoreEvent
from tests.builders import ALICE, T0, Chain
from tests.helpers import create

settings.register_profile(
    "default",
    max_examples=int(os.environ.get("SUBLEDGER_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
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
                ["off", "on", "billing", "grace", "refund", "reverse", "defer", "pause", "partial"]
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
        elif action == "partial" and (live := [x for x in bought if x.revoked_at is None]):
            amount = Decimal(draw(st.sampled_from(["0.10", "0.50", "5.00"])))
            events.append(
                chain.partial_refund_by_id(draw(st.sampled_from(live)).transaction_id, at, amount)
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


def facts_of_chain(events: list[StoreEvent]) -> tuple[object, ...]:
    book = FactBook()
    state = None
    for event in events:
        outcome = evolve_chain(state, event, book, DEFAULT_CONFIG)
        state = outcome.state
        book.keep(outcome.transactions, outcome.observations)
    return book.facts()


def arriving_at(events: list[StoreEvent], now: datetime) -> list[StoreEvent]:
    """The same notifications, all delivered late at `now`."""
    return [replace(e, received_at=now) for e in events]


def ledger_of(events: list[StoreEvent], now: datetime) -> Ledger:
    ledger = Ledger()
    ledger.submit(create(ALICE))
    ledger.submit_all(arriving_at(events, now))
    return ledger


def shown(ledger: Ledger, now: datetime) -> dict[str, object]:
    view = to_builtins(ledger.view(ALICE, now))
    del view["version"]
    return view


@given(histories(), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_chain_facts(history, rnd: random.Random) -> None:
    _, events = history
    shuffled = events[:]
    rnd.shuffle(shuffled)
    assert facts_of_chain(shuffled) == facts_of_chain(events)


@given(histories(), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_profile(history, rnd: random.Random) -> None:
    _, events = history
    now = end_of(events)
    shuffled = events[:]
    rnd.shuffle(shuffled)
    assert shown(ledger_of(shuffled, now), now) == shown(ledger_of(events, now), now)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[StoreEvent], list[datetime]]:
    """A history delivered the way stores deliver: mostly in order, some late, some swapped,
    some sent ahead; with wake-ups in between."""
    _, events = draw(histories())
    delivered = []
    for e in events:
        delay = draw(st.sampled_from([0, 0, 0, 1, 5, 30, 24 * 40, -1]))
        delivered.append(replace(e, received_at=e.signed_at + timedelta(hours=delay)))
    delivered.sort(key=lambda e: e.received_at)
    if len(delivered) > 1 and draw(st.booleans()):
        i = draw(st.integers(0, len(delivered) - 2))
        delivered[i], delivered[i + 1] = delivered[i + 1], delivered[i]
    ticks = draw(st.lists(st.integers(0, len(delivered)), max_size=3))
    wakes = sorted({delivered[min(t, len(delivered) - 1)].received_at for t in ticks})
    return delivered, wakes


def _through(ledger: Ledger, delivered: list[StoreEvent], wakes: list[datetime]) -> Ledger:
    ledger.submit(create(ALICE))
    for event in delivered:
        while wakes and wakes[0] <= event.received_at:
            ledger.advance(wakes.pop(0))
        ledger.submit(event)
    ledger.advance(end_of(delivered) + timedelta(days=400))
    return ledger


@given(deliveries())
def test_reading_the_tail_equals_reading_everything_from_the_beginning(delivery) -> None:
    delivered, wakes = delivery
    tail = _through(Ledger(), delivered, list(wakes))
    everything = _through(Ledger(from_scratch=True), delivered, list(wakes))
    assert tail.events == everything.events
    assert tail.published == everything.published
    assert tail.profiles == everything.profiles
    assert tail.chains == everything.chains


@given(histories(), st.data())
def test_a_duplicate_is_a_no_op(history, data: st.DataObject) -> None:
    _, events = history
    now = end_of(events)
    ledger = ledger_of(events, now)
    chains, profiles, emitted = dict(ledger.chains), dict(ledger.profiles), list(ledger.events)
    duplicate = data.draw(st.sampled_from(events))
    ledger.submit(arriving_at([duplicate], now)[0])
    assert ledger.chains == chains
    assert ledger.profiles == profiles
    assert ledger.events == emitted


def _restarted(ledger: Ledger) -> Ledger:
    """Every fold's state and facts through the records a changelog holds."""

    def through(kind: str, state: Any, beside: dict[bytes, Any]) -> Any:
        layout = LAYOUTS[kind]
        written = {sub: codecs.encode(record) for sub, record in beside.items()}
        return layout.assemble(layout.decode_head(layout.encode_head(state)), written)

    restarted = Ledger()
    for key, book in ledger.facts.items():
        beside = {
            **{codecs.TRANSACTION + t.encode(): f for t, f in book.transactions.items()},
            **{codecs.OBSERVATION + e.encode(): o for e, o in book.observations.items()},
        }
        restarted.chains[key] = through("chains", ledger.chains[key], beside)
        layout = LAYOUTS["chains"]
        copy = restarted.facts.setdefault(key, FactBook())
        copy.keep(
            [
                layout.decode(codecs.TRANSACTION, codecs.encode(f))
                for f in book.transactions.values()
            ],
            [
                layout.decode(codecs.OBSERVATION, codecs.encode(o))
                for o in book.observations.values()
            ],
        )
    for pid, state in ledger.profiles.items():
        beside = {codecs.PAYMENT + p.key.encode(): p for p in state.payments.values()}
        restarted.profiles[pid] = through("profiles", state, beside)
    for cid, identity in ledger.identities.items():
        restarted.identities[cid] = through("identities", identity, {})
    return restarted


@given(histories(), st.data())
def test_folding_everything_equals_a_restart_then_the_rest(history, data: st.DataObject) -> None:
    _, events = history
    cut = data.draw(st.integers(0, len(events)))
    whole = Ledger()
    whole.submit(create(ALICE))
    whole.submit_all(events)
    part = Ledger()
    part.submit(create(ALICE))
    part.submit_all(events[:cut])
    seen = len(part.events)
    resumed = _restarted(part)
    resumed.submit_all(events[cut:])
    now = end_of(events)
    whole.advance(now)
    resumed.advance(now)
    assert resumed.profiles == whole.profiles
    assert resumed.chains == whole.chains
    assert resumed.events == whole.events[seen:]
    assert shown(resumed, now) == shown(whole, now)


@given(histories(), st.integers(0, 24 * 120))
def test_invariants_hold_at_any_instant(history, hour: int) -> None:
    chain, events = history
    delivered = end_of(events)
    now = delivered + timedelta(hours=hour)
    ledger = ledger_of(events, delivered)
    view = ledger.view(ALICE, now)
    expected = sum(
        (t.revenue_usd for t in chain.transactions.values() if t.purchased_at <= now),
        Decimal(0),
    )
    assert view.revenue.total_revenue_usd == expected >= 0
    assert 0 <= view.revenue.total_proceeds_usd <= view.revenue.total_revenue_usd
    leeway = DEFAULT_CONFIG.renewal_leeway
    for level in view.access_levels:
        # Past its expiry only while awaiting the renewal (learned at `delivered`).
        awaiting = (
            level.will_renew
            and level.expires_at is not None
            and now < max(level.expires_at, delivered) + leeway
        )
        assert level.is_active == is_active_at(level, now) or (level.is_active and awaiting)
    if view.next_wakeup_at is not None:
        assert view.next_wakeup_at > now
