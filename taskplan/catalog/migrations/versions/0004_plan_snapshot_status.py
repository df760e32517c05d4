"""Plan snapshots carry the plan's task type and status, so that the active-plans listing is one query.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tp_plan_snapshots") as batch:
        batch.add_column(sa.Column("task_type", sa.String(100), nullable=False, server_default=""))
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="ACTIVE"))
    snapshots = sa.table(
        "tp_plan_snapshots",
        sa.column("plan_id", sa.String),
        sa.column("plan_json", sa.Text),
        sa.column("task_type", sa.String),
        sa.column("status", sa.String),
    )
    conn = op.get_bind()
    for plan_id, plan_json in conn.execute(sa.select(snapshots.c.plan_id, snapshots.c.plan_json)).all():
        plan = json.loads(plan_json)
        conn.execute(
            sa.update(snapshots)
            .where(snapshots.c.plan_id == plan_id)
            .values(task_type=plan.get("taskType", ""), status=plan.get("status", "ACTIVE"))
        )
    op.create_index("ix_tp_plan_snapshots_status", "tp_plan_snapshots", ["status"])


def downgrade() -> None:
    op.drop_index("ix_tp_plan_snapshots_status", "tp_plan_snapshots")
    with op.batch_alter_table("tp_plan_snapshots") as batch:
        batch.drop_column("status")
        batch.drop_column("task_type")
