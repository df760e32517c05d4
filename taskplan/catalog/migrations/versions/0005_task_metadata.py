"""Pinot's per-table task metadata: the watermarks of MergeRollupTask and RealtimeToOfflineSegmentsTask.

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
    op.create_table(
        "tp_task_metadata",
        sa.Column("table_name", sa.String(200), primary_key=True),
        sa.Column("task_type", sa.String(100), primary_key=True),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tp_task_metadata")
