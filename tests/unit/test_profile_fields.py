"""The profile fields users read first (DOMAIN.md 7): customer since, last seen."""

from __future__ import annotations

from processors.core.ledger import Ledger
from schemas.commands import UpdateProfile
from tests.builders import ALICE, Chain, day
from tests.helpers import create


def test_customer_since_is_the_original_purchase_when_it_came_before_the_profile() -> None:
    chain = Chain()
    bought = chain.buy("t1", day(0), day(30))
    for inputs in ([create(ALICE, at=day(20)), bought], [bought, create(ALICE, at=day(20))]):
        ledger = Ledger()
        ledger.submit_all(inputs)
        assert ledger.view(ALICE, day(25)).created_at == day(0)


def test_customer_since_does_not_depend_on_which_message_reached_the_profile_first() -> None:
    chain = Chain()
    bought = chain.buy("t1", day(5), day(35), received=day(6))
    early_create = create(ALICE, at=day(1))
    one, other = Ledger(), Ledger()
    one.submit_all([early_create, bought])
    other.submit_all([bought, early_create])
    assert one.view(ALICE, day(10)).created_at == other.view(ALICE, day(10)).created_at == day(1)


def test_last_seen_is_the_latest_app_side_call() -> None:
    ledger = Ledger()
    ledger.submit(create(ALICE, at=day(1)))
    assert ledger.view(ALICE, day(1)).last_seen_at == day(1)
    ledger.submit(UpdateProfile(command_id="u1", issued_at=day(3), profile_id=ALICE))
    assert ledger.view(ALICE, day(4)).last_seen_at == day(3)
    ledger.submit(Chain().buy("t1", day(5), day(35)))
    assert ledger.view(ALICE, day(6)).last_seen_at == day(3)


def test_a_subscription_and_its_access_level_state_the_same_cancellation_reason() -> None:
    chain = Chain()
    ledger = Ledger()
    ledger.submit_all(
        [create(ALICE), chain.buy("t1", day(0), day(30)), chain.auto_renew(False, day(5))]
    )
    view = ledger.view(ALICE, day(10))
    (subscription,) = view.subscriptions
    (level,) = view.access_levels
    assert subscription.cancellation_reason == level.cancellation_reason is not None
