"""What the folds emit: profile events for the journey and integrations, and rejections."""

from __future__ import annotations

from uuid import UUID

from schemas.base import Instant, Record
from schemas.enums import CancellationReason, Environment, EventType, Store
from schemas.money import Amount
from schemas.views import AccessLevelView


class ProfileEvent(Record, frozen=True, kw_only=True):
    profile_event_id: UUID
    event_type: EventType
    event_datetime: Instant
    profile_id: UUID
    # Published at once, but shown in the timeline and counted only once due.
    is_future_dated: bool = False
    store: Store | None = None
    environment: Environment | None = None
    chain_key: str | None = None
    transaction_id: str | None = None
    original_transaction_id: str | None = None
    product_id: str | None = None
    price_local: Amount | None = None
    currency: str | None = None
    price_usd: Amount | None = None
    proceeds_usd: Amount | None = None
    rate_after_first_year: bool | None = None
    expires_at: Instant | None = None
    cancellation_reason: CancellationReason | None = None
    access_level: AccessLevelView | None = None
    # Event-specific details: note id, transfer counterpart, email id, ...
    detail: dict[str, str] = {}


class Rejection(Record, tag="rejection", tag_field="kind", frozen=True, kw_only=True):
    """A command the fold refused: nothing changed. Shaped for the DOMAIN.md section 8 body."""

    command_id: str
    profile_id: UUID
    error_code: str
    source: str
    message: str
    status_code: int = 400


class Applied(Record, tag="applied", tag_field="kind", frozen=True, kw_only=True):
    """A command the fold accepted (or had already accepted): its effect is in `version`."""

    command_id: str
    profile_id: UUID
    version: int
    # The journey events it published: the answer waits for them in the timeline too.
    event_ids: tuple[UUID, ...] = ()


class DeadLetter(Record, frozen=True, kw_only=True):
    """Input that parsed as bytes but could not be folded, kept to be re-driven."""

    source_topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    reason: str
    failed_at: Instant
