"""Queries on the read models: the profile list, one profile, its journey, segments."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import orjson
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from api.errors import ApiError
from projections import tables
from schemas.api import PageQuery, ProfileFilters, ProfileQuery, SegmentRequest

log = logging.getLogger(__name__)

P = tables.profiles.c

# The list's columns: what the CRM, Mail and RevenueCat list views show.
SUMMARY = (
    P.profile_id,
    P.customer_user_id,
    P.email,
    P.phone_number,
    P.first_name,
    P.last_name,
    P.country,
    P.store_country,
    P.platform,
    P.subscription_state,
    P.purchase_status,
    P.stores,
    P.environments,
    P.active_access_levels,
    P.total_revenue_usd,
    P.total_proceeds_usd,
    P.emails_sent,
    P.email_open_rate,
    P.email_subscribed,
    P.created_at,
    P.last_seen_at,
    P.last_activity_at,
)

SORTS: dict[str, Any] = {
    "ltv": P.total_revenue_usd,
    "created_at": tables.sort_instant(P.created_at),
    "last_seen_at": tables.sort_instant(P.last_seen_at),
    "last_activity_at": tables.sort_instant(P.last_activity_at),
}


@dataclass(frozen=True)
class Page:
    data: list[dict[str, Any]]
    next_cursor: str | None

    def body(self) -> dict[str, Any]:
        return {"data": self.data, "next_cursor": self.next_cursor}


def conditions(filters: ProfileFilters) -> list[sa.ColumnElement[bool]]:
    """The filters as SQL, each one narrowing the profiles."""
    out: list[sa.ColumnElement[bool]] = []
    if filters.subscription_state:
        out.append(P.subscription_state.in_([s.value for s in filters.subscription_state]))
    if filters.purchase_status:
        out.append(P.purchase_status.in_([s.value for s in filters.purchase_status]))
    if filters.store:
        stores = sa.literal([s.value for s in filters.store], ARRAY(sa.Text))
        out.append(P.stores.overlap(stores))
    if filters.country:
        out.append(sa.func.upper(P.country).in_([c.upper() for c in filters.country]))
    if filters.environment is not None:
        out.append(P.environments.any_() == filters.environment.value)
    if filters.access_level is not None:
        out.append(P.active_access_levels.any_() == filters.access_level)
    if filters.ltv_min is not None:
        out.append(P.total_revenue_usd >= filters.ltv_min)
    if filters.ltv_max is not None:
        out.append(P.total_revenue_usd <= filters.ltv_max)
    for column, low, high in (
        (P.created_at, filters.created_from, filters.created_to),
        (P.last_seen_at, filters.last_seen_from, filters.last_seen_to),
    ):
        if low is not None:
            out.append(column >= low)
        if high is not None:
            out.append(column <= high)
    attributes = tables.custom_attributes.c
    for key, value in filters.attributes.items():
        matches = attributes.text == value if isinstance(value, str) else attributes.number == value
        out.append(
            sa.exists().where(attributes.profile_id == P.profile_id, attributes.key == key, matches)
        )
    return out


def search(q: str) -> sa.ColumnElement[bool]:
    """A profile id, customer user id, email (any case), phone, or store transaction id.

    One index lookup per kind of id, their union the profiles found: an OR of them would
    make PostgreSQL read every profile."""
    found = tables.profiles.alias("found")
    ids = tables.transaction_ids.c
    lookups: list[sa.Select[Any]] = [
        sa.select(found.c.profile_id).where(found.c.customer_user_id == q),
        sa.select(found.c.profile_id).where(sa.func.lower(found.c.email) == q.lower()),
        sa.select(found.c.profile_id).where(found.c.phone_number == q),
        sa.select(ids.profile_id).where(ids.transaction_id == q),
    ]
    with contextlib.suppress(ValueError):
        lookups.append(sa.select(sa.literal(UUID(q), type_=P.profile_id.type)))
    return P.profile_id.in_(sa.union(*lookups))


def _encode(values: list[str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def _decode(cursor: str, sort: str) -> tuple[Any, UUID]:
    try:
        value, profile = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key: Any = Decimal(value) if sort == "ltv" else datetime.fromisoformat(value)
        return key, UUID(profile)
    except (ValueError, TypeError, binascii.Error, InvalidOperation, orjson.JSONDecodeError):
        raise ApiError(400, "validation_error", "cursor", "the cursor is not valid") from None


def _decode_event(cursor: str) -> tuple[datetime, int]:
    try:
        at, sequence = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), int(sequence)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ApiError(400, "validation_error", "cursor", "the cursor is not valid") from None


def _row(mapping: Any) -> dict[str, Any]:
    # Column names come as str subclasses, which JSON encoders refuse as keys.
    return {str(key): value for key, value in mapping.items()}


class ReadModels:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # --- profiles -------------------------------------------------------------------------

    async def _matching(self, query: ProfileQuery) -> list[sa.ColumnElement[bool]]:
        where = conditions(query)
        if query.segment is not None:
            where += conditions(await self.segment_filters(query.segment))
        if query.q is not None:
            where.append(search(query.q))
        return where

    async def count(self, query: ProfileQuery) -> int:
        """How many profiles the query's filters, segment and search match (all pages)."""
        statement = sa.select(sa.func.count()).select_from(tables.profiles)
        statement = statement.where(*await self._matching(query))
        async with self.engine.connect() as connection:
            return int(await connection.scalar(statement) or 0)

    async def profiles(self, query: ProfileQuery) -> Page:
        where = await self._matching(query)
        key = SORTS[query.sort]
        descending = query.order == "desc"
        if query.cursor is not None:
            value, after = _decode(query.cursor, query.sort)
            past = sa.tuple_(key, P.profile_id)
            bound = sa.tuple_(sa.literal(value), sa.literal(after))
            where.append(past < bound if descending else past > bound)
        ordering = (key.desc(), P.profile_id.desc()) if descending else (key, P.profile_id)
        statement = (
            sa.select(*SUMMARY, key.label("sort_key"))
            .where(*where)
            .order_by(*ordering)
            .limit(query.limit + 1)
        )
        async with self.engine.connect() as connection:
            rows = [_row(r) for r in (await connection.execute(statement)).mappings()]
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = None
        if more and rows:
            last = rows[-1]
            sort_key = last["sort_key"]
            text = str(sort_key) if query.sort == "ltv" else sort_key.isoformat()
            cursor = _encode([text, str(last["profile_id"])])
        for row in rows:
            del row["sort_key"]
        return Page(rows, cursor)

    async def profile(self, profile_id: UUID) -> dict[str, Any] | None:
        """The whole profile view, with the segments it is in (the `Profile` answer)."""
        async with self.engine.connect() as connection:
            stored = (await connection.execute(sa.select(tables.segments))).mappings().all()
            # A segment whose stored filters this version refuses matches nobody.
            usable = [
                (s, f)
                for s in stored
                if (f := _stored_filters(s["segment_id"], s["filters"])) is not None
            ]
            defined = [s for s, _ in usable]
            # The view and, in the same row, whether the profile matches each segment.
            matches = [sa.and_(sa.true(), *conditions(f)) for _, f in usable]
            statement = sa.select(P.view, *matches).where(P.profile_id == profile_id)
            row = (await connection.execute(statement)).first()
        if row is None:
            return None
        segments = [
            {"segment_id": segment["segment_id"], "name": segment["name"]}
            for segment, member in zip(defined, row[1:], strict=True)
            if member
        ]
        view = row[0]
        # One email-engagement block (DOMAIN.md 7), with the LTV Adapty Mail shows beside it.
        email = {**view["email"], "ltv_usd": view["revenue"]["total_revenue_usd"]}
        return {**view, "email": email, "segments": segments}

    async def exists(self, profile_id: UUID) -> bool:
        async with self.engine.connect() as connection:
            return bool(
                await connection.scalar(sa.select(sa.exists().where(P.profile_id == profile_id)))
            )

    async def profile_id_of(self, customer_user_id: str) -> UUID | None:
        async with self.engine.connect() as connection:
            found: UUID | None = await connection.scalar(
                sa.select(P.profile_id).where(P.customer_user_id == customer_user_id).limit(1)
            )
            return found

    async def events(self, profile_id: UUID, page: PageQuery, now: datetime) -> Page:
        """The journey, newest first; a future-dated event shows once it is due."""
        e = tables.profile_events.c
        where = [e.profile_id == profile_id, e.event_datetime <= now]
        if page.cursor is not None:
            at, after = _decode_event(page.cursor)
            where.append(
                sa.tuple_(e.event_datetime, e.sequence)
                < sa.tuple_(sa.literal(at), sa.literal(after))
            )
        statement = (
            sa.select(e.event, e.event_datetime, e.sequence)
            .where(*where)
            .order_by(e.event_datetime.desc(), e.sequence.desc())
            .limit(page.limit + 1)
        )
        async with self.engine.connect() as connection:
            rows = list((await connection.execute(statement)).all())
        more = len(rows) > page.limit
        rows = rows[: page.limit]
        cursor = None
        if more and rows:
            cursor = _encode([rows[-1].event_datetime.isoformat(), str(rows[-1].sequence)])
        return Page([row.event for row in rows], cursor)

    # --- segments -------------------------------------------------------------------------

    async def create_segment(self, request: SegmentRequest, now: datetime) -> dict[str, Any]:
        segment = {
            "segment_id": uuid.uuid4(),
            "name": request.name,
            "filters": request.filters.model_dump(mode="json", exclude_defaults=True),
            "created_at": now,
        }
        try:
            async with self.engine.begin() as connection:
                await connection.execute(insert(tables.segments).values(**segment))
        except IntegrityError:
            raise ApiError(
                409, "segment_exists", "name", f"a segment named {request.name!r} exists"
            ) from None
        return segment

    async def segments(self) -> list[dict[str, Any]]:
        s = tables.segments.c
        async with self.engine.connect() as connection:
            result = await connection.execute(sa.select(tables.segments).order_by(s.name))
            return [_row(r) for r in result.mappings()]

    async def segment_filters(self, segment_id: UUID) -> ProfileFilters:
        s = tables.segments.c
        async with self.engine.connect() as connection:
            filters = await connection.scalar(
                sa.select(s.filters).where(s.segment_id == segment_id)
            )
        if filters is None:
            raise ApiError(404, "segment_does_not_exist", "segment", "Segment does not exist")
        found = _stored_filters(segment_id, filters)
        if found is None:
            raise ApiError(
                409,
                "segment_filters_invalid",
                "segment",
                "the segment's stored filters are no longer accepted: delete it, create it anew",
            )
        return found

    async def delete_segment(self, segment_id: UUID) -> bool:
        s = tables.segments.c
        async with self.engine.begin() as connection:
            result = await connection.execute(
                sa.delete(tables.segments).where(s.segment_id == segment_id)
            )
            return bool(result.rowcount)

    # --- command outcomes -----------------------------------------------------------------

    async def outcome(self, command_id: str) -> dict[str, Any] | None:
        o = tables.command_outcomes.c
        async with self.engine.connect() as connection:
            found: dict[str, Any] | None = await connection.scalar(
                sa.select(o.outcome).where(o.command_id == command_id)
            )
            return found

    async def visible(
        self,
        profile_id: UUID,
        version: int | None,
        transaction_id: str | None = None,
        event_ids: Sequence[UUID] = (),
    ) -> bool:
        """Whether the read model shows the profile at `version` (or as erased), with the
        purchase `transaction_id` and the journey events `event_ids`."""
        async with self.engine.connect() as connection:
            if version is None:
                return await self.exists(profile_id)
            stored = await connection.scalar(sa.select(P.version).where(P.profile_id == profile_id))
            if stored is None:
                t = tables.profile_tombstones.c
                return bool(
                    await connection.scalar(
                        sa.select(sa.exists().where(t.profile_id == profile_id))
                    )
                )
            if stored < version:
                return False
            if transaction_id is not None:
                # In the snapshot's own rows: the purchase as a subscription, a one-time
                # purchase or an access level it gives (a restored or shared one).
                found = sa.or_(
                    *(
                        sa.exists().where(
                            c.profile_id == profile_id,
                            sa.or_(*(column == transaction_id for column in columns)),
                        )
                        for c, columns in _purchase_columns()
                    )
                )
                if not await connection.scalar(sa.select(found)):
                    return False
            if event_ids:
                e = tables.profile_events.c
                wanted = set(event_ids)
                count = sa.select(sa.func.count()).where(e.profile_event_id.in_(wanted))
                return await connection.scalar(count) == len(wanted)
            return True


def _purchase_columns() -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """Each read-model table that shows a purchase, with its transaction id columns."""
    s, n, a = tables.subscriptions.c, tables.non_subscriptions.c, tables.access_levels.c
    yield s, (s.store_transaction_id, s.store_original_transaction_id)
    yield n, (n.store_transaction_id,)
    yield a, (a.store_transaction_id, a.store_original_transaction_id)


def _stored_filters(segment_id: object, filters: object) -> ProfileFilters | None:
    """A stored segment's filters, or None when they no longer validate (a segment saved
    before the boundary refused what it holds: `ltv_min` of 1e1000000, say)."""
    try:
        return ProfileFilters.model_validate(filters)
    except ValidationError:
        log.warning("segment %s: stored filters refused; it matches nobody", segment_id)
        return None
