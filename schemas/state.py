"""Fold state: the facts a chain and a profile hold, and what is carried forward from them.

A chain's facts are a join-semilattice (transactions last-writer-wins by the store's
signed time, observations keyed by the event that made them), so merging the same facts
in any order, or twice, gives the same set. They are kept apart from the chain's state
(`ChainState`), one record per transaction and per event, and read only when input
arrives late; the state carries the chain's recent facts (its tail) and the reading of
everything before them (`Checkpoint`), which is what an input in order needs.

A profile holds, per related chain, a `ChainDigest`: what the chain means from the
instant it was sent on, bounded whatever the chain's history.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from schemas.base import Compact, Instant
from schemas.enums import CancellationReason, ClaimKind, Environment, EventType, Store
from schemas.events import RenewalInfo, TransactionInfo
from schemas.money import ZERO
from schemas.profile import AttributeValue, Note, ProfileFields
from schemas.views import AccessLevelView

# --- a chain's facts --------------------------------------------------------------------


class RevocationObs(Compact, frozen=True, kw_only=True):
    """A transaction's refund state as the store signed it at one instant."""

    signed_at: Instant
    event_id: str
    revoked_at: Instant | None
    reason: CancellationReason | None = None


class TransactionFact(Compact, frozen=True, kw_only=True):
    info: TransactionInfo
    # Version of `info`: the newest store signed time wins, the event id breaks ties.
    signed_at: Instant
    event_id: str
    revocations: tuple[RevocationObs, ...] = ()
    # When the fold first learned of the transaction (the earliest instant it was folded
    # at): the renewal leeway counts from it.
    learned_at: Instant


class Deferral(Compact, frozen=True, kw_only=True):
    transaction_id: str
    expires_at: Instant


class RevocationPatch(Compact, frozen=True, kw_only=True):
    """A refund or its reversal stated for a transaction by id alone."""

    transaction_id: str
    revoked_at: Instant | None
    reason: CancellationReason | None = None
    # What the store has given back of the price in all (a partial refund), when it said.
    refunded_local: Decimal | None = None
    refunded_usd: Decimal | None = None


class Observation(Compact, frozen=True, kw_only=True):
    """What one store event says beside its transaction, kept under the event's id.

    Every event leaves one, so a chain knows each event it has folded."""

    event_id: str
    signed_at: Instant
    renewal: RenewalInfo | None = None
    deferral: Deferral | None = None
    patch: RevocationPatch | None = None
    # The store ended access at this instant, before the period's expiry (no refund).
    terminated_at: Instant | None = None


class Claim(Compact, frozen=True, kw_only=True):
    """A profile's relation to a chain, as of an instant."""

    at: Instant
    claim_id: str
    profile_id: UUID
    kind: ClaimKind
    counterpart: UUID | None = None


# --- what a chain's facts mean: derived, carried forward --------------------------------


class Period(Compact, frozen=True, kw_only=True):
    """One subscription transaction as it bears on access and money."""

    # The transaction as the newest store statements make it (patches applied).
    tx: TransactionInfo
    start: Instant
    # When its access ends: expiry (deferrals included), refund or early end, whichever first.
    end: Instant
    proceeds_usd: Decimal
    rate_after_first_year: bool
    learned_at: Instant
    # Ending at its expiry with auto-renew on, it stays active until this instant awaiting
    # its renewal (the renewal leeway); None when the store's word ends it at `end`.
    held_until: Instant | None = None
    # Proceeds once refunds are taken off; None when nothing was refunded.
    net_proceeds_usd: Decimal | None = None

    @property
    def kept_proceeds_usd(self) -> Decimal:
        return self.proceeds_usd if self.net_proceeds_usd is None else self.net_proceeds_usd

    @property
    def reach(self) -> datetime:
        """Until when the period keeps access, awaiting its renewal included."""
        return self.end if self.held_until is None else self.held_until

    @property
    def refunded(self) -> bool:
        return self.tx.revoked_at is not None


class Purchase(Compact, frozen=True, kw_only=True):
    """A one-time purchase."""

    tx: TransactionInfo
    proceeds_usd: Decimal
    # Proceeds once refunds are taken off; None when nothing was refunded.
    net_proceeds_usd: Decimal | None = None

    @property
    def kept_proceeds_usd(self) -> Decimal:
        return self.proceeds_usd if self.net_proceeds_usd is None else self.net_proceeds_usd


class Item(Compact, frozen=True, kw_only=True):
    """One event of a chain's journey; `key` makes it once-only."""

    key: str
    event_type: EventType
    at: Instant
    tx: TransactionInfo | None = None
    proceeds_usd: Decimal | None = None
    rate_after_first_year: bool | None = None
    reason: CancellationReason | None = None
    expires_at: Instant | None = None

    @property
    def mark(self) -> str:
        return f"{self.key}|{self.event_type.value}"


class Span(Compact, frozen=True, kw_only=True):
    """A run of continuous access whose lapse is still to be told (or ruled out)."""

    end: Instant
    # The transaction of the period that ends the run.
    last: str
    # When access resumes, if it does.
    next_start: Instant | None = None
    # The last period's renewal leeway: a lapse without the store's word waits for it.
    held_until: Instant | None = None


