"""The identity fold: at most one profile per customer user id (DOMAIN.md section 1)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from processors.core.ids import profile_id_for_customer
from schemas.base import replace
from schemas.commands import Command, CreateProfile, IdentifyProfile
from schemas.events import ProfileRef, StoreEvent
from schemas.messages import IdentityMessage, IdentityResolved, ReleaseIdentity
from schemas.state import IdentityState


@dataclass(frozen=True, slots=True)
class IdentityOutcome:
    state: IdentityState
    to_profiles: tuple[Command, ...] = ()
    to_chains: tuple[StoreEvent, ...] = ()
    resolved: tuple[IdentityResolved, ...] = ()


def customer_of(message: IdentityMessage) -> str | None:
    match message:
        case CreateProfile() | IdentifyProfile() | ReleaseIdentity():
            return message.customer_user_id
        case StoreEvent():
            return message.profile.customer_user_id if message.profile else None


def evolve_identity(state: IdentityState, message: IdentityMessage) -> IdentityOutcome:
    owner = state.profile_id
    match message:
        case ReleaseIdentity():
            if owner == message.profile_id:
                return IdentityOutcome(replace(state, profile_id=None))
            return IdentityOutcome(state)
        case StoreEvent():
            if owner is None:
                # A store names a customer before any profile has: make theirs.
                owner = profile_id_for_customer(state.customer_user_id)
                create = CreateProfile(
                    command_id=f"implicit:{state.customer_user_id}",
                    issued_at=message.received_at,
                    profile_id=owner,
                    customer_user_id=state.customer_user_id,
                )
                bound = replace(state, profile_id=owner)
                return IdentityOutcome(bound, (create,), (_addressed(message, owner),))
            return IdentityOutcome(state, to_chains=(_addressed(message, owner),))
        case CreateProfile() | IdentifyProfile():
            if owner is None:
                bound = replace(state, profile_id=message.profile_id)
                return IdentityOutcome(bound, (message,))
            if owner == message.profile_id:
                return IdentityOutcome(state, (message,))
            resolved = IdentityResolved(
                command_id=message.command_id,
                customer_user_id=state.customer_user_id,
                profile_id=owner,
            )
            # Creating with a taken id returns that profile (and updates it); identifying
            # an anonymous profile with it switches to that profile, leaving this one be.
            forwarded = (
                (replace(message, profile_id=owner),) if isinstance(message, CreateProfile) else ()
            )
            return IdentityOutcome(state, forwarded, resolved=(resolved,))


def _addressed(event: StoreEvent, profile_id: UUID) -> StoreEvent:
    customer = event.profile.customer_user_id if event.profile else None
    return replace(event, profile=ProfileRef(profile_id=profile_id, customer_user_id=customer))
