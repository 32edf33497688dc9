"""Messages between the folds (chain, profile, identity), and the outcomes they report.

They travel on internal topics in the stream processor and through a queue in the
in-memory ledger; either way each fold sees the same messages.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from schemas.base import Instant, Record
from schemas.commands import Command, CommandBase, CreateProfile, IdentifyProfile
from schemas.events import StoreEvent
from schemas.outputs import Applied, Rejection
from schemas.state import ChainDigest, Claim, Item, Payment


class ClaimChain(Record, tag="claim_chain", tag_field="kind", frozen=True, kw_only=True):
    """A profile relates itself to a chain: restore, transfer or delete."""

    chain_key: str
    claim: Claim
    identified: bool = False


class ClaimantIdentified(
    Record, tag="claimant_identified", tag_field="kind", frozen=True, kw_only=True
):
    chain_key: str
    profile_id: UUID
    at: Instant


class ChainChanged(Record, tag="chain_changed", tag_field="kind", frozen=True, kw_only=True):
    """What a chain now means, sent to every profile related to it.

    The parent also receives the journey items it has not been told (all of them when it
    has just become the parent) and the chain's transactions that changed."""

    profile_id: UUID
    digest: ChainDigest
    told: tuple[Item, ...] = ()
    payments: tuple[Payment, ...] = ()
    # The instant of the input that changed the chain: the profile's `now` for it.
    at: Instant


class EntitlementsReceived(
    Record, tag="entitlements_received", tag_field="kind", frozen=True, kw_only=True
):
    profile_id: UUID
    from_profile_id: UUID
    command_id: str
    at: Instant


class Tick(Record, tag="tick", tag_field="kind", frozen=True, kw_only=True):
    """The processor wakes a profile at its next wake-up instant."""

    profile_id: UUID
    at: Instant


class ReleaseIdentity(Record, tag="release_identity", tag_field="kind", frozen=True, kw_only=True):
    customer_user_id: str
    profile_id: UUID
    at: Instant


class IdentityResolved(
    Record, tag="identity_resolved", tag_field="kind", frozen=True, kw_only=True
):
    """A create or identify command named a customer user id that another profile holds."""

    command_id: str
    customer_user_id: str
    profile_id: UUID


ProfileMessage = Command | ChainChanged | EntitlementsReceived | Tick
ChainMessage = StoreEvent | ClaimChain | ClaimantIdentified
IdentityMessage = CreateProfile | IdentifyProfile | StoreEvent | ReleaseIdentity

# What a waiting API call learns about its command beyond the profile itself.
Outcome = Applied | Rejection | IdentityResolved

# What enters the system from outside: store events and profile commands.
Input = StoreEvent | Command


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
        case CommandBase():
            return message.issued_at
    raise TypeError(f"not a message: {type(message).__name__}")
