"""The read models in PostgreSQL: what the query API reads and the projector writes.

The tables of `DERIVED` are projected from the topics and can be rebuilt from them;
segments, offsets and webhook deliveries are state of their own.
The migrations in projections/migrations create exactly these tables (a test compares).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB, UUID

metadata = MetaData()


def _at(name: str, *, nullable: bool = True) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


def _money(name: str) -> Column[object]:
    return Column(name, Numeric, nullable=False, server_default="0")


# One row per live profile: the list columns of the CRM, Mail and RevenueCat views, and
# the whole profile view for the detail page.
profiles = Table(
    "profiles",
    metadata,
    Column("profile_id", UUID(as_uuid=True), primary_key=True),
    Column("customer_user_id", Text),
    Column("email", Text),
    Column("phone_number", Text),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("gender", Text),
    Column("birthday", Date),
    Column("country", Text),
    Column("store_country", Text),
    Column("platform", Text),
    Column("os", Text),
    Column("device", Text),
    _at("created_at"),
    _at("last_seen_at"),
    _at("last_activity_at"),
    Column("subscription_state", Text, nullable=False),
    Column("purchase_status", Text, nullable=False),
    Column("stores", ARRAY(Text), nullable=False),
    Column("environments", ARRAY(Text), nullable=False),
    Column("active_access_levels", ARRAY(Text), nullable=False),
    _money("total_revenue_usd"),
    _money("total_proceeds_usd"),
    _money("sandbox_total_revenue_usd"),
    _money("sandbox_total_proceeds_usd"),
    Column("emails_sent", Integer, nullable=False, server_default="0"),
    Column("emails_delivered", Integer, nullable=False, server_default="0"),
    Column("emails_opened", Integer, nullable=False, server_default="0"),
    Column("emails_clicked", Integer, nullable=False, server_default="0"),
    Column("email_open_rate", Numeric),
    _money("email_attributed_revenue_usd"),
    Column("email_subscribed", Boolean, nullable=False, server_default="true"),
    _at("next_wakeup_at"),
    _at("as_of", nullable=False),
    Column("version", BigInteger, nullable=False),
    # The snapshot as published: served whole, never queried inside (json keeps its text).
    Column("view", JSON, nullable=False),
)
Index("profiles_customer_user_id", profiles.c.customer_user_id)
Index("profiles_email_lower", func.lower(profiles.c.email))
Index("profiles_phone_number", profiles.c.phone_number)
Index("profiles_ltv", profiles.c.total_revenue_usd, profiles.c.profile_id)


def sort_instant(column: Column[object]) -> Any:
    """An instant the profile list sorts by, a missing one as the oldest: the expression
    the query API orders and pages by, and the one its index holds."""
    return func.coalesce(column, literal_column("'1970-01-01 00:00:00+00'::timestamptz"))


Index("profiles_created", sort_instant(profiles.c.created_at), profiles.c.profile_id)
Index("profiles_last_seen", sort_instant(profiles.c.last_seen_at), profiles.c.profile_id)
Index("profiles_last_activity", sort_instant(profiles.c.last_activity_at), profiles.c.profile_id)

access_levels = Table(
    "access_levels",
    metadata,
    Column("profile_id", UUID(as_uuid=True), nullable=False),
    Column("access_level_id", Text, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("is_lifetime", Boolean, nullable=False),
    _at("starts_at"),
    _at("expires_at"),
    Column("store", Text, nullable=False),
    Column("store_product_id", Text),
    Column("store_transaction_id", Text),
    Column("store_original_transaction_id", Text),
    Column("will_renew", Boolean, nullable=False),
    Column("is_in_grace_period", Boolean, nullable=False),
    _at("renewal_cancelled_at"),
    _at("billing_issue_detected_at"),
    Column("cancellation_reason", Text),
    Column("shared_from_profile_id", UUID(as_uuid=True)),
    PrimaryKeyConstraint("profile_id", "access_level_id"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("profile_id", UUID(as_uuid=True), nullable=False),
    Column("chain_key", Text, nullable=False),
    Column("store", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("store_product_id", Text, nullable=False),
    Column("store_transaction_id", Text, nullable=False),
    Column("store_original_transaction_id", Text, nullable=False),
    _at("purchased_at", nullable=False),
    _at("originally_purchased_at", nullable=False),
    _at("expires_at", nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("is_trial", Boolean, nullable=False),
    Column("will_renew", Boolean, nullable=False),
    Column("is_in_grace_period", Boolean, nullable=False),
    Column("is_in_billing_retry", Boolean, nullable=False),
    Column("is_refund", Boolean, nullable=False),
    Column("cancellation_reason", Text),
    Column("price_local", Numeric, nullable=False),
    Column("currency", Text, nullable=False),
    Column("price_usd", Numeric, nullable=False),
    Column("is_parent", Boolean, nullable=False),
    PrimaryKeyConstraint("profile_id", "chain_key"),
)

non_subscriptions = Table(
    "non_subscriptions",
    metadata,
    Column("profile_id", UUID(as_uuid=True), nullable=False),
    Column("purchase_id", Text, nullable=False),
    Column("store", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("store_product_id", Text, nullable=False),
    Column("store_transaction_id", Text, nullable=False),
    _at("purchased_at", nullable=False),
    Column("is_refund", Boolean, nullable=False),
    Column("is_consumable", Boolean, nullable=False),
    Column("price_local", Numeric, nullable=False),
    Column("currency", Text, nullable=False),
    Column("price_usd", Numeric, nullable=False),
    PrimaryKeyConstraint("profile_id", "purchase_id"),
)

# Any store transaction or original transaction id -> the profiles whose chains hold it.
transaction_ids = Table(
    "transaction_ids",
    metadata,
    Column("transaction_id", Text, nullable=False),
    Column("profile_id", UUID(as_uuid=True), nullable=False),
    PrimaryKeyConstraint("transaction_id", "profile_id"),
)
Index("transaction_ids_profile", transaction_ids.c.profile_id)

custom_attributes = Table(
    "custom_attributes",
    metadata,
    Column("profile_id", UUID(as_uuid=True), nullable=False),
    Column("key", Text, nullable=False),
    # A string value in `text`, a number in `number`: exactly one is set.
    Column("text", Text),
    Column("number", Numeric),
    PrimaryKeyConstraint("profile_id", "key"),
)
Index("custom_attributes_key_text", custom_attributes.c.key, custom_attributes.c.text)

notes = Table(
    "notes",
    metadata,
    Column("profile_id", UUID(as_uuid=True), nullable=False),
    Column("note_id", Text, nullable=False),
    Column("text", Text, nullable=False),
    _at("created_at", nullable=False),
    _at("updated_at", nullable=False),
    PrimaryKeyConstraint("profile_id", "note_id"),
)

# The journey. A future-dated event is stored at once and shown once it is due.
profile_events = Table(
    "profile_events",
    metadata,
    Column("profile_event_id", UUID(as_uuid=True), primary_key=True),
    Column("profile_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", Text, nullable=False),
    _at("event_datetime", nullable=False),
    # Emission order (the record's offset: a profile's events share a partition), which
    # orders events of one instant as the fold emitted them.
    Column("sequence", BigInteger, nullable=False),
    Column("is_future_dated", Boolean, nullable=False),
    Column("store", Text),
    Column("environment", Text),
    Column("transaction_id", Text),
    Column("product_id", Text),
    Column("price_usd", Numeric),
    Column("event", JSON, nullable=False),
)
Index(
    "profile_events_timeline",
    profile_events.c.profile_id,
    profile_events.c.event_datetime.desc(),
    profile_events.c.sequence.desc(),
)

# Erased profiles: nothing but the id and the version at erasure, so that no replay or
# redelivery brings any of their rows back.
profile_tombstones = Table(
    "profile_tombstones",
    metadata,
    Column("profile_id", UUID(as_uuid=True), primary_key=True),
    Column("version", BigInteger, nullable=False),
    _at("deleted_at", nullable=False),
)

# How the folds answered each command: what a waiting API call reads. Kept as long as
# `profile.outcomes` keeps its records (recorded_at is the record's timestamp), so that a
# rebuild from the topic finds the same rows.
command_outcomes = Table(
    "command_outcomes",
    metadata,
    Column("command_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("profile_id", UUID(as_uuid=True), nullable=False),
    Column("version", BigInteger),
    Column("outcome", JSON, nullable=False),
    _at("recorded_at", nullable=False),
)
Index("command_outcomes_recorded_at", command_outcomes.c.recorded_at)

# Named filters over the profile list; membership is evaluated at query time.
segments = Table(
    "segments",
    metadata,
    Column("segment_id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("filters", JSONB, nullable=False),
    _at("created_at", nullable=False),
)

# The next offset to read of each consumed partition, written in the same transaction
# as the rows it produced.
projection_offsets = Table(
    "projection_offsets",
    metadata,
    Column("projection", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    PrimaryKeyConstraint("projection", "topic", "partition"),
)

# Outbound webhooks: where to send which events, and each event's delivery to each
# endpoint. Delivery state is the source of truth: it is not rebuilt from the topics.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("endpoint_id", UUID(as_uuid=True), primary_key=True),
    Column("url", Text, nullable=False),
    # Empty: every event type.
    Column("event_types", ARRAY(Text), nullable=False),
    # production, sandbox or both.
    Column("environment", Text, nullable=False),
    # Sent verbatim as the Authorization header, when set.
    Column("authorization", Text),
    # Signing secrets, newest first; two while one is rotated out.
    Column("secrets", ARRAY(Text), nullable=False),
    _at("created_at", nullable=False),
    # When deliveries to it started failing (cleared by a success), and when that lasted
    # too long and the endpoint was disabled.
    _at("failing_since"),
    _at("disabled_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", BigInteger, primary_key=True, autoincrement=True),
    # The Standard Webhooks `webhook-id`: the same on every attempt, so receivers dedupe.
    Column("webhook_id", Text, nullable=False, unique=True),
    Column("endpoint_id", UUID(as_uuid=True), nullable=False),
    Column("profile_event_id", UUID(as_uuid=True), nullable=False),
    Column("profile_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", Text, nullable=False),
    # Per profile, the order events were emitted in: deliveries go out in this order.
    Column("sequence", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),
    # pending, succeeded or failed (retries exhausted).
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    _at("next_attempt_at", nullable=False),
    _at("created_at", nullable=False),
    _at("delivered_at"),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    UniqueConstraint("endpoint_id", "profile_event_id"),
)
Index(
    "webhook_deliveries_pending",
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.profile_id,
    webhook_deliveries.c.sequence,
    postgresql_where=webhook_deliveries.c.status == "pending",
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    _at("attempted_at", nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    PrimaryKeyConstraint("delivery_id", "attempt"),
)

# Records the projector could not apply (a value no column holds, a contract it does not
# know): kept as read, with the reason, while the stream moves on past them.
projection_dead_letters = Table(
    "projection_dead_letters",
    metadata,
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("value", LargeBinary, nullable=False),
    _at("recorded_at", nullable=False),
    PrimaryKeyConstraint("topic", "partition", "offset"),
)

# Profile-owned tables, each keyed by profile id; a new snapshot replaces their rows.
PROFILE_CHILDREN = (
    access_levels,
    subscriptions,
    non_subscriptions,
    transaction_ids,
    custom_attributes,
    notes,
)

# What a projection of the topics writes, and a rebuild replaces: everything but the
# segments, the offsets and the webhooks.
DERIVED = (
    profiles,
    *PROFILE_CHILDREN,
    profile_events,
    profile_tombstones,
    command_outcomes,
)