class Checkpoint(Compact, frozen=True, kw_only=True):
    """The reading of a chain's facts before `start`: where reading its tail begins."""

    start: Instant
    paid_service: timedelta = timedelta(0)
    prev: Period | None = None
    had_trial: bool = False
    had_paid: bool = False
    # Renewal state as the store's statements before `start` left it.
    auto_renew: bool = True
    off_in: str | None = None
    retry_in: str | None = None
    grace_until: Instant | None = None
    last_renewal: Observation | None = None
    cancelled_at: Instant | None = None
    # The run of access at the start: its end, and its reach when it awaits a renewal.
    span_end: Instant | None = None
    span_reach: Instant | None = None
    ever_paid: bool = False
    # The chain's original purchase, when a period before `start` made it.
    first_purchased_at: Instant | None = None
    # Money of the periods before `start` (all due, refunds left out).
    revenue_usd: Decimal = ZERO
    proceeds_usd: Decimal = ZERO


class Before(Compact, frozen=True, kw_only=True):
    """What a profile needs of a chain's periods before its digest's: their labels and money."""

    last_renewal: Observation | None = None
    cancelled_at: Instant | None = None
    ever_paid: bool = False
    revenue_usd: Decimal = ZERO
    proceeds_usd: Decimal = ZERO
    first_purchased_at: Instant | None = None


class ChainState(Compact, frozen=True, kw_only=True):
    chain_key: str
    store: Store
    environment: Environment
    original_transaction_id: str
    claims: tuple[Claim, ...] = ()
    # Profiles known to have a customer user id (grow-only: identity is never withdrawn).
    identified: frozenset[UUID] = frozenset()
    # Changes told to the related profiles: a profile ignores a change it has applied.
    seq: int = 0
    # The reading of the facts before the tail; None: the tail is every fact.
    anchor: Checkpoint | None = None
    # The tail: transactions from the anchor on, and every one-time purchase.
    transactions: dict[str, TransactionFact] = {}
    # Observations the tail's reading needs, in (signed time, event id) order.
    observations: tuple[Observation, ...] = ()
    # The journey items the tail's reading has told ("key|type").
    told: frozenset[str] = frozenset()
    # The latest instant the chain was folded at.
    at: Instant | None = None


class ChainDigest(Compact, frozen=True, kw_only=True):
    """What a chain means to its profiles from `at` on: bounded, whatever its history."""

    chain_key: str
    store: Store
    environment: Environment
    original_transaction_id: str
    seq: int
    at: Instant
    # The profile whose purchase this is: transactional events appear on it alone.
    parent: UUID | None = None
    # Profiles that have the chain's access levels now, in the order they claimed it.
    holders: tuple[UUID, ...] = ()
    # Every profile still related to the chain (claimed and not transferred away or deleted).
    claimants: tuple[UUID, ...] = ()
    # Every profile that ever claimed it, and those known to be identified.
    claimed_by: tuple[UUID, ...] = ()
    identified: frozenset[UUID] = frozenset()
    # The periods from the checkpoint on, and the renewal statements among its facts.
    periods: tuple[Period, ...] = ()
    renewals: tuple[Observation, ...] = ()
    before: Before | None = None
    # Lapses still to be told or ruled out, at the instant the profile reads them.
    spans: tuple[Span, ...] = ()
    purchases: tuple[Purchase, ...] = ()
    # Every later instant at which what the chain means can change, in order.
    instants: tuple[Instant, ...] = ()

    @property
    def first_purchased_at(self) -> datetime | None:
        """The chain's original purchase: "customer since" for its parent (DOMAIN.md 7)."""
        found = [p.tx.originally_purchased_at or p.start for p in self.periods]
        found += (one.tx.purchased_at for one in self.purchases)
        if self.before is not None and self.before.first_purchased_at is not None:
            found.append(self.before.first_purchased_at)
        return min(found, default=None)


# --- a profile ----------------------------------------------------------------------------


class Grant(Compact, frozen=True, kw_only=True):
    access_level_id: str
    granted_at: Instant
    starts_at: Instant
    # None is lifetime access.
    expires_at: Instant | None


class EmailRecord(Compact, frozen=True, kw_only=True):
    email_id: str
    campaign_id: str | None = None
    sent_at: Instant | None = None
    delivered_at: Instant | None = None
    opened_at: Instant | None = None
    clicked_at: Instant | None = None


class Payment(Compact, frozen=True, kw_only=True):
    """A transaction of a chain the profile is the parent of, as email attribution needs it."""

    chain_key: str
    transaction_id: str
    purchased_at: Instant
    # What it earned: its price less what the store gave back.
    price_usd: Decimal
    refunded: bool = False

    @property
    def key(self) -> str:
        return f"{self.chain_key}|{self.transaction_id}"


class ProfileState(Compact, frozen=True, kw_only=True):
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
    # What each chain this profile is or was related to means, as the chain last told it.
    chains: dict[str, ChainDigest] = {}
    # The lapses each parent chain's journey has told ("key|type"): a lapse is read from
    # the chain's spans at the profile's own instants, so the profile remembers them.
    ended: dict[str, frozenset[str]] = {}
    # The parent chains' transactions, kept apart from the state on the changelog.
    payments: dict[str, Payment] = {}
    emails: dict[str, EmailRecord] = {}
    email_unsubscribed_at: Instant | None = None
    seen: frozenset[str] = frozenset()
    # The access levels as of `as_of`: what the profile has told of them.
    levels: dict[str, AccessLevelView] = {}
    # The instant the state was last evaluated at; time never runs backwards in a state.
    as_of: Instant | None = None
    # When the profile next changes without input (derived, kept for the processor's timers).
    next_wakeup_at: Instant | None = None
    version: int = 0


class IdentityState(Compact, frozen=True, kw_only=True):
    """Which profile a customer user id belongs to: at most one at a time."""

    customer_user_id: str
    profile_id: UUID | None = None
