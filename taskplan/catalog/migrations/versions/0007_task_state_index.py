"""An index of batch records by state: the in-flight gate (``taskplan.limits.maxInFlightSubtasks[PerTable]``)
counts the running batches at every batch step, which without it reads every retained record (bench/
catalog_scan.py: 620 ms at 200,000 records on SQLite, 1 ms with it; README, Sizing a deployment).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tp_tasks_state", "tp_tasks", ["state"])


def downgrade() -> None:
    op.drop_index("ix_tp_tasks_state", table_name="tp_tasks")
