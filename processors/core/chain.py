"""The chain fold: merge one store subscription lineage's facts, monotonically.

Every merge here is commutative, associative and idempotent: transactions are
last-writer-wins by (store signed time, event id), observations and claims are sets.
So a chain's state never depends on the order or repetition of its input.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from processors.core.ids import stable_id
from schemas.enums import ClaimKind, Environment, EventType, Store
from schemas.events import StoreEvent, TransactionInfo
from schemas.messages import (
    ChainChanged,
    ChainMessage,
    ClaimantIdentified,
    ClaimChain,
    instant_of,
)
from schemas.state import (
    ChainState,
    Claim,
    DeferralObs,
    RenewalObs,
    RevocationObs,
    RevocationPatchObs,
    TerminationObs,
    TransactionFact,
)

_Obs = TypeVar("_Obs", RenewalObs, DeferralObs, RevocationObs, TerminationObs, RevocationPatchObs)


def _union(left: Iterable[_Obs], right: Iterable[_Obs]) -> tuple[_Obs, ...]:
    merged = {o.event_id: o for o in left}
    for o in right:
        merged.setdefault(o.event_id, o)
    return tuple(sorted(merged.values(), key=lambda o: (o.signed_at, o.event_id)))


def _union_claims(left: Iterable[Claim], right: Iterable[Claim]) -> tuple[Claim, ...]:
    merged = {c.claim_id: c for c in left}
    for c in right:
        known = merged.get(c.claim_id)
        # A buyer's claim dates from their earliest purchase, whichever event told us first.
        if known is None or (c.at, c.kind) < (known.at, known.kind):
            merged[c.claim_id] = c
    return tuple(sorted(merged.values(), key=lambda c: (c.at, c.claim_id)))


def merge_transaction(left: TransactionFact, right: TransactionFact) -> TransactionFact:
    newer = right if (right.signed_at, right.event_id) > (left.signed_at, left.event_id) else left
    return newer.model_copy(update={"revocations": _union(left.revocations, right.revocations)})


def merge_chains(left: ChainState, right: ChainState) -> ChainState:
    """The join of two views of the same chain."""
    if left is right:
        return left
    transactions = dict(left.transactions)
    for tid, fact in right.transactions.items():
        known = transactions.get(tid)
        transactions[tid] = fact if known is None else merge_transaction(known, fact)
    # A stub learns its environment from the side that has transactions.
    base = right if not left.transactions and right.transactions else left
    return base.model_copy(
        update={
            "transactions": transactions,
            "renewals": _union(left.renewals, right.renewals),
            "deferrals": _union(left.deferrals, right.deferrals),
            "terminations": _union(left.terminations, right.terminations),
            "revocation_patches": _union(left.revocation_patches, right.revocation_patches),
            "claims": _union_claims(left.claims, right.claims),
            "identified": left.identified | right.identified,
            "seen": left.seen | right.seen,
        }
    )


def empty_chain(event: StoreEvent) -> ChainState:
    return ChainState(
        chain_key=event.chain_key,
        store=event.store,
        environment=event.environment,
        original_transaction_id=event.original_transaction_id,
    )


def parse_chain_key(chain_key: str) -> tuple[Store, str]:
    """`store:original_transaction_id`; raises ValueError for anything else."""
    store, sep, otid = chain_key.partition(":")
    if not sep or not otid:
        raise ValueError(f"not a chain key: {chain_key!r}")
    return Store(store), otid


def stub_chain(chain_key: str) -> ChainState:
    """A chain known only by its key; its environment comes with its first transaction."""
    store, otid = parse_chain_key(chain_key)
    return ChainState(
        chain_key=chain_key,
        store=store,
        environment=Environment.PRODUCTION,
        original_transaction_id=otid,
    )


def facts_of(event: StoreEvent, profile_id: UUID | None) -> ChainState:
    """The chain state that holds exactly what one store event says."""
    transactions: dict[str, TransactionFact] = {}
    deferrals: tuple[DeferralObs, ...] = ()
    tx = event.transaction
    if tx is not None:
        transactions[tx.transaction_id] = TransactionFact(
            info=tx,
            signed_at=event.signed_at,
            event_id=event.event_id,
            revocations=_revocations_of(event, tx),
        )
        if event.event_type is EventType.SUBSCRIPTION_DEFERRED and tx.expires_at is not None:
            deferrals = (
                DeferralObs(
                    signed_at=event.signed_at,
                    event_id=event.event_id,
                    transaction_id=tx.transaction_id,
                    expires_at=tx.expires_at,
                ),
            )
    patch = event.patch
    revocation_patches: tuple[RevocationPatchObs, ...] = ()
    if patch is not None and patch.revoked is not None:
        revocation_patches = (
            RevocationPatchObs(
                signed_at=event.signed_at,
                event_id=event.event_id,
                transaction_id=patch.transaction_id,
                revoked_at=patch.revoked_at if patch.revoked else None,
                reason=patch.revocation_reason,
            ),
        )
    if patch is not None and patch.expires_at is not None:
        deferrals += (
            DeferralObs(
                signed_at=event.signed_at,
                event_id=event.event_id,
                transaction_id=patch.transaction_id,
                expires_at=patch.expires_at,
            ),
        )
    terminations: tuple[TerminationObs, ...] = ()
    if event.terminated_at is not None:
        terminations = (
            TerminationObs(
                signed_at=event.signed_at, event_id=event.event_id, ended_at=event.terminated_at
            ),
        )
    renewals: tuple[RenewalObs, ...] = ()
    if event.renewal is not None:
        renewals = (
            RenewalObs(signed_at=event.signed_at, event_id=event.event_id, info=event.renewal),
        )
    claims: tuple[Claim, ...] = ()
    if profile_id is not None:
        claims = (
            Claim(
                at=tx.purchased_at if tx is not None else event.effective_at,
                claim_id=f"purchase:{profile_id}",
                profile_id=profile_id,
                kind=ClaimKind.PURCHASE,
            ),
        )
    return empty_chain(event).model_copy(
        update={
            "transactions": transactions,
            "renewals": renewals,
            "deferrals": deferrals,
            "terminations": terminations,
            "revocation_patches": revocation_patches,
            "claims": claims,
            "seen": frozenset({event.event_id}),
        }
    )


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


def evolve_chain(
    state: ChainState | None, message: ChainMessage
) -> tuple[ChainState | None, tuple[ChainChanged, ...]]:
    """Apply one message; tell every related profile when the chain changed.

    A chain's facts do not change with time, so its fold takes no `now`: what the
    facts mean at an instant is the profile fold's business.
    """
    match message:
        case StoreEvent():
            if state is not None and message.event_id in state.seen:
                return state, ()
            profile_id = message.profile.profile_id if message.profile else None
            incoming = facts_of(message, profile_id)
        case ClaimChain():
            if state is not None and message.claim.claim_id in state.seen:
                return state, ()
            # A claim may reach a chain before any store event does: it is kept all the same.
            identified = (
                frozenset({message.claim.profile_id}) if message.identified else frozenset()
            )
            incoming = stub_chain(message.chain_key).model_copy(
                update={
                    "claims": (message.claim,),
                    "identified": identified,
                    "seen": frozenset({message.claim.claim_id}),
                }
            )
        case ClaimantIdentified():
            if state is None or message.profile_id in state.identified:
                return state, ()
            incoming = stub_chain(message.chain_key).model_copy(
                update={"identified": frozenset({message.profile_id})}
            )
    merged = incoming if state is None else merge_chains(state, incoming)
    if merged == state:
        return state, ()
    return merged, notify(state, merged, incoming, instant_of(message))


def notify(
    before: ChainState | None, after: ChainState, delta: ChainState, at: datetime
) -> tuple[ChainChanged, ...]:
    """Tell every related profile. One that already held a copy gets only the new facts
    (its copy merges them into the same chain); one newly related gets the whole chain.
    The ids the chain has seen stay here: only the chain deduplicates store events."""
    known = set(related_profiles(before)) if before is not None else set()
    related = related_profiles(after)
    if not related:
        return ()
    unseen: dict[str, object] = {"seen": frozenset()}
    delta = delta.model_copy(update=unseen)
    whole = after.model_copy(update=unseen) if any(p not in known for p in related) else delta
    return tuple(
        ChainChanged(profile_id=p, chain=delta if p in known else whole, at=at) for p in related
    )


def related_profiles(chain: ChainState) -> list[UUID]:
    """Every profile a chain's claims name, in claim order, deleted ones left out."""
    deleted = {c.profile_id for c in chain.claims if c.kind is ClaimKind.DELETE}
    related = dict.fromkeys(c.profile_id for c in chain.claims)
    related.update(dict.fromkeys(c.counterpart for c in chain.claims if c.counterpart))
    return [p for p in related if p not in deleted]


def claim_id_for(kind: ClaimKind, command_id: str, chain_key: str) -> str:
    return str(stable_id("claim", kind.value, command_id, chain_key))
