"""Adapty's event flows (facts 1.6): the events each flow emits and the labels it leaves."""

from __future__ import annotations

from decimal import Decimal

import pytest

from processors.core.config import FoldConfig
from schemas.base import replace
from schemas.enums import Store
from tests.builders import Chain, E, R, day
from tests.helpers import events_of, labels, run, story

ALU = "access_level_updated"


def test_initial_purchase_without_trial_starts_subscription_and_grants_access(chain: Chain) -> None:
    ledger = run([chain.buy("t1", day(0), day(30), kind=E.SUBSCRIPTION_STARTED)], day(10))
    assert story(ledger) == ["subscription_started", ALU]
    assert labels(ledger, day(10)) == ("subscribed", "active_subscriber")
    (level,) = ledger.view(chain.profile, day(10)).access_levels
    assert (level.access_level_id, level.is_active, level.expires_at) == ("premium", True, day(30))


def test_renewal_emits_subscription_renewed(chain: Chain) -> None:
    ledger = run([chain.buy("t1", day(0), day(30)), chain.buy("t2", day(30), day(60))], day(40))
    assert story(ledger) == ["subscription_started", ALU, "subscription_renewed", ALU]
    assert ledger.view(chain.profile, day(40)).revenue.total_revenue_usd == Decimal("19.98")


def test_cancel_keeps_access_until_period_end_then_expires(chain: Chain) -> None:
    inputs = [chain.buy("t1", day(0), day(30)), chain.auto_renew(False, day(10))]
    ledger = run(inputs, day(20))
    assert story(ledger) == ["subscription_started", ALU, "subscription_renewal_cancelled", ALU]
    assert labels(ledger, day(20)) == ("auto_renew_off", "cancelling")
    ledger.advance(day(40))
    assert story(ledger)[4:] == ["subscription_expired", ALU]
    expired = events_of(ledger)[-2]
    assert (expired.event_datetime, expired.cancellation_reason) == (
        day(30),
        R.VOLUNTARILY_CANCELLED,
    )
    assert labels(ledger, day(40)) == ("subscription_cancelled", "churned")


def test_refund_removes_access_and_subtracts_revenue(chain: Chain) -> None:
    ledger = run([chain.buy("t1", day(0), day(30)), chain.refund("t1", day(5))], day(6))
    assert story(ledger) == [
        "subscription_started",
        ALU,
        "subscription_refunded",
        "subscription_expired",
        ALU,
    ]
    view = ledger.view(chain.profile, day(6))
    assert view.revenue.total_revenue_usd == 0
    assert not view.access_levels[0].is_active
    assert labels(ledger, day(6)) == ("subscription_cancelled", "refunded")


def test_stripe_immediate_cancel_ends_everything_at_one_instant() -> None:
    chain = Chain(store=Store.STRIPE, otid="sub_1")
    start = chain.buy("in_1", day(0), day(30))
    cancel = chain.event(
        E.SUBSCRIPTION_EXPIRED,
        day(10),
        replace(chain.transactions["in_1"], ended_at=day(10)),
        chain.auto_renew(False, day(10)).renewal,
    )
    ledger = run([start, cancel], day(11))
    assert story(ledger) == [
        "subscription_started",
        ALU,
        "subscription_renewal_cancelled",
        "subscription_expired",
        ALU,
    ]
    assert {e.event_datetime for e in events_of(ledger)[-3:]} == {day(10)}


def test_termination_cuts_the_running_period_but_not_a_later_one() -> None:
    chain = Chain(store=Store.STRIPE, otid="sub_2")
    inputs = [chain.buy("in_1", day(0), day(30)), chain.terminated(day(10))]
    ledger = run(inputs, day(11))
    assert story(ledger) == [
        "subscription_started",
        ALU,
        "subscription_renewal_cancelled",
        "subscription_expired",
        ALU,
    ]
    assert events_of(ledger)[-2].cancellation_reason is R.VOLUNTARILY_CANCELLED
    assert labels(ledger, day(11)) == ("subscription_cancelled", "churned")
    ledger.submit(chain.buy("in_2", day(40), day(70)))
    assert labels(ledger, day(41)) == ("subscribed", "active_subscriber")
    assert ledger.view(chain.profile, day(41)).access_levels[0].expires_at == day(70)


