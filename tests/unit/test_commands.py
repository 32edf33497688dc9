"""Profile commands (DOMAIN.md 5, 7, 8): what they change, and rejections that change nothing."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from processors.core.ledger import Ledger
from processors.core.profile import evolve_profile
from schemas.base import replace
from schemas.commands import (
    AddNote,
    CreateProfile,
    DeleteNote,
    DeleteProfile,
    EditNote,
    GrantAccessLevel,
    IdentifyProfile,
    RecordEmailEvent,
    RevokeAccessLevel,
    SetCustomAttributes,
    SetTransaction,
    Unsubscribe,
    UpdateProfile,
)
from schemas.enums import EmailEventKind, Store
from schemas.events import TransactionInfo
from schemas.profile import CustomAttribute, ProfileFields
from tests.builders import ALICE, BOB, TRIAL, Chain, day
from tests.helpers import create, run, story

_ids = iter(range(10**9))


def cid() -> str:
    return f"cmd-{next(_ids)}"


def grant(expires: datetime | None, at: float = 1, level: str = "premium") -> GrantAccessLevel:
    return GrantAccessLevel(
        command_id=cid(),
        issued_at=day(at),
        profile_id=ALICE,
        access_level_id=level,
        expires_at=expires,
    )


def revoke(
    at: float, revoke_at: datetime | None = None, level: str = "premium"
) -> RevokeAccessLevel:
    return RevokeAccessLevel(
        command_id=cid(),
        issued_at=day(at),
        profile_id=ALICE,
        access_level_id=level,
        revoke_at=revoke_at,
    )


def rejected(ledger: Ledger) -> list[str]:
    return [r.error_code for r in ledger.rejections]


def unchanged_by(ledger: Ledger, command: object) -> bool:
    """Submit a command that must be rejected; True if the profile stayed as it was."""
    before = ledger.profiles[ALICE]
    count = len(ledger.rejections)
    ledger.submit(command)  # type: ignore[arg-type]
    after = ledger.profiles[ALICE]
    same = replace(after, as_of=before.as_of) == before
    return same and len(ledger.rejections) == count + 1


# --- grants and revokes -------------------------------------------------------------------


def test_lifetime_grant_gives_access_forever() -> None:
    ledger = run([grant(None)], day(1000))
    level = ledger.view(ALICE, day(1000)).access_levels[0]
    assert (level.is_active, level.is_lifetime, level.store.value) == (True, True, "adapty")
    assert story(ledger) == ["access_level_granted", "access_level_updated"]


def test_grant_until_a_date_expires_on_time_without_input() -> None:
    ledger = run([grant(day(10))], day(5))
    assert ledger.view(ALICE, day(5)).access_levels[0].is_active
    ledger.advance(day(11))
    assert not ledger.view(ALICE, day(11)).access_levels[0].is_active
    assert story(ledger)[-1] == "access_level_updated"


def test_grant_stands_beside_store_subscriptions_without_touching_billing(chain: Chain) -> None:
    ledger = run([chain.buy("t1", day(0), day(30)), grant(day(60), at=2)], day(40))
    view = ledger.view(ALICE, day(40))
    assert view.access_levels[0].is_active  # the grant outlasts the subscription
    assert view.subscription_state.value == "subscription_cancelled"
    assert view.revenue.total_revenue_usd == Decimal("9.99")


def test_grant_can_extend_but_never_decrease() -> None:
    ledger = run([grant(day(30))], day(1))
    ledger.submit(grant(day(40), at=2))
    assert ledger.view(ALICE, day(2)).access_levels[0].expires_at == day(40)
    assert unchanged_by(ledger, grant(day(35), at=3))
    assert rejected(ledger) == ["expires_date_error"]


def test_grant_must_expire_in_the_future() -> None:
    ledger = run([], day(1))
    assert unchanged_by(ledger, grant(day(0), at=1))
    assert rejected(ledger) == ["expires_date_error"]


def test_lifetime_grant_cannot_be_shortened() -> None:
    ledger = run([grant(None)], day(1))
    assert unchanged_by(ledger, grant(day(500), at=2))


def test_grant_of_an_unknown_level_is_rejected() -> None:
    ledger = run([], day(1))
    assert unchanged_by(ledger, grant(None, level="gold"))
    assert ledger.rejections[0].message == "Paid access level `gold` does not exist"


def test_revoke_now_ends_access_and_emits_revoked() -> None:
    ledger = run([grant(None), revoke(2)], day(3))
    level = ledger.view(ALICE, day(3)).access_levels[0]
    assert (level.is_active, level.expires_at, level.cancellation_reason.value) == (
        False,
        day(2),
        "adapty_revoked",
    )
    assert story(ledger)[-2:] == ["access_level_revoked", "access_level_updated"]


def test_scheduled_revoke_takes_effect_at_revoke_at(chain: Chain) -> None:
    ledger = run([chain.buy("t1", day(0), day(30)), revoke(2, day(10))], day(5))
    assert ledger.view(ALICE, day(5)).access_levels[0].is_active
    assert ledger.view(ALICE, day(5)).next_wakeup_at == day(10)
    ledger.advance(day(11))
    assert not ledger.view(ALICE, day(11)).access_levels[0].is_active
    # A later purchase brings access back.
    ledger.submit(chain.buy("t2", day(30), day(60)))
    assert ledger.view(ALICE, day(31)).access_levels[0].is_active


def test_revoke_after_the_current_expiry_is_rejected(chain: Chain) -> None:
    ledger = run([chain.buy("t1", day(0), day(30))], day(1))
    assert unchanged_by(ledger, revoke(2, day(31)))
    assert ledger.rejections[0].source == "revoke_at"
    assert rejected(ledger) == ["revocation_date_more_than_expiration_date"]


def test_revoke_of_a_level_the_profile_lacks_is_rejected() -> None:
    ledger = run([], day(1))
    assert unchanged_by(ledger, revoke(1))
    assert rejected(ledger) == ["profile_paid_access_level_does_not_exist"]


# --- profile data ---------------------------------------------------------------------------


def attrs(**values: str | float | None) -> SetCustomAttributes:
    return SetCustomAttributes(
        command_id=cid(),
        issued_at=day(1),
        profile_id=ALICE,
        custom_attributes=tuple(CustomAttribute(key=k, value=v) for k, v in values.items()),
    )


def test_custom_attributes_set_and_null_removes() -> None:
    ledger = run([attrs(plan="pro", age=31.0), attrs(plan=None)], day(2))
    assert ledger.view(ALICE, day(2)).custom_attributes == {"age": 31.0}


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(attrs(**{"bad key": "x"}), id="key with a space"),
        pytest.param(attrs(**{"k" * 31: "x"}), id="key of 31 characters"),
        pytest.param(attrs(note="x" * 51), id="value of 51 characters"),
        pytest.param(attrs(**{f"k{i}": "v" for i in range(31)}), id="31 attributes"),
    ],
)
def test_invalid_custom_attributes_are_rejected_whole(command: SetCustomAttributes) -> None:
    ledger = run([attrs(kept="yes")], day(1))
    assert unchanged_by(ledger, command)
    assert ledger.rejections[0].source == "custom_attributes"


def test_boolean_attribute_values_are_refused_by_the_contract() -> None:
    with pytest.raises(ValueError, match="string or a number"):
        CustomAttribute(key="flag", value=True)  # type: ignore[arg-type]


def test_update_changes_named_fields_and_unset_clears() -> None:
    first = UpdateProfile(
        command_id=cid(),
        issued_at=day(1),
        profile_id=ALICE,
        fields=ProfileFields(first_name="Ada", email="ada@example.com"),
    )
    second = UpdateProfile(
        command_id=cid(),
        issued_at=day(2),
        profile_id=ALICE,
        fields=ProfileFields(last_name="Lovelace"),
        unset=("email",),
        seen_at=day(2),
    )
    view = run([first, second], day(3)).view(ALICE, day(3))
    assert (view.fields.first_name, view.fields.last_name, view.fields.email) == (
        "Ada",
        "Lovelace",
        None,
    )
    assert view.last_seen_at == day(2)


def test_notes_add_edit_delete_with_limits() -> None:
    ledger = run(
        [
            AddNote(
                command_id=cid(),
                issued_at=day(1),
                profile_id=ALICE,
                note_id="n1",
                text="Asked for a refund",
            )
        ],
        day(1),
    )
    ledger.submit(
        EditNote(
            command_id=cid(),
            issued_at=day(2),
            profile_id=ALICE,
            note_id="n1",
            text="**Refund** declined",
        )
    )
    assert ledger.view(ALICE, day(2)).notes[0].text == "**Refund** declined"
    assert unchanged_by(
        ledger,
        AddNote(command_id=cid(), issued_at=day(2), profile_id=ALICE, note_id="n2", text="x" * 256),
    )
    for i in range(2, 11):
        ledger.submit(
            AddNote(
                command_id=cid(),
                issued_at=day(3),
                profile_id=ALICE,
                note_id=f"n{i}",
                text=f"note {i}",
            )
        )
    assert len(ledger.view(ALICE, day(3)).notes) == 10
    assert unchanged_by(
        ledger,
        AddNote(
            command_id=cid(), issued_at=day(3), profile_id=ALICE, note_id="n11", text="one too many"
        ),
    )
    ledger.submit(DeleteNote(command_id=cid(), issued_at=day(4), profile_id=ALICE, note_id="n1"))
    assert len(ledger.view(ALICE, day(4)).notes) == 9
    assert unchanged_by(
        ledger, DeleteNote(command_id=cid(), issued_at=day(4), profile_id=ALICE, note_id="n1")
    )


# --- identity -------------------------------------------------------------------------------


def test_creating_with_a_taken_customer_user_id_returns_that_profile() -> None:
    ledger = Ledger()
    ledger.submit(create(ALICE, "user-1"))
    ledger.submit(
        CreateProfile(
            command_id="again",
            issued_at=day(1),
            profile_id=BOB,
            customer_user_id="user-1",
            fields=ProfileFields(first_name="Ada"),
        )
    )
    assert BOB not in ledger.profiles
    assert [(r.command_id, r.profile_id) for r in ledger.resolved] == [("again", ALICE)]
    assert ledger.view(ALICE, day(1)).fields.first_name == "Ada"


def test_identifying_an_anonymous_profile_links_the_customer_user_id() -> None:
    ledger = Ledger()
    ledger.submit(create(BOB))
    ledger.submit(
        IdentifyProfile(command_id="id", issued_at=day(1), profile_id=BOB, customer_user_id="bob")
    )
    assert ledger.view(BOB, day(1)).customer_user_id == "bob"
    assert ledger.identities["bob"].profile_id == BOB
    assert story(ledger, BOB) == []
    assert [e.event_type.value for e in ledger.events][-1] == "profile_identified"


def test_commands_on_a_missing_profile_are_rejected_with_404() -> None:
    outcome = evolve_profile(
        None, UpdateProfile(command_id="u", issued_at=day(0), profile_id=ALICE), day(0)
    )
    assert [(r.error_code, r.status_code) for r in outcome.rejections] == [
        ("profile_does_not_exist", 404)
    ]
    assert not outcome.state.exists


def test_an_acceptance_names_the_version_and_the_journey_events_it_published() -> None:
    created = evolve_profile(None, create(ALICE, at=day(0)), day(0)).state
    command = grant(None)
    outcome = evolve_profile(created, command, day(1))
    assert outcome.applied is not None
    assert outcome.applied.version == outcome.state.version
    published = [e.profile_event_id for e in outcome.events]
    assert published
    assert list(outcome.applied.event_ids) == published
    again = evolve_profile(outcome.state, command, day(2))  # already applied: nothing new
    assert again.applied is not None
    assert again.applied.event_ids == ()


def test_duplicate_command_is_a_no_op() -> None:
    command = attrs(plan="pro")
    ledger = run([command], day(1))
    state, events = ledger.profiles[ALICE], len(ledger.events)
    ledger.submit(command)
    assert ledger.profiles[ALICE] == state
    assert len(ledger.events) == events


def test_delete_erases_personal_data_and_stays_deleted(chain: Chain) -> None:
    ledger = run([chain.buy("t1", day(0), day(30)), attrs(plan="pro")], day(1))
    ledger.submit(DeleteProfile(command_id="del", issued_at=day(2), profile_id=ALICE))
    view = ledger.view(ALICE, day(2))
    assert view.deleted
    assert view.custom_attributes == {}
    assert view.access_levels == ()
    assert view.revenue.total_revenue_usd == 0
    ledger.submit(chain.buy("t2", day(30), day(60)))  # the chain no longer reaches it
    ledger.submit(attrs(plan="again"))
    assert ledger.view(ALICE, day(31)).custom_attributes == {}
    assert rejected(ledger) == ["profile_does_not_exist"]


# --- set transaction ------------------------------------------------------------------------


def set_tx(**changes: object) -> SetTransaction:
    fields: dict[str, object] = {
        "transaction_id": "s1",
        "original_transaction_id": "s1",
        "product_id": "premium.monthly",
        "purchased_at": day(1),
        "expires_at": day(31),
        "price_local": Decimal("4.99"),
        "price_usd": Decimal("4.99"),
    }
    fields.update(changes)
    return SetTransaction(
        command_id=cid(),
        issued_at=day(1),
        profile_id=ALICE,
        store=Store.STRIPE,
        transaction=TransactionInfo(**fields),
    )  # type: ignore[arg-type]


def test_set_transaction_records_a_purchase_on_the_profile() -> None:
    ledger = run([set_tx()], day(2))
    assert story(ledger) == ["subscription_started", "access_level_updated"]
    assert ledger.view(ALICE, day(2)).revenue.total_revenue_usd == Decimal("4.99")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"offer": TRIAL}, "free_trial_price_error"),
        ({"is_family_shared": True}, "family_share_price_error"),
        ({"originally_purchased_at": day(2)}, "originally_purchased_date_error"),
        (
            {"is_subscription": False, "expires_at": None, "original_transaction_id": "other"},
            "store_transaction_id_error",
        ),
        ({"revoked_at": day(5)}, "refund_fields_error"),
    ],
)
def test_set_transaction_validation_errors(changes: dict[str, object], code: str) -> None:
    ledger = run([], day(1))
    assert unchanged_by(ledger, set_tx(**changes))
    assert rejected(ledger) == [code]


# --- email engagement -----------------------------------------------------------------------


def email(kind: EmailEventKind, at: float, email_id: str = "m1", campaign: str | None = "c1"):
    return RecordEmailEvent(
        command_id=cid(),
        issued_at=day(at),
        profile_id=ALICE,
        email_id=email_id,
        campaign_id=campaign,
        event=kind,
        occurred_at=day(at),
    )


def test_email_metrics_open_rate_and_attributed_revenue(chain: Chain) -> None:
    inputs = [
        email(EmailEventKind.SENT, 1),
        email(EmailEventKind.DELIVERED, 1),
        email(EmailEventKind.OPENED, 2),
        email(EmailEventKind.SENT, 3, "m2"),
        chain.buy("t1", day(5), day(35)),  # 3 days after the open: attributed
        chain.buy("t2", day(35), day(65)),  # outside the 7-day window
    ]
    metrics = run(inputs, day(36)).view(ALICE, day(36)).email
    assert (metrics.sent, metrics.delivered, metrics.opened, metrics.clicked) == (2, 1, 1, 0)
    assert metrics.open_rate == Decimal("0.5")
    assert metrics.attributed_revenue_usd == Decimal("9.99")


def test_open_rate_is_none_when_nothing_was_sent() -> None:
    assert run([], day(1)).view(ALICE, day(1)).email.open_rate is None


def test_unsubscribe_is_idempotent_and_independent_of_purchases(chain: Chain) -> None:
    first = Unsubscribe(command_id=cid(), issued_at=day(1), profile_id=ALICE)
    second = Unsubscribe(command_id=cid(), issued_at=day(2), profile_id=ALICE)
    ledger = run([chain.buy("t1", day(0), day(30)), first, second], day(3))
    view = ledger.view(ALICE, day(3))
    assert not view.email_subscribed
    assert view.purchase_status.value == "active_subscriber"
    assert story(ledger).count("email_unsubscribed") == 1
    assert ledger.rejections == []
