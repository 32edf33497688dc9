"""Fold state: the facts a chain and a profile hold. Everything shown is derived from these.

Chain state is a join-semilattice of facts (grow-only sets and last-writer-wins registers
ordered by the store's signed time), so merging the same facts in any order, or twice,
gives the same state.
"""

from __future__ import annotations

from uuid import UUID

from schemas.base import Frozen, Instant
from schemas.enums import CancellationReason, ClaimKind, Environment, Store
from schemas.events import RenewalInfo, TransactionInfo
from schemas.profile import AttributeValue, Note, ProfileFields
from schemas.views import AccessLevelView


class RevocationObs(Frozen):
    """A transaction's refund state as the store signed it at one instant."""

    signed_at: Instant
    event_id: str
    revoked_at: Instant | None
    reason: CancellationReason | None = None


class RevocationPatchObs(Frozen):
    """A refund or its reversal stated for a transaction by id alone."""

    signed_at: Instant
    event_id: str
    transaction_id: str
    revoked_at: Instant | None
    reason: CancellationReason | None = None


class TransactionFact(Frozen):
    info: TransactionInfo
    # Version of `info`: the newest store signed time wins, the event id breaks ties.
    signed_at: Instant
    event_id: str
    revocations: tuple[RevocationObs, ...] = ()


class RenewalObs(Frozen):
    signed_at: Instant
    event_id: str
    info: RenewalInfo


class DeferralObs(Frozen):
    signed_at: Instant
    event_id: str
    transaction_id: str
    expires_at: Instant


class TerminationObs(Frozen):
    """The store ended access at an instant, before the period's expiry (no refund)."""

    signed_at: Instant
    event_id: str
    ended_at: Instant


class Claim(Frozen):
    """A profile's relation to a chain, as of an instant."""

    at: Instant
    claim_id: str
    profile_id: UUID
    kind: ClaimKind
    counterpart: UUID | None = None


class ChainState(Frozen):
    chain_key: str
    store: Store
    environment: Environment
    original_transaction_id: str
    transactions: dict[str, TransactionFact] = {}
    renewals: tuple[RenewalObs, ...] = ()
    deferrals: tuple[DeferralObs, ...] = ()
    terminations: tuple[TerminationObs, ...] = ()
    revocation_patches: tuple[RevocationPatchObs, ...] = ()
    claims: tuple[Claim, ...] = ()
    # Profiles known to have a customer user id (grow-only: identity is never withdrawn).
    identified: frozenset[UUID] = frozenset()
    seen: frozenset[str] = frozenset()


class Grant(Frozen):
    access_level_id: str
    granted_at: Instant
    starts_at: Instant
    # None is lifetime access.
    expires_at: Instant | None


class EmailRecord(Frozen):
    email_id: str
    campaign_id: str | None = None
    sent_at: Instant | None = None
    delivered_at: Instant | None = None
    opened_at: Instant | None = None
    clicked_at: Instant | None = None


class ProfileState(Frozen):
    profile_id: UUID
    exists: bool = False
    deleted: bool = False
    customer_user_id: str | None = None
    created_at: Instant | None = None
    last_seen_at: Instant | None = None
    fields: ProfileFields = ProfileFields()
    custom_attributes: dict[str, AttributeValue] = {}
    notes: tuple[Note, ...] = ()
    grants: dict[str, Grant] = {}
    # Store-derived access to a level is cut at this instant (a revoke), until a later purchase.
    level_cutoffs: dict[str, Instant] = {}
    # Copies of the chains this profile is or was related to, merged like the chain itself.
    chains: dict[str, ChainState] = {}
    emails: dict[str, EmailRecord] = {}
    email_unsubscribed_at: Instant | None = None
    seen: frozenset[str] = frozenset()
    # What the profile has told: each parent chain's journey items ("key|type"), and the
    # access levels as of `as_of`. What it emits is what it shows beyond these.
    told: dict[str, frozenset[str]] = {}
    levels: dict[str, AccessLevelView] = {}
    # The instant the state was last evaluated at; time never runs backwards in a state.
    as_of: Instant | None = None
    # When the profile next changes without input (derived, kept for the processor's timers).
    next_wakeup_at: Instant | None = None
    version: int = 0


class IdentityState(Frozen):
    """Which profile a customer user id belongs to: at most one at a time."""

    customer_user_id: str
    profile_id: UUID | None = None