def test_repurchase_after_expiry_in_the_same_chain_is_a_renewal(chain: Chain) -> None:
    inputs = [
        chain.buy("t1", day(0), day(30)),
        chain.auto_renew(False, day(10)),
        chain.buy("t2", day(45), day(75)),
    ]
    ledger = run(inputs, day(50))
    assert story(ledger) == [
        "subscription_started",
        ALU,
        "subscription_renewal_cancelled",
        ALU,
        "subscription_expired",
        ALU,
        "subscription_renewed",
        ALU,
    ]
    assert labels(ledger, day(50)) == ("subscribed", "active_subscriber")


def test_android_pause_revokes_at_period_end_and_resume_renews() -> None:
    chain = Chain(store=Store.PLAY_STORE, otid="GPA.1")
    ledger = run([chain.buy("o1", day(0), day(30)), chain.paused(day(30), day(60))], day(35))
    assert story(ledger) == ["subscription_started", ALU, "subscription_paused", ALU]
    assert labels(ledger, day(35)) == ("subscription_cancelled", "churned")
    ledger.submit(chain.buy("o2", day(60), day(90)))
    assert story(ledger)[4:] == ["subscription_renewed", ALU]
    assert labels(ledger, day(61)) == ("subscribed", "active_subscriber")


def test_billing_issue_with_grace_keeps_access_and_recovery_renews(chain: Chain) -> None:
    inputs = [chain.buy("t1", day(0), day(30)), chain.billing_issue(day(30), grace_until=day(36))]
    ledger = run(inputs, day(33))
    assert story(ledger) == [
        "subscription_started",
        ALU,
        "billing_issue_detected",
        "entered_grace_period",
        ALU,
    ]
    assert labels(ledger, day(33)) == ("grace_period", "grace_period")
    level = ledger.view(chain.profile, day(33)).access_levels[0]
    assert (level.is_active, level.is_in_grace_period, level.expires_at) == (True, True, day(36))
    ledger.submit(chain.buy("t2", day(34), day(64), received=day(34)))
    ledger.advance(day(40))
    assert story(ledger)[5:] == ["subscription_renewed", ALU]
    assert labels(ledger, day(40)) == ("subscribed", "active_subscriber")


def test_billing_issue_with_grace_and_no_recovery_expires_at_grace_end(chain: Chain) -> None:
    inputs = [chain.buy("t1", day(0), day(30)), chain.billing_issue(day(30), grace_until=day(36))]
    ledger = run(inputs, day(40))
    assert story(ledger) == [
        "subscription_started",
        ALU,
        "billing_issue_detected",
        "entered_grace_period",
        ALU,
        "subscription_expired",
        ALU,
    ]
    expired = events_of(ledger)[-2]
    assert (expired.event_datetime, expired.cancellation_reason) == (day(36), R.BILLING_ERROR)
    assert labels(ledger, day(40)) == ("billing_issue", "billing_issue")
    # The store gives up retrying: the lapse is not told twice.
    ledger.submit(chain.expired(day(90), R.BILLING_ERROR))
    assert story(ledger)[7:] == []
    assert labels(ledger, day(90)) == ("subscription_cancelled", "churned")


def test_billing_issue_without_grace_expires_at_once(chain: Chain) -> None:
    ledger = run([chain.buy("t1", day(0), day(30)), chain.billing_issue(day(30))], day(31))
    assert story(ledger) == [
        "subscription_started",
        ALU,
        "billing_issue_detected",
        "subscription_expired",
        ALU,
    ]
    assert events_of(ledger)[-2].cancellation_reason is R.BILLING_ERROR
    assert labels(ledger, day(31)) == ("billing_issue", "billing_issue")
    assert not ledger.view(chain.profile, day(31)).access_levels[0].is_active


