"""The renewal leeway (DOMAIN.md 3): no false expiry while the store's renewal is on its way."""

from __future__ import annotations

from datetime import timedelta

from processors.core.config import FoldConfig
from tests.builders import Chain, R, day
from tests.helpers import events_of, labels, run, story

ALU = "access_level_updated"
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def test_a_renewal_reported_minutes_after_the_expiry_leaves_no_expiry(chain: Chain) -> None:
    first = chain.buy("t1", day(0), day(30))
    ledger = run([first], day(30) + 30 * MINUTE)
    assert labels(ledger, day(30) + 30 * MINUTE) == ("subscribed", "active_subscriber")
    assert "subscription_expired" not in story(ledger)
    renewal = chain.buy("t2", day(30), day(60), received=day(30) + 40 * MINUTE)
    ledger.submit(renewal)
    ledger.advance(day(40))
    assert story(ledger) == ["subscription_started", ALU, "subscription_renewed", ALU]
    (level,) = ledger.view(chain.profile, day(40)).access_levels
    assert (level.is_active, level.expires_at) == (True, day(60))


def test_a_late_renewal_in_either_order_leaves_no_expiry_and_the_same_profile(chain: Chain) -> None:
    first = chain.buy("t1", day(0), day(30))
    renewal = chain.buy("t2", day(30), day(60), received=day(30) + 40 * MINUTE)
    one_by_one = run([first], day(30) + 20 * MINUTE)
    one_by_one.submit(renewal)
    one_by_one.advance(day(40))
    reversed_order = run([renewal, first], day(40))
    for ledger in (one_by_one, reversed_order):
        assert not {"subscription_expired", "trial_expired"} & set(story(ledger))
    assert reversed_order.view(chain.profile, day(40)) == one_by_one.view(chain.profile, day(40))


def test_without_its_renewal_a_period_ends_once_the_leeway_has_passed(chain: Chain) -> None:
    ledger = run([chain.buy("t1", day(0), day(30))], day(30) + 59 * MINUTE)
    assert labels(ledger, day(30) + 59 * MINUTE)[0] == "subscribed"
    ledger.advance(day(31))
    assert story(ledger) == ["subscription_started", ALU, "subscription_expired", ALU]
    expired = events_of(ledger)[-2]
    assert (expired.event_datetime, expired.cancellation_reason) == (day(30) + HOUR, R.UNKNOWN)
    assert labels(ledger, day(31))[0] != "subscribed"


def test_the_leeway_counts_from_when_the_period_was_learned(chain: Chain) -> None:
    late = chain.buy("t1", day(0), day(30), received=day(30) + 2 * HOUR)
    ledger = run([late], day(30) + 2 * HOUR + 30 * MINUTE)
    assert labels(ledger, day(30) + 2 * HOUR + 30 * MINUTE)[0] == "subscribed"
    ledger.advance(day(31))
    assert events_of(ledger)[-2].event_datetime == day(30) + 3 * HOUR


def test_a_period_with_auto_renew_off_ends_exactly_at_its_expiry(chain: Chain) -> None:
    ledger = run([chain.buy("t1", day(0), day(30)), chain.auto_renew(False, day(10))], day(31))
    expired = [e for e in events_of(ledger) if e.event_type.value == "subscription_expired"]
    assert [(e.event_datetime, e.cancellation_reason) for e in expired] == [
        (day(30), R.VOLUNTARILY_CANCELLED)
    ]


def test_the_store_saying_it_expired_ends_the_leeway_at_once(chain: Chain) -> None:
    ledger = run([chain.buy("t1", day(0), day(30))], day(30) + 10 * MINUTE)
    ledger.submit(chain.expired(day(30) + 5 * MINUTE, R.UNKNOWN))
    ledger.advance(day(30) + 10 * MINUTE)
    assert "subscription_expired" in story(ledger)
    assert labels(ledger, day(30) + 10 * MINUTE)[0] != "subscribed"


def test_a_zero_leeway_ends_an_unrenewed_period_at_its_expiry(chain: Chain) -> None:
    config = FoldConfig(renewal_leeway=timedelta(0))
    ledger = run([chain.buy("t1", day(0), day(30))], day(31), config)
    expired = events_of(ledger)[-2]
    assert (expired.event_datetime, expired.cancellation_reason) == (day(30), R.UNKNOWN)
