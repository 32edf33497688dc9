"""published documents are kept as the JSON text they were published as

Snapshots, events and command outcomes are stored to be served back whole, never queried
inside: `json` keeps their text (validated, in its published order) without the cost of
taking it apart into `jsonb` on every write.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DOCUMENTS = {"profiles": "view", "profile_events": "event", "command_outcomes": "outcome"}


def upgrade() -> None:
    for table, column in DOCUMENTS.items():
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE json USING {column}::json")


def downgrade() -> None:
    for table, column in DOCUMENTS.items():
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE jsonb USING {column}::jsonb")