def test_trial_converts_on_first_paid_period(chain: Chain) -> None:
    # The store sends the first paid period ahead: held until due.
    paid = chain.buy("t2", day(7), day(37), received=day(3))
    ledger = run([chain.buy("t1", day(0), day(7), trial=True), paid], day(3))
    assert labels(ledger, day(3)) == ("active_trial", "active_subscriber")
    ledger.advance(day(10))
    assert story(ledger) == ["trial_started", ALU, "trial_converted", ALU]
    assert labels(ledger, day(10)) == ("subscribed", "active_subscriber")


def test_trial_cancelled_expires_at_trial_end_example_a(chain: Chain) -> None:
    inputs = [chain.buy("t1", day(0), day(6), trial=True), chain.auto_renew(False, day(3))]
    ledger = run(inputs, day(5))
    assert labels(ledger, day(5)) == ("active_trial", "cancelling")
    ledger.advance(day(10))
    assert story(ledger) == [
        "trial_started",
        ALU,
        "trial_renewal_cancelled",
        ALU,
        "trial_expired",
        ALU,
    ]
    assert [
        e.event_datetime for e in events_of(ledger) if e.event_type.value.startswith("trial")
    ] == [day(0), day(3), day(6)]
    assert labels(ledger, day(10)) == ("trial_cancelled", "churned")


def test_cancel_after_conversion_example_b(chain: Chain) -> None:
    inputs = [
        chain.buy("t1", day(0), day(6), trial=True),
        chain.buy("t2", day(6), day(30)),
        chain.auto_renew(False, day(9)),
    ]
    ledger = run(inputs, day(31))
    journey = [t for t in story(ledger) if t != ALU]
    assert journey == [
        "trial_started",
        "trial_converted",
        "subscription_renewal_cancelled",
        "subscription_expired",
    ]


def test_trial_billing_failure_then_recovery_converts(chain: Chain) -> None:
    inputs = [
        chain.buy("t1", day(0), day(7), trial=True),
        chain.billing_issue(day(7), grace_until=day(10)),
        chain.buy("t2", day(9), day(39)),
    ]
    ledger = run(inputs, day(12))
    assert [t for t in story(ledger) if t != ALU] == [
        "trial_started",
        "billing_issue_detected",
        "entered_grace_period",
        "trial_converted",
    ]


def test_trial_billing_failure_without_recovery_expires_the_trial(chain: Chain) -> None:
    inputs = [chain.buy("t1", day(0), day(7), trial=True), chain.billing_issue(day(7))]
    ledger = run(inputs, day(8))
    assert [t for t in story(ledger) if t != ALU] == [
        "trial_started",
        "billing_issue_detected",
        "trial_expired",
    ]
    assert events_of(ledger)[-2].cancellation_reason is R.BILLING_ERROR


def test_purchase_after_expired_trial_converts_the_trial(chain: Chain) -> None:
    inputs = [
        chain.buy("t1", day(0), day(7), trial=True),
        chain.auto_renew(False, day(2)),
        chain.buy("t2", day(20), day(50)),
    ]
    ledger = run(inputs, day(21))
    assert [t for t in story(ledger) if t != ALU] == [
        "trial_started",
        "trial_renewal_cancelled",
        "trial_expired",
        "trial_converted",
    ]


def test_upgrade_expires_old_product_and_starts_new_with_refund(chain: Chain) -> None:
    # As the App Store tells it: the new product's transaction, then the old one's refund.
    old = chain.buy("t1", day(0), day(30))
    new = chain.buy("t2", day(10), day(375), product="premium.yearly", price="59.99")
    chain.transactions["t1"] = replace(chain.transactions["t1"], is_upgraded=True)
    refund = chain.refund("t1", day(10), reason=R.UPGRADED)
    ledger = run([old, new, refund], day(11))
    assert story(ledger) == [
        "subscription_started",
        ALU,
        "subscription_expired",
        "subscription_started",
        ALU,
        "subscription_refunded",
    ]
    expired, refunded = (
        e
        for e in events_of(ledger)
        if e.event_type in (E.SUBSCRIPTION_REFUNDED, E.SUBSCRIPTION_EXPIRED)
    )
    assert expired.cancellation_reason is refunded.cancellation_reason is R.UPGRADED
    view = ledger.view(chain.profile, day(11))
    assert (view.access_levels[0].is_active, view.access_levels[0].store_product_id) == (
        True,
        "premium.yearly",
    )
    assert view.revenue.total_revenue_usd == Decimal("59.99")


