"""the profile list's sort indexes hold the expressions it sorts by

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SORTED = {
    "profiles_created": "created_at",
    "profiles_last_seen": "last_seen_at",
    "profiles_last_activity": "last_activity_at",
}


def upgrade() -> None:
    for name, column in SORTED.items():
        op.drop_index(name, table_name="profiles")
        op.create_index(
            name,
            "profiles",
            [sa.text(f"coalesce({column}, '1970-01-01 00:00:00+00'::timestamptz)"), "profile_id"],
        )


def downgrade() -> None:
    for name, column in SORTED.items():
        op.drop_index(name, table_name="profiles")
        op.create_index(name, "profiles", [column, "profile_id"])
