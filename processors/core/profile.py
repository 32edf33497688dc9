"""The profile fold: `evolve_profile(state, message, now) -> outcome`.

Before a message applies, the profile is advanced through every wake-up instant up to
`now`, so that held events fall due and access expires at the instant it should, and
at one instant held events apply before expiries are evaluated. What the profile emits
is what it shows beyond what it has told (kept in its state): a journey item once, an
access-level change each time a level's state changes. Between wake-up instants only
the chains a message changes can show anything new, so only they are read again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from processors.core.access import access_levels
from processors.core.chain import claim_id_for, parse_chain_key
from processors.core.config import DEFAULT_CONFIG, FoldConfig
from processors.core.ids import stable_id
from processors.core.journey import is_lapse, lapse, story_order
from processors.core.validation import Error, apply_attributes, note_text_error, transaction_error
from processors.core.view import next_wakeup, related_chains
from schemas.base import replace, to_json
from schemas.commands import (
    AddNote,
    CommandBase,
    CreateProfile,
    DeleteNote,
    DeleteProfile,
    EditNote,
    GrantAccessLevel,
    IdentifyProfile,
    RecordEmailEvent,
    RestorePurchases,
    RevokeAccessLevel,
    SetCustomAttributes,
    SetTransaction,
    TransferAccess,
    Unsubscribe,
    UpdateProfile,
)
from schemas.enums import ClaimKind, EventType, OfferType
from schemas.events import ProfileRef, StoreEvent
from schemas.messages import (
    ChainChanged,
    ChainMessage,
    ClaimantIdentified,
    ClaimChain,
    EntitlementsReceived,
    ProfileMessage,
    ReleaseIdentity,
    Tick,
)
from schemas.money import shown_price, shown_proceeds
from schemas.outputs import Applied, ProfileEvent, Rejection
from schemas.profile import PROFILE_FIELD_NAMES, Note
from schemas.state import ChainDigest, Claim, EmailRecord, Grant, Item, Payment, ProfileState
from schemas.views import AccessLevelView

E = EventType


@dataclass(frozen=True, slots=True)
class ProfileOutcome:
    state: ProfileState
    events: tuple[ProfileEvent, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    to_chains: tuple[ChainMessage, ...] = ()
    to_profiles: tuple[EntitlementsReceived, ...] = ()
    to_identity: tuple[ReleaseIdentity, ...] = ()
    # The command this message was, once accepted: a waiting API call answers from it.
    applied: Applied | None = None
    # Payments of the parent chains that changed (kept beside the state on a changelog).
    payments: tuple[Payment, ...] = ()


@dataclass(frozen=True, slots=True)
class _Step:
    state: ProfileState
    events: list[ProfileEvent] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    to_chains: list[ChainMessage] = field(default_factory=list)
    to_profiles: list[EntitlementsReceived] = field(default_factory=list)
    to_identity: list[ReleaseIdentity] = field(default_factory=list)
    # Journey items a chain has just told, by chain key.
    told: dict[str, tuple[Item, ...]] = field(default_factory=dict)
    payments: tuple[Payment, ...] = ()


def evolve_profile(
    state: ProfileState | None,
    message: ProfileMessage,
    now: datetime,
    config: FoldConfig = DEFAULT_CONFIG,
) -> ProfileOutcome:
    if state is None:
        state = ProfileState(profile_id=message.profile_id)
    if state.as_of is not None:
        now = max(now, state.as_of)  # time never runs backwards in a state
    advanced, timed = advance(state, now, config)
    step = _apply(advanced, message, now, config)
    new_state = _seen(step.state, message) if not step.rejections else step.state
    found: list[ProfileEvent] = []
    told: dict[str, Any] = {}
    update: dict[str, Any] = {"as_of": now}
    if new_state.exists and not new_state.deleted:
        # The message and the instant `now` are evaluated together, so that an input due
        # exactly when access would lapse leaves no gap.
        told, found = changes(new_state, now, config, _touched(advanced, new_state, now), step.told)
        update["next_wakeup_at"] = next_wakeup(new_state, now, config)
    if new_state is not advanced or found or told:
        update["version"] = advanced.version + 1
    new_state = replace(new_state, **update, **told)
    events = (*timed, *step.events, *found)
    applied = None
    if isinstance(message, CommandBase) and not step.rejections:
        applied = Applied(
            command_id=message.command_id,
            profile_id=new_state.profile_id,
            version=new_state.version,
            event_ids=tuple(e.profile_event_id for e in events),
        )
    return ProfileOutcome(
        new_state,
        events,
        tuple(step.rejections),
        tuple(step.to_chains),
        tuple(step.to_profiles),
        tuple(step.to_identity),
        applied,
        step.payments,
    )


# The app-side calls (DOMAIN.md 7): they set when the profile was last seen, and a create
# or identify says since when it is a customer.
_SEEN = (CreateProfile, IdentifyProfile, UpdateProfile, SetTransaction, RestorePurchases)
_CREATING = (CreateProfile, IdentifyProfile)


def _seen(state: ProfileState, message: ProfileMessage) -> ProfileState:
    if not isinstance(message, _SEEN) or not state.exists or state.deleted:
        return state
    at = message.issued_at
    update: dict[str, Any] = {}
    if state.last_seen_at is None or at > state.last_seen_at:
        update["last_seen_at"] = at
    if isinstance(message, _CREATING) and (state.created_at is None or at < state.created_at):
        update["created_at"] = at
    return replace(state, **update) if update else state


def advance(
    state: ProfileState, until: datetime, config: FoldConfig
) -> tuple[ProfileState, list[ProfileEvent]]:
    """Walk the profile through each wake-up instant before `until`."""
    if state.as_of is None or not state.exists or state.deleted:
        return state, []
    events: list[ProfileEvent] = []
    # The state records its next wake-up as of `as_of`; later ones are computed as we go.
    wake = state.next_wakeup_at
    while wake is not None and wake < until:
        told, found = changes(state, wake, config)
        bump = 1 if found or told else 0
        state = replace(state, **told, as_of=wake, version=state.version + bump)
        events += found
        wake = next_wakeup(state, wake, config)
    if wake != state.next_wakeup_at:
        state = replace(state, next_wakeup_at=wake)
    return state, events


def _touched(before: ProfileState, after: ProfileState, now: datetime) -> set[str] | None:
    """The chains a message changed, when only they can show something new at `now`:
    the rest were evaluated at `before.as_of` and change next at `before.next_wakeup_at`.
    None: every chain (a fresh profile, or a wake-up instant reached)."""
    if before.as_of is None or not before.exists:
        return None
    if before.next_wakeup_at is not None and now >= before.next_wakeup_at:
        return None
    return {key for key, chain in after.chains.items() if before.chains.get(key) is not chain}


def changes(
    state: ProfileState,
    at: datetime,
    config: FoldConfig,
    chains: set[str] | None = None,
    told: dict[str, tuple[Item, ...]] | None = None,
) -> tuple[dict[str, Any], list[ProfileEvent]]:
    """What the profile shows at `at` beyond what it has told, and the update of the
    state that remembers having told it. `chains` limits the journey to those named; `told`
    holds journey items the chains have just told."""
    me = state.profile_id
    events: list[ProfileEvent] = []
    ended = state.ended
    for r in related_chains(state):
        key = r.chain.chain_key
        if not r.is_parent or (chains is not None and key not in chains):
            continue
        items = list(told.get(key, ())) if told else []
        if r.chain.spans:
            prior = r.chain.before.last_renewal if r.chain.before is not None else None
            periods = {p.tx.transaction_id: p for p in r.chain.periods}
            for span in r.chain.spans:
                item = lapse(span, periods[span.last], r.chain.renewals, prior, at)
                if item is not None:
                    items.append(item)
        if not items:
            continue
        known = ended.get(key, frozenset())
        fresh: list[str] = []
        items.sort(key=story_order)
        for item in items:
            if is_lapse(item):
                mark = item.mark
                if mark in known or mark in fresh:
                    continue
                fresh.append(mark)
            events.append(_journey_event(me, r.chain, item, at))
        if fresh:
            ended = {**ended, key: known.union(fresh)}
    levels = access_levels(state, at, config)
    events += _level_events(me, state.levels, levels, at)
    update: dict[str, Any] = {}
    if ended is not state.ended:
        update["ended"] = ended
    if levels != state.levels:
        update["levels"] = levels
    return update, events


def _level_events(
    me: UUID,
    old_levels: dict[str, AccessLevelView],
    new_levels: dict[str, AccessLevelView],
    at: datetime,
) -> list[ProfileEvent]:
    """An update for each level whose activity, term, renewal or source changed."""
    events: list[ProfileEvent] = []
    for level, view in new_levels.items():
        old = old_levels.get(level)
        if old is None or _signature(old) != _signature(view):
            digest = to_json(view).decode()
            events.append(
                ProfileEvent(
                    profile_event_id=stable_id(me, "access", level, at.isoformat(), digest),
                    event_type=E.ACCESS_LEVEL_UPDATED,
                    event_datetime=at,
                    profile_id=me,
                    store=view.store,
                    environment=view.environment,
                    transaction_id=view.store_transaction_id,
                    original_transaction_id=view.store_original_transaction_id,
                    product_id=view.store_product_id,
                    expires_at=view.expires_at,
                    cancellation_reason=view.cancellation_reason,
                    access_level=view,
                )
            )
    for level, view in old_levels.items():
        if level not in new_levels and view.is_active:
            # The level's source went to another profile: it ends here, now.
            gone = replace(
                view, is_active=False, expires_at=at, is_lifetime=False, will_renew=False
            )
            events.append(
                ProfileEvent(
                    profile_event_id=stable_id(me, "access", level, at.isoformat(), "gone"),
                    event_type=E.ACCESS_LEVEL_UPDATED,
                    event_datetime=at,
                    profile_id=me,
                    store=view.store,
                    expires_at=at,
                    access_level=gone,
                )
            )
    return events


def _signature(view: AccessLevelView) -> tuple[object, ...]:
    """What an access-level update is about: its activity, term, renewal and source."""
    return (
        view.is_active,
        view.is_lifetime,
        view.starts_at,
        view.expires_at,
        view.will_renew,
        view.is_in_grace_period,
        view.is_refund,
        view.store,
        view.store_product_id,
        view.store_transaction_id,
        view.shared_from_profile_id,
    )


def _journey_event(me: UUID, chain: ChainDigest, item: Item, at: datetime) -> ProfileEvent:
    tx = item.tx
    priced = item.proceeds_usd is not None or item.event_type in (
        E.SUBSCRIPTION_REFUNDED,
        E.NON_SUBSCRIPTION_PURCHASE_REFUNDED,
    )
    return ProfileEvent(
        profile_event_id=stable_id(me, chain.chain_key, item.key, item.event_type.value),
        event_type=item.event_type,
        event_datetime=item.at,
        profile_id=me,
        is_future_dated=item.at > at,
        store=chain.store,
        environment=chain.environment,
        chain_key=chain.chain_key,
        transaction_id=tx.transaction_id if tx else None,
        original_transaction_id=chain.original_transaction_id,
        product_id=tx.product_id if tx else None,
        price_local=tx.price_local if tx and priced else None,
        currency=tx.currency if tx and priced else None,
        price_usd=shown_price(tx.price_usd) if tx and priced else None,
        proceeds_usd=shown_proceeds(item.proceeds_usd) if item.proceeds_usd is not None else None,
        rate_after_first_year=item.rate_after_first_year,
        expires_at=item.expires_at,
        cancellation_reason=item.reason,
    )


# --- applying one message -------------------------------------------------------------


def _apply(
    state: ProfileState, message: ProfileMessage, now: datetime, config: FoldConfig
) -> _Step:
    match message:
        case Tick():
            return _Step(state)
        case ChainChanged():
            return _chain_changed(state, message, now)
        case EntitlementsReceived():
            return _entitlements_received(state, message, now)
    if message.command_id in state.seen:
        return _Step(state)  # a duplicate command changes nothing
    if state.deleted or (not state.exists and not isinstance(message, CreateProfile)):
        return _reject(
            state,
            message,
            ("profile_does_not_exist", "non_field_errors", "Profile does not exist"),
            status=404,
        )
    step = _command(state, message, now, config)
    if step.state is not state:
        step = dataclasses.replace(
            step,
            state=replace(step.state, seen=step.state.seen | {message.command_id}),
        )
    return step


def _command(state: ProfileState, command: CommandBase, now: datetime, config: FoldConfig) -> _Step:
    match command:
        case CreateProfile():
            return _create(state, command, config)
        case IdentifyProfile():
            return _identify(state, command, command.customer_user_id)
        case UpdateProfile():
            return _update(state, command, config)
        case SetCustomAttributes():
            return _update(state, command, config)
        case SetTransaction():
            return _set_transaction(state, command)
        case GrantAccessLevel():
            return _grant(state, command, now, config)
        case RevokeAccessLevel():
            return _revoke(state, command, now, config)
        case AddNote() | EditNote() | DeleteNote():
            return _note(state, command, config)
        case TransferAccess():
            return _transfer(state, command, config)
        case RestorePurchases():
            return _restore(state, command)
        case DeleteProfile():
            return _delete(state, command)
        case RecordEmailEvent():
            return _email(state, command)
        case Unsubscribe():
            return _unsubscribe(state, command)
    raise TypeError(f"unhandled command {type(command).__name__}")


def _event(
    state: ProfileState, command_id: str, kind: EventType, at: datetime, **detail: str
) -> ProfileEvent:
    return ProfileEvent(
        profile_event_id=stable_id(state.profile_id, command_id, kind.value),
        event_type=kind,
        event_datetime=at,
        profile_id=state.profile_id,
        detail=detail,
    )


def _reject(state: ProfileState, command: CommandBase, error: Error, status: int = 400) -> _Step:
    code, source, message = error
    rejection = Rejection(
        command_id=command.command_id,
        profile_id=state.profile_id,
        error_code=code,
        source=source,
        message=message,
        status_code=status,
    )
    return _Step(state, rejections=[rejection])


def _create(state: ProfileState, command: CreateProfile, config: FoldConfig) -> _Step:
    if state.exists:
        step = _identify(state, command, command.customer_user_id)
        if step.rejections:
            return step
        update = UpdateProfile(
            command_id=command.command_id,
            issued_at=command.issued_at,
            profile_id=command.profile_id,
            fields=command.fields,
            custom_attributes=command.custom_attributes,
        )
        more = _update(step.state, update, config)
        return dataclasses.replace(more, events=step.events + more.events, to_chains=step.to_chains)
    attributes = apply_attributes({}, command.custom_attributes, config)
    if isinstance(attributes, tuple):
        return _reject(state, command, attributes)
    created = replace(
        state,
        exists=True,
        created_at=command.issued_at,
        fields=command.fields,
        custom_attributes=attributes,
    )
    step = _Step(
        created, events=[_event(created, command.command_id, E.PROFILE_CREATED, command.issued_at)]
    )
    if command.customer_user_id is None:
        return step
    identified = _identify(created, command, command.customer_user_id)
    return dataclasses.replace(identified, events=step.events + identified.events)


def _identify(state: ProfileState, command: CommandBase, customer_user_id: str | None) -> _Step:
    if customer_user_id is None or customer_user_id == state.customer_user_id:
        return _Step(state)
    if state.customer_user_id is not None:
        return _reject(
            state,
            command,
            (
                "validation_error",
                "customer_user_id",
                "the profile already has another customer_user_id",
            ),
        )
    identified = replace(state, customer_user_id=customer_user_id)
    return _Step(
        identified,
        events=[
            _event(
                identified,
                command.command_id,
                E.PROFILE_IDENTIFIED,
                command.issued_at,
                customer_user_id=customer_user_id,
            )
        ],
        to_chains=[
            ClaimantIdentified(chain_key=key, profile_id=state.profile_id, at=command.issued_at)
            for key in _claimed(state)
        ],
    )


def _claimed(state: ProfileState) -> list[str]:
    me = state.profile_id
    return [key for key, chain in sorted(state.chains.items()) if me in chain.claimed_by]


def _update(
    state: ProfileState, command: UpdateProfile | SetCustomAttributes, config: FoldConfig
) -> _Step:
    attributes = apply_attributes(state.custom_attributes, command.custom_attributes, config)
    if isinstance(attributes, tuple):
        return _reject(state, command, attributes)
    update: dict[str, Any] = {"custom_attributes": attributes}
    if isinstance(command, UpdateProfile):
        given = {
            name: value
            for name in PROFILE_FIELD_NAMES
            if (value := getattr(command.fields, name)) is not None
        }
        given.update(dict.fromkeys(command.unset))
        update["fields"] = replace(state.fields, **given)
        if command.seen_at is not None:
            update["last_seen_at"] = max(command.seen_at, state.last_seen_at or command.seen_at)
    updated = replace(state, **update)
    if updated == state:
        return _Step(state)
    changed = sorted(
        {
            k
            for k in sorted(PROFILE_FIELD_NAMES)
            if getattr(updated.fields, k) != getattr(state.fields, k)
        }
        | ({"custom_attributes"} if attributes != state.custom_attributes else set())
    )
    return _Step(
        updated,
        events=[
            _event(
                updated,
                command.command_id,
                E.PROFILE_UPDATED,
                command.issued_at,
                changed=",".join(changed),
            )
        ],
    )


def _set_transaction(state: ProfileState, command: SetTransaction) -> _Step:
    error = transaction_error(command)
    if error is not None:
        return _reject(state, command, error)
    tx = command.transaction
    if not tx.is_subscription:
        kind = E.NON_SUBSCRIPTION_PURCHASE
    elif tx.offer is not None and tx.offer.type is OfferType.FREE_TRIAL:
        kind = E.TRIAL_STARTED
    else:
        kind = E.SUBSCRIPTION_STARTED
    event = StoreEvent(
        event_id=f"set_transaction:{command.command_id}",
        event_type=kind,
        store=command.store,
        environment=command.environment,
        original_transaction_id=tx.original_transaction_id,
        transaction_id=tx.transaction_id,
        product_id=tx.product_id,
        effective_at=tx.purchased_at,
        signed_at=command.issued_at,
        received_at=command.issued_at,
        source=f"command:{command.command_id}",
        profile=ProfileRef(profile_id=state.profile_id),
        transaction=tx,
        renewal=command.renewal,
    )
    # The transaction reaches this profile through its chain; the command itself is done.
    return _Step(replace(state, seen=state.seen | {command.command_id}), to_chains=[event])


def _grant(
    state: ProfileState, command: GrantAccessLevel, now: datetime, config: FoldConfig
) -> _Step:
    level = command.access_level_id
    if level not in config.access_levels:
        return _reject(state, command, _unknown_level(level))
    if command.expires_at is not None and command.expires_at <= now:
        return _reject(
            state, command, ("expires_date_error", "expires_at", "expires_at must be in the future")
        )
    current = state.grants.get(level)
    if current is not None and _decreases(current.expires_at, command.expires_at):
        return _reject(
            state,
            command,
            ("expires_date_error", "expires_at", "expires_at can't be decreased once set"),
        )
    grant = Grant(
        access_level_id=level,
        granted_at=command.issued_at,
        starts_at=command.starts_at or command.issued_at,
        expires_at=command.expires_at,
    )
    granted = replace(state, grants={**state.grants, level: grant})
    detail = {
        "access_level_id": level,
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else "lifetime",
    }
    return _Step(
        granted,
        events=[
            _event(granted, command.command_id, E.ACCESS_LEVEL_GRANTED, command.issued_at, **detail)
        ],
    )


def _decreases(current: datetime | None, requested: datetime | None) -> bool:
    if current is None:
        return requested is not None  # lifetime can only stay lifetime
    return requested is not None and requested < current


def _unknown_level(level: str) -> Error:
    return (
        "paid_access_level_does_not_exist",
        "non_field_errors",
        f"Paid access level `{level}` does not exist",
    )


def _revoke(
    state: ProfileState, command: RevokeAccessLevel, now: datetime, config: FoldConfig
) -> _Step:
    level = command.access_level_id
    if level not in config.access_levels:
        return _reject(state, command, _unknown_level(level))
    view = access_levels(state, now, config).get(level)
    if view is None or not view.is_active:
        return _reject(
            state,
            command,
            (
                "profile_paid_access_level_does_not_exist",
                "non_field_errors",
                f"Profile has no paid access level `{level}`",
            ),
        )
    revoke_at = max(command.revoke_at or now, now)
    if not view.is_lifetime and view.expires_at is not None and revoke_at > view.expires_at:
        return _reject(
            state,
            command,
            (
                "revocation_date_more_than_expiration_date",
                "revoke_at",
                "revoke_at is later than the access level's expires_at",
            ),
        )
    revoked = replace(state, level_cutoffs={**state.level_cutoffs, level: revoke_at})
    event = _event(
        revoked, command.command_id, E.ACCESS_LEVEL_REVOKED, revoke_at, access_level_id=level
    )
    return _Step(revoked, events=[replace(event, is_future_dated=revoke_at > now)])


def _note(
    state: ProfileState, command: AddNote | EditNote | DeleteNote, config: FoldConfig
) -> _Step:
    notes = {n.note_id: n for n in state.notes}
    existing = notes.get(command.note_id)
    match command:
        case AddNote():
            if existing is not None:
                return _reject(
                    state, command, ("validation_error", "note_id", "a note with this id exists")
                )
            if len(notes) >= config.max_notes:
                return _reject(
                    state,
                    command,
                    (
                        "validation_error",
                        "non_field_errors",
                        f"a profile has at most {config.max_notes} notes",
                    ),
                )
            if (error := note_text_error(command.text, config)) is not None:
                return _reject(state, command, error)
            notes[command.note_id] = Note(
                note_id=command.note_id,
                text=command.text,
                created_at=command.issued_at,
                updated_at=command.issued_at,
            )
            action = "added"
        case EditNote():
            if existing is None:
                return _reject(state, command, _NOTE_MISSING, status=404)
            if (error := note_text_error(command.text, config)) is not None:
                return _reject(state, command, error)
            notes[command.note_id] = replace(
                existing, text=command.text, updated_at=command.issued_at
            )
            action = "edited"
        case DeleteNote():
            if existing is None:
                return _reject(state, command, _NOTE_MISSING, status=404)
            del notes[command.note_id]
            action = "deleted"
    noted = replace(
        state, notes=tuple(sorted(notes.values(), key=lambda n: (n.created_at, n.note_id)))
    )
    return _Step(
        noted,
        events=[
            _event(
                noted,
                command.command_id,
                E.PROFILE_UPDATED,
                command.issued_at,
                note=action,
                note_id=command.note_id,
            )
        ],
    )


_NOTE_MISSING: Error = ("note_does_not_exist", "note_id", "Note does not exist")


def _transfer(state: ProfileState, command: TransferAccess, config: FoldConfig) -> _Step:
    me = state.profile_id
    claims = [
        ClaimChain(
            chain_key=r.chain.chain_key,
            claim=Claim(
                at=command.issued_at,
                claim_id=claim_id_for(ClaimKind.TRANSFER, command.command_id, r.chain.chain_key),
                profile_id=command.to_profile_id,
                kind=ClaimKind.TRANSFER,
                counterpart=me,
            ),
        )
        for r in related_chains(state)
        if me in r.chain.claimants
    ]
    marked = replace(state, seen=state.seen | {command.command_id})
    return _Step(
        marked,
        events=[
            _event(
                marked,
                command.command_id,
                E.ENTITLEMENTS_TRANSFERRED,
                command.issued_at,
                to_profile_id=str(command.to_profile_id),
            )
        ],
        to_chains=list(claims),
        to_profiles=[
            EntitlementsReceived(
                profile_id=command.to_profile_id,
                from_profile_id=me,
                command_id=command.command_id,
                at=command.issued_at,
            )
        ],
    )


def _restore(state: ProfileState, command: RestorePurchases) -> _Step:
    for key in command.chain_keys:
        try:
            parse_chain_key(key)
        except ValueError as error:
            return _reject(state, command, ("validation_error", "chain_keys", str(error)))
    claims = [
        ClaimChain(
            chain_key=key,
            identified=state.customer_user_id is not None,
            claim=Claim(
                at=command.issued_at,
                claim_id=claim_id_for(ClaimKind.RESTORE, command.command_id, key),
                profile_id=state.profile_id,
                kind=ClaimKind.RESTORE,
            ),
        )
        for key in command.chain_keys
    ]
    return _Step(replace(state, seen=state.seen | {command.command_id}), to_chains=list(claims))


def _delete(state: ProfileState, command: DeleteProfile) -> _Step:
    releases = [
        ClaimChain(
            chain_key=key,
            claim=Claim(
                at=command.issued_at,
                claim_id=claim_id_for(ClaimKind.DELETE, command.command_id, key),
                profile_id=state.profile_id,
                kind=ClaimKind.DELETE,
            ),
        )
        for key in sorted(state.chains)
    ]
    # Erasure: personal data, history and chain copies go; the tombstone keeps it deleted.
    tombstone = ProfileState(
        profile_id=state.profile_id,
        exists=True,
        deleted=True,
        seen=state.seen,
        as_of=state.as_of,
        version=state.version,
    )
    identity = (
        [
            ReleaseIdentity(
                customer_user_id=state.customer_user_id,
                profile_id=state.profile_id,
                at=command.issued_at,
            )
        ]
        if state.customer_user_id
        else []
    )
    return _Step(
        tombstone,
        events=[_event(tombstone, command.command_id, E.PROFILE_DELETED, command.issued_at)],
        to_chains=list(releases),
        to_identity=identity,
    )


_EMAIL_EVENTS = {
    "sent": (E.EMAIL_SENT, "sent_at"),
    "delivered": (E.EMAIL_DELIVERED, "delivered_at"),
    "opened": (E.EMAIL_OPENED, "opened_at"),
    "clicked": (E.EMAIL_CLICKED, "clicked_at"),
}


def _email(state: ProfileState, command: RecordEmailEvent) -> _Step:
    kind, attribute = _EMAIL_EVENTS[command.event.value]
    record = state.emails.get(command.email_id) or EmailRecord(
        email_id=command.email_id, campaign_id=command.campaign_id
    )
    known = getattr(record, attribute)
    if known is not None and known <= command.occurred_at:
        return _Step(replace(state, seen=state.seen | {command.command_id}))
    record = replace(record, **{attribute: command.occurred_at})
    recorded = replace(state, emails={**state.emails, command.email_id: record})
    detail = {"email_id": command.email_id}
    if command.campaign_id:
        detail["campaign_id"] = command.campaign_id
    return _Step(
        recorded, events=[_event(recorded, command.command_id, kind, command.occurred_at, **detail)]
    )


def _unsubscribe(state: ProfileState, command: Unsubscribe) -> _Step:
    if state.email_unsubscribed_at is not None:
        return _Step(state)  # idempotent: already on the suppression list
    unsubscribed = replace(state, email_unsubscribed_at=command.issued_at)
    return _Step(
        unsubscribed,
        events=[_event(unsubscribed, command.command_id, E.EMAIL_UNSUBSCRIBED, command.issued_at)],
    )


def _chain_changed(state: ProfileState, message: ChainChanged, now: datetime) -> _Step:
    if state.deleted:
        return _Step(state)
    digest = message.digest
    key = digest.chain_key
    known = state.chains.get(key)
    if known is not None and digest.seq <= known.seq:
        return _Step(state)  # told before: a redelivery
    me = state.profile_id
    update: dict[str, Any] = {"chains": {**state.chains, key: digest}}
    if message.payments:
        payments = dict(state.payments)
        for payment in message.payments:
            payments[payment.key] = payment
        update["payments"] = payments
    events: list[ProfileEvent] = []
    if not state.exists:
        # A store event named a profile nobody created yet: it exists from now on.
        update.update(exists=True, created_at=now)
        events.append(_event(state, f"implicit:{key}", E.PROFILE_CREATED, now))
    to_chains: list[ChainMessage] = []
    if (
        state.customer_user_id is not None
        and me not in digest.identified
        and me in digest.claimed_by
    ):
        to_chains.append(ClaimantIdentified(chain_key=key, profile_id=me, at=now))
    told = {key: message.told} if message.told and digest.parent == me else {}
    return _Step(
        replace(state, **update),
        events=events,
        to_chains=to_chains,
        told=told,
        payments=message.payments,
    )


def _entitlements_received(
    state: ProfileState, message: EntitlementsReceived, now: datetime
) -> _Step:
    marker = f"received:{message.command_id}"
    if state.deleted or marker in state.seen:
        return _Step(state)
    update: dict[str, Any] = {"seen": state.seen | {marker}}
    events = []
    if not state.exists:
        update.update(exists=True, created_at=now)
        events.append(_event(state, marker, E.PROFILE_CREATED, now))
    received = replace(state, **update)
    events.append(
        _event(
            received,
            marker,
            E.ENTITLEMENTS_TRANSFERRED,
            message.at,
            from_profile_id=str(message.from_profile_id),
        )
    )
    return _Step(received, events=events)