def test_downgrade_at_renewal_replaces_the_product(chain: Chain) -> None:
    inputs = [
        chain.buy("t1", day(0), day(365), product="premium.yearly"),
        chain.buy("t2", day(365), day(395), product="premium.monthly"),
    ]
    ledger = run(inputs, day(366))
    assert [t for t in story(ledger) if t != ALU] == [
        "subscription_started",
        "subscription_expired",
        "subscription_started",
    ]
    assert events_of(ledger)[-3].cancellation_reason is R.NEW_SUBSCRIPTION_REPLACE


def test_refund_reversal_restores_access_and_revenue(chain: Chain) -> None:
    inputs = [
        chain.buy("t1", day(0), day(30)),
        chain.refund("t1", day(5)),
        chain.refund_reversed("t1", day(8)),
    ]
    ledger = run(inputs, day(9))
    assert [t for t in story(ledger) if t != ALU] == [
        "subscription_started",
        "subscription_refunded",
        "subscription_expired",
        "refund_reversed",
    ]
    view = ledger.view(chain.profile, day(9))
    assert view.revenue.total_revenue_usd == Decimal("9.99")
    assert labels(ledger, day(9)) == ("subscribed", "active_subscriber")


def test_a_refund_by_transaction_id_alone_revokes_and_its_reversal_restores(
    chain: Chain,
) -> None:
    inputs = [chain.buy("t1", day(0), day(30)), chain.refund_by_id("t1", day(5))]
    ledger = run(inputs, day(6))
    assert [t for t in story(ledger) if t != ALU] == [
        "subscription_started",
        "subscription_refunded",
        "subscription_expired",
    ]
    assert ledger.view(chain.profile, day(6)).revenue.total_revenue_usd == 0
    ledger.submit(chain.reversal_by_id("t1", day(7)))
    assert story(ledger)[-2] == "refund_reversed"
    assert labels(ledger, day(8)) == ("subscribed", "active_subscriber")


def test_an_extension_by_transaction_id_moves_the_expiry(chain: Chain) -> None:
    ledger = run(
        [chain.buy("t1", day(0), day(30)), chain.extended_by_id("t1", day(20), day(45))], day(40)
    )
    assert ledger.view(chain.profile, day(40)).access_levels[0].expires_at == day(45)
    assert "subscription_deferred" in story(ledger)


def test_a_patch_older_than_the_full_version_loses() -> None:
    chain = Chain()
    buy = chain.buy("t1", day(0), day(30))
    stale = replace(chain.refund_by_id("t1", day(1)), signed_at=day(-1))
    ledger = run([buy, stale], day(2))
    assert ledger.view(chain.profile, day(2)).revenue.total_revenue_usd == Decimal("9.99")


def test_deferral_extends_access_without_a_new_charge() -> None:
    chain = Chain(store=Store.PLAY_STORE, otid="GPA.2")
    ledger = run(
        [chain.buy("o1", day(0), day(30)), chain.deferred("o1", day(20), day(40))], day(35)
    )
    assert story(ledger) == ["subscription_started", ALU, "subscription_deferred", ALU]
    view = ledger.view(chain.profile, day(35))
    assert view.access_levels[0].expires_at == day(40)
    assert view.revenue.total_revenue_usd == Decimal("9.99")


def test_one_time_purchase_grants_lifetime_access_and_refund_takes_it(chain: Chain) -> None:
    ledger = run([chain.one_time("ot1", day(1))], day(2))
    assert story(ledger) == ["non_subscription_purchase", ALU]
    assert labels(ledger, day(2)) == ("never_subscribed", "purchased")
    assert ledger.view(chain.profile, day(2)).access_levels[0].is_lifetime
    ledger.submit(chain.refund("ot1", day(3)))
    assert story(ledger)[2:] == ["non_subscription_purchase_refunded", ALU]
    assert labels(ledger, day(3)) == ("never_subscribed", "refunded")


