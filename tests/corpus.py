"""A deterministic corpus of inputs over many profiles: the flows of the scenario tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

from schemas.commands import CreateProfile, GrantAccessLevel, RestorePurchases
from schemas.enums import Store
from schemas.messages import Input
from tests.builders import T0, Chain, R

Flow = Callable[[UUID, int, datetime], list[Input]]


def _trial_then_cancel(p: UUID, i: int, t: datetime) -> list[Input]:
    c = Chain(otid=f"a{i}", profile=p)
    return [
        c.buy(f"a{i}-1", t, t + timedelta(days=7), trial=True),
        c.buy(f"a{i}-2", t + timedelta(days=7), t + timedelta(days=37)),
        c.auto_renew(False, t + timedelta(days=20)),
    ]


def _grace_then_recover(p: UUID, i: int, t: datetime) -> list[Input]:
    c = Chain(otid=f"g{i}", profile=p, store=Store.PLAY_STORE)
    return [
        c.buy(f"g{i}-1", t, t + timedelta(days=30), price="49.99"),
        c.billing_issue(t + timedelta(days=30), t + timedelta(days=36)),
        c.buy(f"g{i}-2", t + timedelta(days=33), t + timedelta(days=63), price="49.99"),
    ]


def _refund(p: UUID, i: int, t: datetime) -> list[Input]:
    c = Chain(otid=f"s{i}", profile=p, store=Store.STRIPE)
    return [
        c.buy(f"s{i}-1", t, t + timedelta(days=30), price="19.00"),
        c.refund(f"s{i}-1", t + timedelta(days=3)),
    ]


def _renewals(p: UUID, i: int, t: datetime) -> list[Input]:
    c = Chain(otid=f"r{i}", profile=p)
    renewals: list[Input] = [
        c.buy(f"r{i}-{m}", t + timedelta(days=30 * m), t + timedelta(days=30 * (m + 1)))
        for m in range(4)
    ]
    return [*renewals, c.expired(t + timedelta(days=120), R.VOLUNTARILY_CANCELLED)]


def _one_time_and_grant(p: UUID, i: int, t: datetime) -> list[Input]:
    c = Chain(profile=p)
    return [
        c.one_time(f"o{i}", t + timedelta(days=1)),
        GrantAccessLevel(
            command_id=f"grant-{i}",
            issued_at=t + timedelta(days=2),
            profile_id=p,
            access_level_id="premium",
            expires_at=t + timedelta(days=60),
        ),
    ]


FLOWS: tuple[Flow, ...] = (
    _trial_then_cancel,
    _grace_then_recover,
    _refund,
    _renewals,
    _one_time_and_grant,
)


def profile_id(i: int) -> UUID:
    return UUID(int=0x5B1ED6E5 << 96 | i)


def corpus(profiles: int, start: datetime = T0) -> tuple[list[Input], list[Input]]:
    """(commands that create the profiles, the store events and later commands)."""
    creates: list[Input] = []
    rest: list[Input] = []
    for i in range(profiles):
        p = profile_id(i)
        t = start + timedelta(hours=i)
        creates.append(
            CreateProfile(
                command_id=f"create-{i}", issued_at=t, profile_id=p, customer_user_id=f"user-{i}"
            )
        )
        rest += FLOWS[i % len(FLOWS)](p, i, t)
        if i % 7 == 3 and i >= 1:
            # Another profile restores the previous profile's first chain.
            previous = rest[-1]
            if hasattr(previous, "chain_key"):
                rest.append(
                    RestorePurchases(
                        command_id=f"restore-{i}",
                        issued_at=t + timedelta(days=50),
                        profile_id=p,
                        chain_keys=(previous.chain_key,),
                    )
                )
    return creates, rest
