"""A chain's facts: what one store event says, and how facts merge, monotonically.

Every merge here is commutative, associative and idempotent: transactions are
last-writer-wins by (store signed time, event id), refund statements and claims are sets,
and every other statement is kept under the id of the event that made it. So a chain's
facts never depend on the order or repetition of its input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from processors.core.recall import recalled
from schemas.base import replace
from schemas.enums import ClaimKind, EventType
from schemas.events import StoreEvent, TransactionInfo
from schemas.state import (
    Claim,
    Deferral,
    Observation,
    RevocationObs,
    RevocationPatch,
    TransactionFact,
)


class History(Protocol):
    """Every fact a chain has merged, however they are stored; read only for late input."""

    def transaction(self, transaction_id: str) -> TransactionFact | None: ...

    def has_event(self, event_id: str) -> bool: ...

    def facts(self) -> tuple[Mapping[str, TransactionFact], list[Observation]]:
        """All transactions, and all observations in (signed time, event id) order."""
        ...


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What one store event says: a transaction version, and the rest as an observation."""

    transaction: TransactionFact | None
    observation: Observation
    claim: Claim | None


def facts_of(event: StoreEvent) -> EventFacts:
    tx = event.transaction
    fact = None
    deferral = None
    if tx is not None:
        fact = TransactionFact(
            info=tx,
            signed_at=event.signed_at,
            event_id=event.event_id,
            revocations=_revocations_of(event, tx),
            learned_at=event.received_at,
        )
        if event.event_type is EventType.SUBSCRIPTION_DEFERRED and tx.expires_at is not None:
            deferral = Deferral(transaction_id=tx.transaction_id, expires_at=tx.expires_at)
    patch = event.patch
    revocation = None
    if patch is not None:
        if patch.revoked is not None:
            revocation = RevocationPatch(
                transaction_id=patch.transaction_id,
                revoked_at=patch.revoked_at if patch.revoked else None,
                reason=patch.revocation_reason,
                refunded_local=patch.refunded_local,
                refunded_usd=patch.refunded_usd,
            )
        if deferral is None and patch.expires_at is not None:
            deferral = Deferral(transaction_id=patch.transaction_id, expires_at=patch.expires_at)
    observation = Observation(
        event_id=event.event_id,
        signed_at=event.signed_at,
        renewal=event.renewal,
        deferral=deferral,
        patch=revocation,
        terminated_at=event.terminated_at,
    )
    claim = None
    profile_id = event.profile.profile_id if event.profile else None
    if profile_id is not None:
        claim = Claim(
            at=tx.purchased_at if tx is not None else event.effective_at,
            claim_id=f"purchase:{profile_id}",
            profile_id=profile_id,
            kind=ClaimKind.PURCHASE,
        )
    return EventFacts(fact, observation, claim)


def _revocations_of(event: StoreEvent, tx: TransactionInfo) -> tuple[RevocationObs, ...]:
    # Only refunds and their reversals are kept as observations: they are what the
    # journey shows; the current refund state is the newest version of the transaction.
    if tx.revoked_at is None and event.event_type is not EventType.REFUND_REVERSED:
        return ()
    return (
        RevocationObs(
            signed_at=event.signed_at,
            event_id=event.event_id,
            revoked_at=tx.revoked_at,
            reason=tx.revocation_reason,
        ),
    )


def merge_transaction(left: TransactionFact, right: TransactionFact) -> TransactionFact:
    newer = right if (right.signed_at, right.event_id) > (left.signed_at, left.event_id) else left
    revocations = _union(left.revocations, right.revocations)
    learned_at = min(left.learned_at, right.learned_at)
    if revocations == newer.revocations and learned_at == newer.learned_at:
        return newer
    return replace(newer, revocations=revocations, learned_at=learned_at)


def _union(
    left: tuple[RevocationObs, ...], right: tuple[RevocationObs, ...]
) -> tuple[RevocationObs, ...]:
    if not right or left == right:
        return left
    if not left:
        return right
    merged = {o.event_id: o for o in left}
    for o in right:
        merged.setdefault(o.event_id, o)
    return tuple(sorted(merged.values(), key=lambda o: (o.signed_at, o.event_id)))


def union_claims(left: Iterable[Claim], right: Iterable[Claim]) -> tuple[Claim, ...]:
    merged = {c.claim_id: c for c in left}
    for c in right:
        known = merged.get(c.claim_id)
        # A buyer's claim dates from their earliest purchase, whichever event told us first.
        if known is None or (c.at, c.kind) < (known.at, known.kind):
            merged[c.claim_id] = c
    return tuple(sorted(merged.values(), key=lambda c: (c.at, c.claim_id)))


@recalled(8)
def related_profiles(claims: tuple[Claim, ...]) -> tuple[UUID, ...]:
    """Every profile a chain's claims name, in claim order, deleted ones left out."""
    deleted = {c.profile_id for c in claims if c.kind is ClaimKind.DELETE}
    related = dict.fromkeys(c.profile_id for c in claims)
    related.update(dict.fromkeys(c.counterpart for c in claims if c.counterpart))
    return tuple(p for p in related if p not in deleted)


def observation_order(observation: Observation) -> tuple[object, str]:
    return (observation.signed_at, observation.event_id)


class FactBook:
    """A chain's facts in memory: the history the in-memory ledger and the tests keep."""

    def __init__(self) -> None:
        self.transactions: dict[str, TransactionFact] = {}
        self.observations: dict[str, Observation] = {}

    def transaction(self, transaction_id: str) -> TransactionFact | None:
        return self.transactions.get(transaction_id)

    def has_event(self, event_id: str) -> bool:
        return event_id in self.observations

    def facts(self) -> tuple[Mapping[str, TransactionFact], list[Observation]]:
        return self.transactions, sorted(self.observations.values(), key=observation_order)

    def keep(
        self, transactions: Iterable[TransactionFact], observations: Iterable[Observation]
    ) -> None:
        for fact in transactions:
            self.transactions[fact.info.transaction_id] = fact
        for observation in observations:
            self.observations[observation.event_id] = observation
