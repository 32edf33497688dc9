"""The folds wired together in memory: the reference the stream topology must agree with.

Messages between the chain, profile and identity folds go through one FIFO queue, each
addressed to the fold that takes it, in the order the folds emitted them; the stream
processor sends the same messages over topics. The ledger is deterministic: the same
inputs at the same instants give the same profiles and events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from uuid import UUID

from processors.core.chain import evolve_chain
from processors.core.config import DEFAULT_CONFIG, FoldConfig
from processors.core.facts import FactBook
from processors.core.identity import customer_of, evolve_identity
from processors.core.integration import published
from processors.core.profile import evolve_profile
from processors.core.view import profile_view
from schemas.commands import CreateProfile, IdentifyProfile
from schemas.events import StoreEvent
from schemas.integration import IntegrationEvent
from schemas.messages import (
    ChainMessage,
    IdentityMessage,
    IdentityResolved,
    Input,
    ProfileMessage,
    Tick,
    instant_of,
)
from schemas.outputs import ProfileEvent, Rejection
from schemas.state import ChainState, IdentityState, ProfileState
from schemas.views import ProfileView


class Fold(Enum):
    CHAIN = "chain"
    PROFILE = "profile"
    IDENTITY = "identity"


Routed = tuple[Fold, ChainMessage] | tuple[Fold, ProfileMessage] | tuple[Fold, IdentityMessage]


def route(item: Input) -> Fold:
    """Which fold an input from outside goes to first."""
    match item:
        case StoreEvent():
            named_by_customer = item.profile is not None and item.profile.profile_id is None
            return Fold.IDENTITY if named_by_customer else Fold.CHAIN
        case CreateProfile() | IdentifyProfile() if item.customer_user_id is not None:
            return Fold.IDENTITY
    return Fold.PROFILE


@dataclass
class Ledger:
    config: FoldConfig = DEFAULT_CONFIG
    chains: dict[str, ChainState] = field(default_factory=dict)
    # Each chain's facts, kept beside its state.
    facts: dict[str, FactBook] = field(default_factory=dict)
    profiles: dict[UUID, ProfileState] = field(default_factory=dict)
    identities: dict[str, IdentityState] = field(default_factory=dict)
    events: list[ProfileEvent] = field(default_factory=list)
    # The same events as integrations receive them (what `profile.events` carries).
    published: list[IntegrationEvent] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    resolved: list[IdentityResolved] = field(default_factory=list)
    # Read each chain's facts from the beginning for every input (the reference).
    from_scratch: bool = False

    def submit(self, item: Input) -> None:
        self._run((route(item), item))  # type: ignore[arg-type]

    def submit_all(self, items: Iterable[Input]) -> None:
        for item in items:
            self.submit(item)

    def advance(self, now: datetime) -> None:
        """Wake every profile at `now`, as the processor's timers would."""
        for profile_id in sorted(self.profiles):
            self._run((Fold.PROFILE, Tick(profile_id=profile_id, at=now)))

    def view(self, profile_id: UUID, now: datetime) -> ProfileView:
        return profile_view(self.profiles[profile_id], now, self.config)

    def views(self, now: datetime) -> list[ProfileView]:
        return [
            profile_view(state, now, self.config)
            for _, state in sorted(self.profiles.items())
            if state.exists
        ]

    def _run(self, first: Routed) -> None:
        queue: deque[Routed] = deque([first])
        while queue:
            fold, message = queue.popleft()
            queue.extend(self._dispatch(fold, message))

    def _dispatch(self, fold: Fold, message: object) -> list[Routed]:
        match fold:
            case Fold.CHAIN:
                return self._chain(message)  # type: ignore[arg-type]
            case Fold.PROFILE:
                return self._profile(message)  # type: ignore[arg-type]
            case Fold.IDENTITY:
                return self._identity(message)  # type: ignore[arg-type]

    def _chain(self, message: ChainMessage) -> list[Routed]:
        key = message.chain_key
        book = self.facts.setdefault(key, FactBook())
        outcome = evolve_chain(
            self.chains.get(key), message, book, self.config, from_scratch=self.from_scratch
        )
        if outcome.state is not None:
            self.chains[key] = outcome.state
        book.keep(outcome.transactions, outcome.observations)
        return [(Fold.PROFILE, m) for m in outcome.to_profiles]

    def _profile(self, message: ProfileMessage) -> list[Routed]:
        state = self.profiles.get(message.profile_id)
        now = instant_of(message)
        outcome = evolve_profile(state, message, now, self.config)
        self.profiles[message.profile_id] = outcome.state
        self.events += outcome.events
        self.published += published(outcome.state, outcome.events, self.config)
        self.rejections += outcome.rejections
        return [
            *((Fold.CHAIN, m) for m in outcome.to_chains),
            *((Fold.PROFILE, m) for m in outcome.to_profiles),
            *((Fold.IDENTITY, m) for m in outcome.to_identity),
        ]

    def _identity(self, message: IdentityMessage) -> list[Routed]:
        customer = customer_of(message)
        assert customer is not None, "only messages naming a customer user id are routed here"
        state = self.identities.get(customer) or IdentityState(customer_user_id=customer)
        outcome = evolve_identity(state, message)
        self.identities[customer] = outcome.state
        self.resolved += outcome.resolved
        return [
            *((Fold.PROFILE, m) for m in outcome.to_profiles),
            *((Fold.CHAIN, m) for m in outcome.to_chains),
        ]
