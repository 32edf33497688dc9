"""Who a chain belongs to: its parent profile and the profiles holding its access (seed 004)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from processors.core.recall import recalled
from schemas.enums import ClaimKind, SharingPolicy
from schemas.state import Claim


@dataclass(frozen=True, slots=True)
class Relations:
    # The profile whose purchase this is: transactional events appear on it alone.
    parent: UUID | None
    # Profiles that have the chain's access levels now, in the order they claimed it.
    holders: tuple[UUID, ...]
    # Every profile still related to the chain (claimed and not transferred away or deleted).
    claimants: tuple[UUID, ...]


@recalled(8)
def relations(
    claims: tuple[Claim, ...], identified: frozenset[UUID], policy: SharingPolicy
) -> Relations:
    active: dict[UUID, None] = {}
    deleted: set[UUID] = set()
    parent: UUID | None = None
    for claim in claims:
        profile = claim.profile_id
        if profile in deleted:
            continue
        match claim.kind:
            case ClaimKind.PURCHASE | ClaimKind.RESTORE:
                active.setdefault(profile)
                if parent is None:
                    parent = profile
            case ClaimKind.TRANSFER:
                # Moves the counterpart's relation, parent role included, to this profile.
                if claim.counterpart not in active:
                    continue
                del active[claim.counterpart]
                active.setdefault(profile)
                if parent == claim.counterpart:
                    parent = profile
            case ClaimKind.DELETE:
                deleted.add(profile)
                active.pop(profile, None)
                if parent == profile:
                    # Deleting the holder frees the chain for the next profile that claims it.
                    parent = next(iter(active), None)
    claimants = tuple(active)
    return Relations(parent, _holders(claimants, identified, policy), claimants)


def _holders(
    claimants: tuple[UUID, ...], identified: frozenset[UUID], policy: SharingPolicy
) -> tuple[UUID, ...]:
    if policy is SharingPolicy.SHARED:
        return claimants
    known = [p for p in claimants if p in identified]
    if not known:
        return claimants
    # Anonymous profiles always share; among identified ones a single profile holds access:
    # the newest under `transfer`, the first under `disabled`.
    keeper = known[-1] if policy is SharingPolicy.TRANSFER else known[0]
    return tuple(p for p in claimants if p not in identified or p == keeper)
