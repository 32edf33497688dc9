"""Messages between the folds (chain, profile, identity), and the outcomes they report.

They travel on internal topics in the stream processor and through a queue in the
in-memory ledger; either way each fold sees the same messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from schemas.base import Frozen, Instant
from schemas.commands import Command, CreateProfile, IdentifyProfile
from schemas.events import StoreEvent
from schemas.outputs import Applied, Rejection
from schemas.state import ChainState, Claim


class ClaimChain(Frozen):
    """A profile relates itself to a chain: restore, transfer or delete."""

    kind: Literal["claim_chain"] = "claim_chain"
    chain_key: str
    claim: Claim
    identified: bool = False


class ClaimantIdentified(Frozen):
    kind: Literal["claimant_identified"] = "claimant_identified"
    chain_key: str
    profile_id: UUID
    at: Instant


class ChainChanged(Frozen):
    """A chain's merged facts, sent to every profile related to it."""

    kind: Literal["chain_changed"] = "chain_changed"
    profile_id: UUID
    chain: ChainState
    # The instant of the input that changed the chain: the profile's `now` for it.
    at: Instant


class EntitlementsReceived(Frozen):
    kind: Literal["entitlements_received"] = "entitlements_received"
    profile_id: UUID
    from_profile_id: UUID
    command_id: str
    at: Instant


class Tick(Frozen):
    """The processor wakes a profile at its next wake-up instant."""

    kind: Literal["tick"] = "tick"
    profile_id: UUID
    at: Instant


class ReleaseIdentity(Frozen):
    kind: Literal["release_identity"] = "release_identity"
    customer_user_id: str
    profile_id: UUID
    at: Instant


class IdentityResolved(Frozen):
    """A create or identify command named a customer user id that another profile holds."""

    kind: Literal["identity_resolved"] = "identity_resolved"
    command_id: str
    customer_user_id: str
    profile_id: UUID


ProfileMessage = Annotated[
    Command | ChainChanged | EntitlementsReceived | Tick, Field(discriminator="kind")
]
ChainMessage = Annotated[StoreEvent | ClaimChain | ClaimantIdentified, Field(discriminator="kind")]


IdentityMessage = Annotated[
    CreateProfile | IdentifyProfile | StoreEvent | ReleaseIdentity, Field(discriminator="kind")
]

# What a waiting API call learns about its command beyond the profile itself.
Outcome = Annotated[Applied | Rejection | IdentityResolved, Field(discriminator="kind")]

# What enters the system from outside: store events and profile commands.
Input = Annotated[StoreEvent | Command, Field(discriminator="kind")]


def instant_of(message: Input | ProfileMessage | ChainMessage | IdentityMessage) -> datetime:
    """The instant a message is folded at: when its input was accepted, carried along.

    The stream processor and the in-memory ledger both use it, so a message folds the same
    wherever it travels, live or in a replay.
    """
    match message:
        case StoreEvent():
            return message.received_at
        case ClaimChain():
            return message.claim.at
        case ChainChanged() | ClaimantIdentified() | EntitlementsReceived() | Tick():
            return message.at
        case ReleaseIdentity():
            return message.at
    return message.issued_at
