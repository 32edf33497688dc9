"""The integration event: what `profile.events` carries and webhooks deliver.

Adapty's webhook shape (facts 1.2-1.4): the profile's identity at the top, the event's
facts in `event_properties`. A JSON Schema of it ships as `schemas/integration_event.json`
(`subledger schema` regenerates it; a test keeps it current and checks emitted events).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import msgspec

from schemas.base import Instant, Record
from schemas.enums import CancellationReason, Environment, EventType, Store
from schemas.money import Amount
from schemas.views import AccessLevelView


class SharingProfile(Record, frozen=True, kw_only=True):
    profile_id: UUID
    customer_user_id: str | None = None


class EventProperties(Record, frozen=True, kw_only=True):
    profile_event_id: UUID
    profile_id: UUID
    event_datetime: Instant
    # Published at once, but counted and shown in the timeline only once due.
    is_future_dated: bool = False
    store: Store | None = None
    environment: Environment | None = None
    vendor_product_id: str | None = None
    transaction_id: str | None = None
    original_transaction_id: str | None = None
    price_local: Amount | None = None
    currency: str | None = None
    price_usd: Amount | None = None
    proceeds_usd: Amount | None = None
    rate_after_first_year: bool | None = None
    subscription_expires_at: Instant | None = None
    cancellation_reason: CancellationReason | None = None
    profile_country: str | None = None
    store_country: str | None = None
    profile_total_revenue_usd: Amount
    profile_has_access_level: bool
    # `access_level_updated`: the level as it is now.
    access_level: AccessLevelView | None = None
    # Event-specific details: note id, transfer counterpart, email id, ...
    detail: dict[str, str] = {}


class IntegrationEvent(Record, frozen=True, kw_only=True):
    event_api_version: Literal[1] = 1
    profile_event_id: UUID
    event_type: EventType
    event_datetime: Instant
    profile_id: UUID
    customer_user_id: str | None = None
    email: str | None = None
    idfv: str | None = None
    idfa: str | None = None
    advertising_id: str | None = None
    profile_install_datetime: Instant | None = None
    event_properties: EventProperties
    # Other profiles holding the access level through the same purchase.
    profiles_sharing_access_level: tuple[SharingProfile, ...] = ()
    user_attributes: dict[str, str | float] = {}


SCHEMA_FILE = Path(__file__).with_name("integration_event.json")


def json_schema() -> dict[str, Any]:
    """The envelope's JSON Schema, as it is serialized on the topic and in webhooks."""
    # Through JSON, as the shipped file holds it (tuples become lists).
    schema = msgspec.json.decode(msgspec.json.encode(msgspec.json.schema(IntegrationEvent)))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
