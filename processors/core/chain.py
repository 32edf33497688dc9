"""The chain fold: merge one store subscription lineage's facts and tell its profiles.

A chain's facts are kept apart from its state (`History`); the state holds the tail, the
facts from its checkpoint on. An input that lands in the tail is read with the tail alone:
constant work for input in time order. One that lands before the checkpoint (a late
refund of an old transaction, a renewal statement older than the current period) is
read with every fact, from the beginning, by the same reading (`scan.read_facts`).

Each change is told to every related profile as a `ChainChanged`: the chain's digest (what
it means from now on), and, for its parent, the journey items and transactions that are
new to it (all of them when it has just become the parent).
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from processors.core.claims import Relations, relations
from processors.core.config import FoldConfig
from processors.core.facts import (
    EventFacts,
    History,
    facts_of,
    merge_transaction,
    observation_order,
    related_profiles,
    union_claims,
)
from processors.core.ids import stable_id
from processors.core.scan import Scan, read_facts
from schemas.base import replace
from schemas.enums import ClaimKind, Environment, Store
from schemas.events import StoreEvent
from schemas.messages import ChainChanged, ChainMessage, ClaimantIdentified, ClaimChain, instant_of
from schemas.state import (
    Before,
    ChainDigest,
    ChainState,
    Item,
    Observation,
    Payment,
    TransactionFact,
)


@dataclass(frozen=True, slots=True)
class ChainOutcome:
    state: ChainState | None
    to_profiles: tuple[ChainChanged, ...] = ()
    # Facts to keep beside the state: transactions new or changed, observations new.
    transactions: tuple[TransactionFact, ...] = ()
    observations: tuple[Observation, ...] = ()


class _NoHistory:
    def transaction(self, transaction_id: str) -> TransactionFact | None:
        return None

    def has_event(self, event_id: str) -> bool:
        return False

    def facts(self) -> tuple[Mapping[str, TransactionFact], list[Observation]]:
        return {}, []


NO_HISTORY: History = _NoHistory()


def evolve_chain(
    state: ChainState | None,
    message: ChainMessage,
    history: History,
    config: FoldConfig,
    *,
    from_scratch: bool = False,
) -> ChainOutcome:
    """Apply one message; tell every related profile what the chain now means.

    `from_scratch` reads every fact from the beginning even for input in time order: the
    reference the tail's reading is checked against."""
    at = instant_of(message)
    fact: TransactionFact | None = None
    observation: Observation | None = None
    match message:
        case StoreEvent():
            if history.has_event(message.event_id):
                return ChainOutcome(state)
            said = facts_of(message)
            base = _with_claims(state or _empty(message), said)
            if said.transaction is not None:
                tid = said.transaction.info.transaction_id
                known = _transaction(state, history, tid)
                fact = (
                    said.transaction
                    if known is None
                    else merge_transaction(known, said.transaction)
                )
                if fact == known:
                    fact = None
                if base.environment is not message.environment and not _has_transactions(state):
                    # A stub learns its environment from its first transaction.
                    base = replace(base, environment=message.environment)
            observation = said.observation
        case ClaimChain():
            if state is not None and any(
                c.claim_id == message.claim.claim_id for c in state.claims
            ):
                return ChainOutcome(state)
            # A claim may reach a chain before any store event does: it is kept all the same.
            base = state or stub_chain(message.chain_key)
            base = replace(
                base,
                claims=union_claims(base.claims, (message.claim,)),
                identified=base.identified | {message.claim.profile_id}
                if message.identified
                else base.identified,
            )
        case ClaimantIdentified():
            if state is None or message.profile_id in state.identified:
                return ChainOutcome(state)
            base = replace(state, identified=state.identified | {message.profile_id})
    if state is not None and base == state and fact is None and observation is None:
        return ChainOutcome(state)
    late = False
    if state is not None and (from_scratch or _is_late(state, fact, observation, history, at)):
        late = True
        scan, told_before = _read_everything(state, fact, observation, history, at, config)
    else:
        scan = _read_tail(base, fact, observation, at, config)
        told_before = state.told if state is not None else frozenset()
    new_state = _anchored(base, scan, at)
    before = _relations(state, config)
    after = relations(new_state.claims, new_state.identified, config.sharing_policy)
    digest = _digest(new_state, scan, after)
    touched = {t for t in (_tid(fact), _patched(observation)) if t is not None}
    changes = _tell(
        state,
        new_state,
        before,
        after,
        digest,
        scan,
        told_before,
        touched,
        late,
        history,
        fact,
        observation,
        at,
        config,
    )
    return ChainOutcome(
        new_state,
        changes,
        (fact,) if fact is not None else (),
        (observation,) if observation is not None else (),
    )


