"""read models

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_levels",
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("access_level_id", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("is_lifetime", sa.Boolean(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("store", sa.Text(), nullable=False),
        sa.Column("store_product_id", sa.Text(), nullable=True),
        sa.Column("store_transaction_id", sa.Text(), nullable=True),
        sa.Column("store_original_transaction_id", sa.Text(), nullable=True),
        sa.Column("will_renew", sa.Boolean(), nullable=False),
        sa.Column("is_in_grace_period", sa.Boolean(), nullable=False),
        sa.Column("renewal_cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("billing_issue_detected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancellation_reason", sa.Text(), nullable=True),
        sa.Column("shared_from_profile_id", sa.UUID(), nullable=True),
        sa.PrimaryKeyConstraint("profile_id", "access_level_id"),
    )
    op.create_table(
        "command_outcomes",
        sa.Column("command_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=True),
        sa.Column("outcome", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("command_id"),
    )
    op.create_table(
        "custom_attributes",
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("number", sa.Numeric(), nullable=True),
        sa.PrimaryKeyConstraint("profile_id", "key"),
    )
    op.create_index(
        "custom_attributes_key_text", "custom_attributes", ["key", "text"], unique=False
    )
    op.create_table(
        "non_subscriptions",
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("purchase_id", sa.Text(), nullable=False),
        sa.Column("store", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("store_product_id", sa.Text(), nullable=False),
        sa.Column("store_transaction_id", sa.Text(), nullable=False),
        sa.Column("purchased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_refund", sa.Boolean(), nullable=False),
        sa.Column("is_consumable", sa.Boolean(), nullable=False),
        sa.Column("price_local", sa.Numeric(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("price_usd", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("profile_id", "purchase_id"),
    )
    op.create_table(
        "notes",
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("note_id", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("profile_id", "note_id"),
    )
    op.create_table(
        "profile_events",
        sa.Column("profile_event_id", sa.UUID(), nullable=False),
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("event_datetime", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("is_future_dated", sa.Boolean(), nullable=False),
        sa.Column("store", sa.Text(), nullable=True),
        sa.Column("environment", sa.Text(), nullable=True),
        sa.Column("transaction_id", sa.Text(), nullable=True),
        sa.Column("product_id", sa.Text(), nullable=True),
        sa.Column("price_usd", sa.Numeric(), nullable=True),
        sa.Column("event", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("profile_event_id"),
    )
    op.create_index(
        "profile_events_timeline",
        "profile_events",
        [
            "profile_id",
            sa.literal_column("event_datetime DESC"),
            sa.literal_column("sequence DESC"),
        ],
        unique=False,
    )
    op.create_table(
        "profile_tombstones",
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("profile_id"),
    )
    op.create_table(
        "profiles",
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("customer_user_id", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone_number", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("gender", sa.Text(), nullable=True),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("store_country", sa.Text(), nullable=True),
        sa.Column("platform", sa.Text(), nullable=True),
        sa.Column("os", sa.Text(), nullable=True),
        sa.Column("device", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("subscription_state", sa.Text(), nullable=False),
        sa.Column("purchase_status", sa.Text(), nullable=False),
        sa.Column("stores", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("environments", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("active_access_levels", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("total_revenue_usd", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("total_proceeds_usd", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("sandbox_total_revenue_usd", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("sandbox_total_proceeds_usd", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("emails_sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("emails_delivered", sa.Integer(), server_default="0", nullable=False),
        sa.Column("emails_opened", sa.Integer(), server_default="0", nullable=False),
        sa.Column("emails_clicked", sa.Integer(), server_default="0", nullable=False),
        sa.Column("email_open_rate", sa.Numeric(), nullable=True),
        sa.Column("email_attributed_revenue_usd", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("email_subscribed", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("next_wakeup_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("view", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("profile_id"),
    )
    op.create_index("profiles_created", "profiles", ["created_at", "profile_id"], unique=False)
    op.create_index("profiles_customer_user_id", "profiles", ["customer_user_id"], unique=False)
    op.create_index(
        "profiles_email_lower", "profiles", [sa.literal_column("lower(email)")], unique=False
    )
    op.create_index(
        "profiles_last_activity", "profiles", ["last_activity_at", "profile_id"], unique=False
    )
    op.create_index("profiles_last_seen", "profiles", ["last_seen_at", "profile_id"], unique=False)
    op.create_index("profiles_ltv", "profiles", ["total_revenue_usd", "profile_id"], unique=False)
    op.create_index("profiles_phone_number", "profiles", ["phone_number"], unique=False)
    op.create_table(
        "projection_offsets",
        sa.Column("projection", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("projection", "topic", "partition"),
    )
    op.create_table(
        "segments",
        sa.Column("segment_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("filters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("segment_id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("chain_key", sa.Text(), nullable=False),
        sa.Column("store", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("store_product_id", sa.Text(), nullable=False),
        sa.Column("store_transaction_id", sa.Text(), nullable=False),
        sa.Column("store_original_transaction_id", sa.Text(), nullable=False),
        sa.Column("purchased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("originally_purchased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("is_trial", sa.Boolean(), nullable=False),
        sa.Column("will_renew", sa.Boolean(), nullable=False),
        sa.Column("is_in_grace_period", sa.Boolean(), nullable=False),
        sa.Column("is_in_billing_retry", sa.Boolean(), nullable=False),
        sa.Column("is_refund", sa.Boolean(), nullable=False),
        sa.Column("cancellation_reason", sa.Text(), nullable=True),
        sa.Column("price_local", sa.Numeric(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("price_usd", sa.Numeric(), nullable=False),
        sa.Column("is_parent", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("profile_id", "chain_key"),
    )
    op.create_table(
        "transaction_ids",
        sa.Column("transaction_id", sa.Text(), nullable=False),
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("transaction_id", "profile_id"),
    )
    op.create_index("transaction_ids_profile", "transaction_ids", ["profile_id"], unique=False)


def downgrade() -> None:
    op.drop_index("transaction_ids_profile", table_name="transaction_ids")
    op.drop_table("transaction_ids")
    op.drop_table("subscriptions")
    op.drop_table("segments")
    op.drop_table("projection_offsets")
    op.drop_index("profiles_phone_number", table_name="profiles")
    op.drop_index("profiles_ltv", table_name="profiles")
    op.drop_index("profiles_last_seen", table_name="profiles")
    op.drop_index("profiles_last_activity", table_name="profiles")
    op.drop_index("profiles_email_lower", table_name="profiles")
    op.drop_index("profiles_customer_user_id", table_name="profiles")
    op.drop_index("profiles_created", table_name="profiles")
    op.drop_table("profiles")
    op.drop_table("profile_tombstones")
    op.drop_index("profile_events_timeline", table_name="profile_events")
    op.drop_table("profile_events")
    op.drop_table("notes")
    op.drop_table("non_subscriptions")
    op.drop_index("custom_attributes_key_text", table_name="custom_attributes")
    op.drop_table("custom_attributes")
    op.drop_table("command_outcomes")
    op.drop_table("access_levels")
