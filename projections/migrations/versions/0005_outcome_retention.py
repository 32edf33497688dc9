"""command outcomes carry the time they were recorded, and go with their topic's records

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Outcomes stored before this revision count as recorded now: kept one more retention.
    op.add_column(
        "command_outcomes",
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.alter_column("command_outcomes", "recorded_at", server_default=None)
    op.create_index("command_outcomes_recorded_at", "command_outcomes", ["recorded_at"])


def downgrade() -> None:
    op.drop_index("command_outcomes_recorded_at", table_name="command_outcomes")
    op.drop_column("command_outcomes", "recorded_at")
