"""Task records of plan batches (a plan runs its batches in its own workflow history), plan snapshots.

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


def upgrade() -> None:
    op.create_table(
        "tp_tasks",
        sa.Column("task_name", sa.String(200), primary_key=True),
        sa.Column("task_type", sa.String(100), nullable=False),
        sa.Column("table_name", sa.String(200), nullable=False),
        sa.Column("plan_id", sa.String(400), nullable=False),
        sa.Column("batch_sequence", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("num_subtasks", sa.BigInteger, nullable=False),
        sa.Column("num_failed", sa.BigInteger, nullable=False),
        sa.Column("inputs_in_batch", sa.BigInteger, nullable=False),
        sa.Column("submitted_ms", sa.BigInteger, nullable=False),
        sa.Column("finished_ms", sa.BigInteger),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("batch_json", sa.Text, nullable=False),
        sa.Column("result_json", sa.Text),
        sa.UniqueConstraint("plan_id", "batch_sequence", name="uq_tasks_plan_batch"),
    )
    op.create_index("ix_tp_tasks_task_type", "tp_tasks", ["task_type"])
    op.create_index("ix_tp_tasks_table_name", "tp_tasks", ["table_name"])
    op.create_table(
        "tp_plan_snapshots",
        sa.Column("plan_id", sa.String(400), primary_key=True),
        sa.Column("table_name", sa.String(200), nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("plan_json", sa.Text, nullable=False),
    )
    op.create_index("ix_tp_plan_snapshots_table_name", "tp_plan_snapshots", ["table_name"])


def downgrade() -> None:
    op.drop_index("ix_tp_plan_snapshots_table_name", "tp_plan_snapshots")
    op.drop_table("tp_plan_snapshots")
    op.drop_index("ix_tp_tasks_table_name", "tp_tasks")
    op.drop_index("ix_tp_tasks_task_type", "tp_tasks")
    op.drop_table("tp_tasks")
