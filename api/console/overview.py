"""The overview's figures, read from the read models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import tables
from schemas.enums import Environment, EventType, SubscriptionState

P = tables.profiles.c
E = tables.profile_events.c

# The journey events that move money: a payment adds its price, a refund takes it back.
PAID = (
    EventType.SUBSCRIPTION_STARTED,
    EventType.SUBSCRIPTION_RENEWED,
    EventType.TRIAL_CONVERTED,
    EventType.NON_SUBSCRIPTION_PURCHASE,
)
REFUNDED = (EventType.SUBSCRIPTION_REFUNDED, EventType.NON_SUBSCRIPTION_PURCHASE_REFUNDED)
DAYS, HOURS = 30, 48


@dataclass(frozen=True)
class Overview:
    states: list[tuple[str, int]]
    profiles: int
    # Per day, oldest first: (day, revenue, proceeds) in USD, refunds subtracted.
    money: list[tuple[str, Decimal, Decimal]]
    # Per hour, oldest first: (hour, journey events).
    activity: list[tuple[str, int]]


async def overview(engine: AsyncEngine, now: datetime) -> Overview:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=DAYS - 1)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    first_hour = this_hour - timedelta(hours=HOURS - 1)
    sign = sa.case((E.event_type.in_([t.value for t in REFUNDED]), -1), else_=1)
    proceeds = sa.cast(
        sa.func.json_extract_path_text(E.event, "event_properties", "proceeds_usd"), sa.Numeric
    )
    # Naive UTC timestamps, whatever the session's time zone.
    utc = sa.func.timezone("UTC", E.event_datetime)
    day = sa.func.date_trunc("day", utc)
    hour = sa.func.date_trunc("hour", utc)
    due = E.event_datetime <= now
    async with engine.connect() as connection:
        counted: dict[str, int] = dict(
            (
                await connection.execute(
                    sa.select(P.subscription_state, sa.func.count()).group_by(P.subscription_state)
                )
            ).all()
        )
        money_rows = (
            await connection.execute(
                sa.select(
                    day.label("day"),
                    sa.func.sum(sign * sa.func.coalesce(E.price_usd, 0)),
                    sa.func.sum(sign * sa.func.coalesce(proceeds, 0)),
                )
                .where(
                    E.event_type.in_([t.value for t in (*PAID, *REFUNDED)]),
                    E.event_datetime >= first_day,
                    due,
                    sa.or_(E.environment.is_(None), E.environment == Environment.PRODUCTION.value),
                )
                .group_by("day")
            )
        ).all()
        activity_rows = (
            await connection.execute(
                sa.select(hour.label("hour"), sa.func.count())
                .where(E.event_datetime >= first_hour, due)
                .group_by("hour")
            )
        ).all()
    money = {row[0].date(): (Decimal(row[1] or 0), Decimal(row[2] or 0)) for row in money_rows}
    activity = {row[0]: int(row[1]) for row in activity_rows}
    days = [(first_day + timedelta(days=i)).date() for i in range(DAYS)]
    hours = [(first_hour + timedelta(hours=i)).replace(tzinfo=None) for i in range(HOURS)]
    zero = (Decimal(0), Decimal(0))
    return Overview(
        states=[(state.value, int(counted.get(state.value, 0))) for state in SubscriptionState],
        profiles=sum(counted.values()),
        money=[
            (
                d.strftime("%b %d"),
                money.get(d, zero)[0].quantize(Decimal("0.01")),
                money.get(d, zero)[1].quantize(Decimal("0.01")),
            )
            for d in days
        ],
        activity=[(h.strftime("%d %Hh"), activity.get(h, 0)) for h in hours],
    )