def test_consumable_purchase_counts_revenue_but_grants_no_access(chain: Chain) -> None:
    ledger = run([chain.one_time("coins1", day(1), price="1.99", consumable=True)], day(2))
    assert story(ledger) == ["non_subscription_purchase"]
    view = ledger.view(chain.profile, day(2))
    assert (view.access_levels, view.revenue.total_revenue_usd) == ((), Decimal("1.99"))


def test_future_dated_renewal_is_published_at_once_but_counts_only_when_due(chain: Chain) -> None:
    ahead = chain.buy("t2", day(30), day(60), received=day(25))
    ledger = run([chain.buy("t1", day(0), day(30)), ahead], day(27))
    renewed = [e for e in events_of(ledger) if e.event_type is E.SUBSCRIPTION_RENEWED]
    assert [(e.is_future_dated, e.event_datetime) for e in renewed] == [(True, day(30))]
    assert ledger.view(chain.profile, day(27)).revenue.total_revenue_usd == Decimal("9.99")
    assert ledger.view(chain.profile, day(27)).next_wakeup_at == day(30)
    ledger.advance(day(31))
    assert ledger.view(chain.profile, day(31)).revenue.total_revenue_usd == Decimal("19.98")
    # Due exactly at the old expiry: no lapse, no second renewal event.
    assert "subscription_expired" not in story(ledger)
    assert story(ledger).count("subscription_renewed") == 1


@pytest.mark.parametrize(
    ("price", "proceeds", "shown"),
    [("9.99", "6.9930", "9.99"), ("0.01", "0.0070", "0.01"), ("1234.5678", "864.1975", "1234.57")],
)
def test_proceeds_take_the_store_commission_rounded_once(
    chain: Chain, price: str, proceeds: str, shown: str
) -> None:
    ledger = run([chain.buy("t1", day(0), day(30), price=price)], day(1))
    revenue = ledger.view(chain.profile, day(1)).revenue
    # Proceeds to 4 places (half-even), revenue shown with exactly 2 (DOMAIN.md 6).
    assert (str(revenue.total_proceeds_usd), str(revenue.total_revenue_usd)) == (proceeds, shown)


def test_stripe_takes_no_store_commission() -> None:
    chain = Chain(store=Store.STRIPE, otid="sub_1")
    ledger = run([chain.buy("in_1", day(0), day(30), price="9.99")], day(1))
    revenue = ledger.view(chain.profile, day(1)).revenue
    assert (str(revenue.total_revenue_usd), str(revenue.total_proceeds_usd)) == ("9.99", "9.9900")
    config = FoldConfig(stripe_fee_rate=Decimal("0.029"))
    charged = run([chain.buy("in_2", day(0), day(30), price="9.99")], day(1), config)
    assert str(charged.view(chain.profile, day(1)).revenue.total_proceeds_usd) == "9.7003"


def test_an_empty_profile_shows_money_with_its_decimals(chain: Chain) -> None:
    revenue = run([], day(1)).view(chain.profile, day(1)).revenue
    assert (str(revenue.total_revenue_usd), str(revenue.total_proceeds_usd)) == ("0.00", "0.0000")


def test_renewals_after_a_year_of_paid_service_earn_the_reduced_rate(chain: Chain) -> None:
    inputs = [chain.buy(f"t{m}", day(30 * m), day(30 * (m + 1))) for m in range(14)]
    ledger = run(inputs, day(30 * 14 - 1))
    renewals = [e for e in events_of(ledger) if e.proceeds_usd is not None]
    assert [e.rate_after_first_year for e in renewals] == [False] * 13 + [True]
    assert renewals[-1].proceeds_usd == Decimal("9.99") * Decimal("0.85")


def test_sandbox_money_is_kept_apart() -> None:
    from schemas.enums import Environment

    chain = Chain(environment=Environment.SANDBOX)
    revenue = run([chain.buy("t1", day(0), day(30))], day(1)).view(chain.profile, day(1)).revenue
    assert (revenue.total_revenue_usd, revenue.sandbox_total_revenue_usd) == (0, Decimal("9.99"))
