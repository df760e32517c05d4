"""Deep-store objects of dropped tables still to be deleted: a drop records them in its own transaction, so
objects a failing store kept are deleted by the segment upkeep once it answers (README, "No process needs
another's disk"), instead of staying under the table's prefix for good.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tp_pending_deletions",
        sa.Column("deletion_id", sa.String(32), primary_key=True),
        sa.Column("table_name", sa.String(200), nullable=False),
        sa.Column("table_created_ms", sa.BigInteger, nullable=False),
        sa.Column("dropped_ms", sa.BigInteger, nullable=False),
        sa.Column("store_uri", sa.String(1000), nullable=False),
        sa.Column("keys_json", sa.Text, nullable=False),
        sa.Column("attempts", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_tp_pending_deletions_table_name", "tp_pending_deletions", ["table_name"])


def downgrade() -> None:
    op.drop_index("ix_tp_pending_deletions_table_name", table_name="tp_pending_deletions")
    op.drop_table("tp_pending_deletions")