# --- merging ------------------------------------------------------------------------------


def _empty(event: StoreEvent) -> ChainState:
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


def _with_claims(state: ChainState, said: EventFacts) -> ChainState:
    if said.claim is None:
        return state
    claims = union_claims(state.claims, (said.claim,))
    return state if claims == state.claims else replace(state, claims=claims)


def _transaction(
    state: ChainState | None, history: History, transaction_id: str
) -> TransactionFact | None:
    if state is not None:
        known = state.transactions.get(transaction_id)
        if known is not None:
            return known
    return history.transaction(transaction_id)


def _has_transactions(state: ChainState | None) -> bool:
    return state is not None and (bool(state.transactions) or state.anchor is not None)


def _tid(fact: TransactionFact | None) -> str | None:
    return fact.info.transaction_id if fact is not None else None


def _patched(observation: Observation | None) -> str | None:
    if observation is None:
        return None
    if observation.patch is not None:
        return observation.patch.transaction_id
    if observation.deferral is not None:
        return observation.deferral.transaction_id
    return None


# --- reading: the tail, or everything ---------------------------------------------------


def _is_late(
    state: ChainState,
    fact: TransactionFact | None,
    observation: Observation | None,
    history: History,
    at: datetime,
) -> bool:
    """Whether the input bears on facts before the checkpoint (or is folded before it)."""
    anchor = state.anchor
    if anchor is None:
        return False
    since = anchor.start
    if at < since:
        return True
    if fact is not None and fact.info.is_subscription:
        tid = fact.info.transaction_id
        if tid not in state.transactions and (
            fact.info.purchased_at < since or history.transaction(tid) is not None
        ):
            return True
    if observation is not None:
        if observation.renewal is not None and observation.signed_at < since:
            return True
        if observation.terminated_at is not None and observation.terminated_at < since:
            return True
        patched = _patched(observation)
        if (
            patched is not None
            and patched not in state.transactions
            and (fact is None or fact.info.transaction_id != patched)
            and history.transaction(patched) is not None
        ):
            return True
    return False


def _merged(
    transactions: Mapping[str, TransactionFact],
    observations: Iterable[Observation],
    fact: TransactionFact | None,
    observation: Observation | None,
) -> tuple[dict[str, TransactionFact], list[Observation]]:
    txs = dict(transactions)
    if fact is not None:
        txs[fact.info.transaction_id] = fact
    obs = list(observations)
    if observation is not None:
        insort(obs, observation, key=observation_order)
    return txs, obs


def _read_tail(
    state: ChainState,
    fact: TransactionFact | None,
    observation: Observation | None,
    at: datetime,
    config: FoldConfig,
) -> Scan:
    txs, obs = _merged(state.transactions, state.observations, fact, observation)
    return read_facts(txs, obs, state.anchor, at, config, state.store)


def _read_everything(
    state: ChainState,
    fact: TransactionFact | None,
    observation: Observation | None,
    history: History,
    at: datetime,
    config: FoldConfig,
) -> tuple[Scan, frozenset[str]]:
    """Every fact read from the beginning, and what the same reading told before them."""
    old_txs, old_obs = history.facts()
    assert state.at is not None
    told_before = frozenset(
        i.mark for i in read_facts(old_txs, old_obs, None, state.at, config, state.store).items
    )
    txs, obs = _merged(old_txs, old_obs, fact, observation)
    return read_facts(txs, obs, None, at, config, state.store), told_before


def _anchored(state: ChainState, scan: Scan, at: datetime) -> ChainState:
    """The state with its tail: the facts from the reading's checkpoint on."""
    anchor = scan.anchor if scan.anchor is not None else scan.start
    if anchor is None:
        # Read from the beginning (an earlier checkpoint no longer holds: the input was
        # folded before it): the tail is every fact.
        return replace(
            state,
            seq=state.seq + 1,
            anchor=None,
            transactions=dict(scan.transactions),
            observations=tuple(scan.observations),
            told=frozenset(i.mark for i in scan.items),
            at=at,
        )
    since = anchor.start
    tail = {p.tx.transaction_id for p in scan.periods if p.start >= since}
    subscriptions = {p.tx.transaction_id for p in scan.periods}
    transactions = {
        tid: f for tid, f in scan.transactions.items() if not f.info.is_subscription or tid in tail
    }
    observations = tuple(
        o for o in scan.observations if _keeps(o, since, transactions, subscriptions)
    )
    told = frozenset(
        i.mark for i, origin in zip(scan.items, scan.origins, strict=True) if origin >= since
    )
    return replace(
        state,
        seq=state.seq + 1,
        anchor=anchor,
        transactions=transactions,
        observations=observations,
        told=told,
        at=at,
    )


