"""Parent and inheritor profiles, and the three sharing policies (seed 004, DOMAIN.md 1)."""

from __future__ import annotations

from uuid import UUID

import pytest

from processors.core.config import FoldConfig
from processors.core.ledger import Ledger
from schemas.commands import DeleteProfile, RestorePurchases, TransferAccess
from schemas.enums import SharingPolicy
from tests.builders import ALICE, BOB, CAROL, T0, Chain, day
from tests.helpers import create, events_of, run, story

ALU = "access_level_updated"


def restore(profile_id: UUID, chain: Chain, at_day: float) -> RestorePurchases:
    return RestorePurchases(
        command_id=f"restore-{profile_id}-{at_day}",
        issued_at=day(at_day),
        profile_id=profile_id,
        chain_keys=(chain.key,),
    )


def has_access(ledger: Ledger, profile_id: UUID, now_day: float) -> bool:
    levels = ledger.view(profile_id, day(now_day)).access_levels
    return any(level.is_active for level in levels)


def policy_ledger(
    policy: SharingPolicy, alice_identified: bool = True, bob_identified: bool = True
) -> tuple[Ledger, Chain]:
    chain = Chain()
    ledger = Ledger(config=FoldConfig(sharing_policy=policy))
    ledger.submit(create(ALICE, "alice" if alice_identified else None))
    ledger.submit(create(BOB, "bob" if bob_identified else None))
    ledger.submit(chain.buy("t1", day(0), day(30)))
    ledger.submit(restore(BOB, chain, 5))
    return ledger, chain


def test_shared_policy_gives_the_restoring_profile_access_too() -> None:
    ledger, _ = policy_ledger(SharingPolicy.SHARED)
    assert has_access(ledger, ALICE, 6)
    assert has_access(ledger, BOB, 6)
    assert story(ledger, BOB) == [ALU]  # an inheritor sees access updates only
    bob = ledger.view(BOB, day(6))
    assert bob.access_levels[0].shared_from_profile_id == ALICE
    assert [link.profile_id for link in ledger.view(ALICE, day(6)).inheritors] == [BOB]
    assert [link.profile_id for link in bob.parents] == [ALICE]


def test_transactional_events_appear_only_on_the_parent() -> None:
    ledger, chain = policy_ledger(SharingPolicy.SHARED)
    ledger.submit(chain.buy("t2", day(30), day(60)))
    ledger.submit(chain.auto_renew(False, day(40)))
    assert "subscription_renewed" in story(ledger, ALICE)
    assert set(story(ledger, BOB)) == {ALU}
    assert ledger.view(BOB, day(41)).revenue.total_revenue_usd == 0


def test_transfer_policy_moves_access_between_identified_profiles() -> None:
    ledger, _ = policy_ledger(SharingPolicy.TRANSFER)
    assert not has_access(ledger, ALICE, 6)
    assert has_access(ledger, BOB, 6)
    assert story(ledger, ALICE)[-1] == ALU  # the revoke
    assert story(ledger, BOB) == [ALU]  # the grant
    # Transactions stay with the parent that bought them.
    assert ledger.view(ALICE, day(6)).revenue.total_revenue_usd > 0


@pytest.mark.parametrize(("alice_identified", "bob_identified"), [(False, True), (True, False)])
def test_transfer_policy_shares_when_either_profile_is_anonymous(
    alice_identified: bool, bob_identified: bool
) -> None:
    ledger, _ = policy_ledger(SharingPolicy.TRANSFER, alice_identified, bob_identified)
    assert has_access(ledger, ALICE, 6)
    assert has_access(ledger, BOB, 6)


def test_disabled_policy_keeps_access_with_the_first_identified_profile() -> None:
    ledger, _ = policy_ledger(SharingPolicy.DISABLED)
    assert has_access(ledger, ALICE, 6)
    assert not has_access(ledger, BOB, 6)
    assert story(ledger, BOB) == []


def test_disabled_policy_still_shares_between_anonymous_profiles() -> None:
    ledger, _ = policy_ledger(SharingPolicy.DISABLED, alice_identified=False, bob_identified=False)
    assert has_access(ledger, ALICE, 6)
    assert has_access(ledger, BOB, 6)


def test_deleting_the_holder_frees_the_chain_for_the_next_claimant() -> None:
    ledger, chain = policy_ledger(SharingPolicy.DISABLED)
    ledger.submit(DeleteProfile(command_id="del-alice", issued_at=day(7), profile_id=ALICE))
    ledger.submit(chain.auto_renew(False, day(8)))
    assert has_access(ledger, BOB, 9)
    # Bob is the parent now: the chain's transactional events appear on his profile.
    assert "subscription_renewal_cancelled" in story(ledger, BOB)


def test_transfer_command_moves_purchases_and_marks_both_profiles() -> None:
    chain = Chain()
    ledger = run([chain.buy("t1", day(0), day(30))], day(1), profiles=(ALICE, CAROL))
    ledger.submit(
        TransferAccess(command_id="move", issued_at=day(2), profile_id=ALICE, to_profile_id=CAROL)
    )
    assert not has_access(ledger, ALICE, 3)
    assert has_access(ledger, CAROL, 3)
    for profile_id in (ALICE, CAROL):
        assert "entitlements_transferred" in story(ledger, profile_id)
    # The purchase moved with the access: revenue follows it.
    assert ledger.view(CAROL, day(3)).revenue.total_revenue_usd > 0
    assert ledger.view(ALICE, day(3)).revenue.total_revenue_usd == 0


def test_restore_before_any_store_event_is_kept_and_applied_later() -> None:
    chain = Chain(profile=None)
    ledger = Ledger()
    ledger.submit(create(BOB))
    ledger.submit(restore(BOB, chain, 0))
    ledger.submit(chain.buy("t1", day(1), day(31)))
    assert has_access(ledger, BOB, 2)
    assert "subscription_renewed" in story(ledger, BOB) or "subscription_started" in story(
        ledger, BOB
    )


def test_a_store_event_for_an_unknown_profile_creates_it() -> None:
    chain = Chain(profile=CAROL)
    ledger = Ledger()
    ledger.submit(chain.buy("t1", day(0), day(30)))
    created = events_of(ledger, CAROL)[0]
    assert (created.event_type.value, created.event_datetime) == ("profile_created", T0)
    assert has_access(ledger, CAROL, 1)
