"""What each operation answers, as OpenAPI components: the views and journey events from
the records that make them (msgspec's JSON Schema), the rows from their table columns,
and the envelopes around both. Nothing here is written by hand twice: a new field in a
view or a new column in a listed table shows in the document by itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from api.reads import SUMMARY
from projections import tables
from schemas.integration import IntegrationEvent
from schemas.views import EmailMetrics, ProfileView

REF = "#/components/schemas/{name}"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": REF.format(name=name)}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _value(kind: sa.types.TypeEngine[Any]) -> Schema:
    """The JSON a column's value becomes in an answer (`api.responses.dumps`)."""
    if isinstance(kind, postgresql.UUID):
        return {"type": "string", "format": "uuid"}
    if isinstance(kind, sa.DateTime):
        return {"type": "string", "format": "date-time"}
    if isinstance(kind, sa.Date):
        return {"type": "string", "format": "date"}
    if isinstance(kind, sa.Numeric):
        # Exact: a decimal leaves as a string.
        return {"type": "string", "format": "decimal"}
    if isinstance(kind, sa.Integer):
        return {"type": "integer"}
    if isinstance(kind, sa.Boolean):
        return {"type": "boolean"}
    if isinstance(kind, sa.ARRAY):
        return {"type": "array", "items": _value(kind.item_type)}
    if isinstance(kind, sa.JSON):
        return {"type": "object"}
    if isinstance(kind, sa.Text):
        return {"type": "string"}
    raise TypeError(f"no JSON Schema for a {type(kind).__name__} column")


def row(title: str, columns: Iterable[sa.ColumnElement[Any]], **extra: Schema) -> Schema:
    """A row as the API answers it: every column, present, null where it may be."""
    properties: Schema = {}
    for column in columns:
        value = _value(column.type)
        properties[str(column.key)] = (
            _nullable(value) if getattr(column, "nullable", True) else value
        )
    properties.update(extra)
    return {
        "title": title,
        "type": "object",
        "required": list(properties),
        "properties": properties,
    }


def data(schema: Schema) -> Schema:
    return {"type": "object", "required": ["data"], "properties": {"data": schema}}


def page(item: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": item},
            "next_cursor": {
                **_nullable({"type": "string"}),
                "description": "Pass as `cursor` for the next page; null on the last.",
            },
        },
    }


def _records() -> dict[str, Schema]:
    """The views and the journey event. Every field is written (none is omitted for
    being its default), so each is required in the answer."""
    _, components = msgspec.json.schema_components(
        [ProfileView, IntegrationEvent], ref_template=REF
    )
    for schema in components.values():
        if schema.get("type") == "object" and "properties" in schema:
            schema["required"] = list(schema["properties"])
            # A later version may add fields: a client must not refuse them.
            schema.pop("additionalProperties", None)
            for field in schema["properties"].values():
                field.pop("default", None)
    # Through JSON, as served (tuples are lists).
    decoded: dict[str, Schema] = msgspec.json.decode(msgspec.json.encode(components))
    return decoded


def components() -> dict[str, Schema]:
    """Every schema the operations' answers name, by name."""
    records = _records()
    mail = dict(records[EmailMetrics.__name__])
    mail_properties = {
        **mail["properties"],
        "ltv_usd": {"type": "string", "format": "decimal"},
    }
    profile = dict(records[ProfileView.__name__])
    profile_properties = {
        **profile["properties"],
        "email": ref("MailMetrics"),
        "segments": {"type": "array", "items": ref("SegmentMembership")},
    }
    webhook_endpoint = row("WebhookEndpoint", tables.webhook_endpoints.c)
    deliveries = [c for c in tables.webhook_deliveries.c if c.name != "payload"]
    return {
        **records,
        "MailMetrics": {
            **mail,
            "title": "MailMetrics",
            "description": "Email engagement, with the LTV Adapty Mail shows beside it.",
            "properties": mail_properties,
            "required": list(mail_properties),
        },
        "Profile": {
            **profile,
            "title": "Profile",
            "description": "The whole profile, with the segments it is in.",
            "properties": profile_properties,
            "required": list(profile_properties),
        },
        "SegmentMembership": {
            "type": "object",
            "required": ["segment_id", "name"],
            "properties": {
                "segment_id": {"type": "string", "format": "uuid"},
                "name": {"type": "string"},
            },
        },
        "ProfileData": data(ref("Profile")),
        "ProfileSummary": row("ProfileSummary", SUMMARY),
        "ProfilePage": page(ref("ProfileSummary")),
        "EventPage": page(ref(IntegrationEvent.__name__)),
        "Segment": row("Segment", tables.segments.c),
        "SegmentData": data(ref("Segment")),
        "SegmentList": data({"type": "array", "items": ref("Segment")}),
        "AdaptyProfile": _adapty_profile(),
        "AdaptyProfileData": data(ref("AdaptyProfile")),
        "Accepted": {
            "type": "object",
            "description": "Published; the read model did not show it within the wait. "
            "Read the profile later, or send the write again with the same Idempotency-Key.",
            "required": ["status", "command_id", "profile_id"],
            "properties": {
                "status": {"const": "accepted"},
                "command_id": {"type": "string"},
                "profile_id": {"type": "string", "format": "uuid"},
            },
        },
        "WebhookEndpoint": webhook_endpoint,
        "WebhookEndpointData": data(ref("WebhookEndpoint")),
        "WebhookEndpointList": data({"type": "array", "items": ref("WebhookEndpoint")}),
        "WebhookAttempt": row("WebhookAttempt", tables.webhook_attempts.c),
        "WebhookDelivery": row(
            "WebhookDelivery",
            deliveries,
            attempt_log={"type": "array", "items": ref("WebhookAttempt")},
        ),
        "DeliveryPage": page(ref("WebhookDelivery")),
        "Redelivery": data(
            {
                "type": "object",
                "required": ["delivery_id", "status"],
                "properties": {
                    "delivery_id": {"type": "integer"},
                    "status": {"const": "pending"},
                },
            }
        ),
        "Redelivering": data(
            {
                "type": "object",
                "required": ["redelivering"],
                "properties": {"redelivering": {"type": "integer", "minimum": 0}},
            }
        ),
        "StoreAccepted": {
            "type": "object",
            "description": "Kept: the notification is on its raw topic.",
            "required": ["status"],
            "properties": {"status": {"const": "accepted"}},
        },
    }


def _adapty_profile() -> Schema:
    """Adapty's Profile object (facts 1.8.2), as `api.server_side.adapty_profile` makes it."""
    properties: Schema = {
        "app_id": {"type": "string", "format": "uuid"},
        "profile_id": {"type": "string", "format": "uuid"},
        "customer_user_id": _nullable({"type": "string"}),
        "total_revenue_usd": {
            "type": "number",
            "description": "Adapty's contract is a number; the exact amount is in the query API.",
        },
        "segment_hash": {"type": "string"},
        "timestamp": {"type": "integer", "description": "Milliseconds since the epoch."},
        "custom_attributes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "value"],
                "properties": {
                    "key": {"type": "string"},
                    "value": {"anyOf": [{"type": "string"}, {"type": "number"}]},
                },
            },
        },
        "access_levels": {"type": "array", "items": ref("AccessLevelView")},
        "subscriptions": {"type": "array", "items": ref("SubscriptionView")},
        "non_subscriptions": {"type": "array", "items": ref("NonSubscriptionView")},
    }
    return {
        "title": "AdaptyProfile",
        "type": "object",
        "required": list(properties),
        "properties": properties,
    }
