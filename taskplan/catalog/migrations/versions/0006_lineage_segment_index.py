"""An index of the lineage's members by segment: whether a segment is hidden is one index lookup, so a
segment read costs the same however long the table's lineage (a purge plan adds two rows per segment).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tp_lineage_segments_segment", "tp_lineage_segments", ["table_name", "segment_name"])


def downgrade() -> None:
    op.drop_index("ix_tp_lineage_segments_segment", table_name="tp_lineage_segments")
