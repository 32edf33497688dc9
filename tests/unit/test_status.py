"""DOMAIN.md section 4: every row of both label tables, and precedence across chains."""

from __future__ import annotations

import pytest

from schemas.messages import Input
from tests.builders import Chain, day
from tests.helpers import labels, run


def paid(otid: str, auto_renew: bool = True) -> list[Input]:
    chain = Chain(otid=otid)
    events: list[Input] = [chain.buy(f"{otid}-1", day(0), day(30))]
    if not auto_renew:
        events.append(chain.auto_renew(False, day(1)))
    return events


def trial(otid: str, auto_renew: bool = True, length: float = 7) -> list[Input]:
    chain = Chain(otid=otid)
    events: list[Input] = [chain.buy(f"{otid}-1", day(0), day(length), trial=True)]
    if not auto_renew:
        events.append(chain.auto_renew(False, day(0.5)))
    return events


def grace(otid: str) -> list[Input]:
    chain = Chain(otid=otid)
    return [chain.buy(f"{otid}-1", day(-30), day(0)), chain.billing_issue(day(0), day(6))]


def retry(otid: str) -> list[Input]:
    chain = Chain(otid=otid)
    return [chain.buy(f"{otid}-1", day(-30), day(0)), chain.billing_issue(day(0))]


def ended_paid(otid: str) -> list[Input]:
    chain = Chain(otid=otid)
    return [chain.buy(f"{otid}-1", day(-60), day(-30)), chain.auto_renew(False, day(-40))]


def ended_trial(otid: str) -> list[Input]:
    chain = Chain(otid=otid)
    return [chain.buy(f"{otid}-1", day(-20), day(-13), trial=True)]


def one_time(otid: str, refunded: bool = False) -> list[Input]:
    chain = Chain()
    events: list[Input] = [chain.one_time(otid, day(-1))]
    if refunded:
        events.append(chain.refund(otid, day(-0.5)))
    return events


def refunded_paid(otid: str) -> list[Input]:
    chain = Chain(otid=otid)
    return [chain.buy(f"{otid}-1", day(-2), day(28)), chain.refund(f"{otid}-1", day(-1))]


NOW = day(1)


@pytest.mark.parametrize(
    ("inputs", "state", "status"),
    [
        pytest.param(paid("a"), "subscribed", "active_subscriber", id="paid, auto-renew on"),
        pytest.param(trial("a"), "active_trial", "active_subscriber", id="trial"),
        pytest.param(
            trial("a", auto_renew=False), "active_trial", "cancelling", id="trial, auto-renew off"
        ),
        pytest.param(
            paid("a", auto_renew=False), "auto_renew_off", "cancelling", id="paid, auto-renew off"
        ),
        pytest.param(grace("a"), "grace_period", "grace_period", id="grace period"),
        pytest.param(retry("a"), "billing_issue", "billing_issue", id="billing retry"),
        pytest.param(ended_trial("a"), "trial_cancelled", "churned", id="trial ended"),
        pytest.param(ended_paid("a"), "subscription_cancelled", "churned", id="paid ended"),
        pytest.param(refunded_paid("a"), "subscription_cancelled", "refunded", id="refunded"),
        pytest.param(one_time("ot"), "never_subscribed", "purchased", id="one-time only"),
        pytest.param(
            one_time("ot", refunded=True), "never_subscribed", "refunded", id="one-time refunded"
        ),
        pytest.param([], "never_subscribed", "never_purchased", id="nothing"),
    ],
)
def test_each_row_of_the_label_tables(inputs: list[Input], state: str, status: str) -> None:
    assert labels(run(inputs, NOW), NOW) == (state, status)


@pytest.mark.parametrize(
    ("inputs", "state", "status"),
    [
        pytest.param(
            [*paid("a"), *trial("b")],
            "subscribed",
            "active_subscriber",
            id="subscribed beats active trial",
        ),
        pytest.param(
            [*trial("a"), *paid("b", auto_renew=False)],
            "active_trial",
            "active_subscriber",
            id="active trial beats auto-renew off",
        ),
        pytest.param(
            [*paid("a", auto_renew=False), *grace("b")],
            "auto_renew_off",
            "cancelling",
            id="auto-renew off beats grace",
        ),
        pytest.param(
            [*grace("a"), *retry("b")],
            "grace_period",
            "grace_period",
            id="grace beats billing issue",
        ),
        pytest.param(
            [*retry("a"), *ended_paid("b")],
            "billing_issue",
            "billing_issue",
            id="billing issue beats ended",
        ),
        pytest.param(
            [*ended_paid("a"), *ended_trial("b")],
            "trial_cancelled",
            "churned",
            id="the chain that ended last decides: a trial",
        ),
        pytest.param(
            [*ended_trial("a"), *refunded_paid("b")],
            "subscription_cancelled",
            "refunded",
            id="the chain that ended last decides: paid",
        ),
        pytest.param(
            [*one_time("ot"), *ended_paid("a")],
            "subscription_cancelled",
            "churned",
            id="an ended subscription is churned, not only one-time purchases",
        ),
    ],
)
def test_first_matching_row_wins_across_chains(
    inputs: list[Input], state: str, status: str
) -> None:
    assert labels(run(inputs, NOW), NOW) == (state, status)