def _keeps(
    o: Observation,
    since: datetime,
    transactions: Mapping[str, TransactionFact],
    subscriptions: set[str],
) -> bool:
    """Whether the tail's reading needs this observation."""
    if o.renewal is not None and o.signed_at >= since:
        return True
    if o.terminated_at is not None and o.terminated_at >= since:
        return True
    tid = _patched(o)
    # A statement about a transaction of the tail, or one not yet known (kept for it).
    return tid is not None and (tid in transactions or tid not in subscriptions)


# --- telling the profiles -----------------------------------------------------------------


def _relations(state: ChainState | None, config: FoldConfig) -> Relations | None:
    if state is None:
        return None
    return relations(state.claims, state.identified, config.sharing_policy)


def _digest(state: ChainState, scan: Scan, rel: Relations) -> ChainDigest:
    anchor = state.anchor
    since = anchor.start if anchor is not None else None
    start_index = scan.anchor_index if scan.anchor is not None else 0
    return ChainDigest(
        chain_key=state.chain_key,
        store=state.store,
        environment=state.environment,
        original_transaction_id=state.original_transaction_id,
        seq=state.seq,
        at=scan.at,
        parent=rel.parent,
        holders=rel.holders,
        claimants=rel.claimants,
        claimed_by=tuple(dict.fromkeys(c.profile_id for c in state.claims)),
        identified=state.identified,
        periods=tuple(scan.periods[start_index:]),
        renewals=tuple(o for o in scan.renewals if since is None or o.signed_at >= since),
        before=Before(
            last_renewal=anchor.last_renewal,
            cancelled_at=anchor.cancelled_at,
            ever_paid=anchor.ever_paid,
            revenue_usd=anchor.revenue_usd,
            proceeds_usd=anchor.proceeds_usd,
            first_purchased_at=anchor.first_purchased_at,
        )
        if anchor is not None
        else None,
        spans=tuple(scan.spans),
        purchases=tuple(scan.purchases),
        instants=tuple(scan.instants),
    )


def payments_of(chain_key: str, scan: Scan, only: set[str] | None = None) -> tuple[Payment, ...]:
    """The transactions money is counted from, for the parent's email attribution."""
    out = [
        Payment(
            chain_key=chain_key,
            transaction_id=p.tx.transaction_id,
            purchased_at=p.start,
            price_usd=p.tx.revenue_usd,
            refunded=p.tx.revoked_at is not None,
        )
        for p in scan.periods
        if only is None or p.tx.transaction_id in only
    ]
    out += [
        Payment(
            chain_key=chain_key,
            transaction_id=one.tx.transaction_id,
            purchased_at=one.tx.purchased_at,
            price_usd=one.tx.revenue_usd,
            refunded=one.tx.revoked_at is not None,
        )
        for one in scan.purchases
        if only is None or one.tx.transaction_id in only
    ]
    return tuple(out)


def _tell(
    state: ChainState | None,
    new_state: ChainState,
    before: Relations | None,
    after: Relations,
    digest: ChainDigest,
    scan: Scan,
    told_before: frozenset[str],
    touched: set[str],
    late: bool,
    history: History,
    fact: TransactionFact | None,
    observation: Observation | None,
    at: datetime,
    config: FoldConfig,
) -> tuple[ChainChanged, ...]:
    known = set(related_profiles(state.claims)) if state is not None else set()
    related = related_profiles(new_state.claims)
    parent = after.parent
    changes: list[ChainChanged] = []
    for profile in related:
        told: tuple[Item, ...] = ()
        payments: tuple[Payment, ...] = ()
        if profile == parent:
            if profile in known and before is not None and before.parent == profile:
                told = tuple(i for i in scan.items if i.mark not in told_before)
                payments = payments_of(new_state.chain_key, scan, None if late else touched)
            else:
                # A new parent is told the whole journey, and every transaction.
                whole = (
                    scan
                    if late or state is None
                    else _read_all(state, history, fact, observation, at, config)
                )
                told = tuple(whole.items)
                payments = payments_of(new_state.chain_key, whole)
        changes.append(
            ChainChanged(profile_id=profile, digest=digest, told=told, payments=payments, at=at)
        )
    return tuple(changes)


def _read_all(
    state: ChainState,
    history: History,
    fact: TransactionFact | None,
    observation: Observation | None,
    at: datetime,
    config: FoldConfig,
) -> Scan:
    old_txs, old_obs = history.facts()
    txs, obs = _merged(old_txs, old_obs, fact, observation)
    return read_facts(txs, obs, None, at, config, state.store)


def claim_id_for(kind: ClaimKind, command_id: str, chain_key: str) -> str:
    return str(stable_id("claim", kind.value, command_id, chain_key))
