"""Running inputs through the in-memory ledger and reading the result."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from processors.core.config import DEFAULT_CONFIG, FoldConfig
from processors.core.ledger import Ledger
from schemas.commands import CreateProfile
from schemas.enums import EventType
from schemas.messages import Input
from schemas.outputs import ProfileEvent
from tests.builders import ALICE, T0


def create(
    profile_id: UUID = ALICE, customer_user_id: str | None = None, at: datetime = T0
) -> CreateProfile:
    return CreateProfile(
        command_id=f"create-{profile_id}",
        issued_at=at,
        profile_id=profile_id,
        customer_user_id=customer_user_id,
    )


def run(
    inputs: Iterable[Input],
    now: datetime,
    config: FoldConfig = DEFAULT_CONFIG,
    profiles: Iterable[UUID] = (ALICE,),
) -> Ledger:
    """Create the profiles, feed the inputs each at its own instant, then wake all at `now`."""
    ledger = Ledger(config=config)
    for profile_id in profiles:
        ledger.submit(create(profile_id))
    ledger.submit_all(inputs)
    ledger.advance(now)
    return ledger


_LIFECYCLE = {EventType.PROFILE_CREATED, EventType.PROFILE_IDENTIFIED}


def story(ledger: Ledger, profile_id: UUID = ALICE) -> list[str]:
    """The event types a profile emitted, its creation and identification left out."""
    return [
        e.event_type.value for e in events_of(ledger, profile_id) if e.event_type not in _LIFECYCLE
    ]


def events_of(ledger: Ledger, profile_id: UUID = ALICE) -> list[ProfileEvent]:
    return [e for e in ledger.events if e.profile_id == profile_id]


def labels(ledger: Ledger, now: datetime, profile_id: UUID = ALICE) -> tuple[str, str]:
    view = ledger.view(profile_id, now)
    return view.subscription_state.value, view.purchase_status.value
