"""Segments, segment lineage, processed input files, exported segments.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tp_segments",
        sa.Column("table_name", sa.String(200), primary_key=True),
        sa.Column("segment_name", sa.String(300), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total_docs", sa.BigInteger, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("crc", sa.String(64), nullable=False),
        sa.Column("time_column", sa.String(128)),
        sa.Column("start_time", sa.BigInteger),
        sa.Column("end_time", sa.BigInteger),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("committed_ms", sa.BigInteger),
        sa.Column("file_name", sa.String(400), nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("custom_json", sa.Text, nullable=False),
    )
    op.create_table(
        "tp_segment_lineage",
        sa.Column("table_name", sa.String(200), primary_key=True),
        sa.Column("lineage_id", sa.String(100), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(300), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tp_lineage_segments",
        sa.Column("table_name", sa.String(200), primary_key=True),
        sa.Column("lineage_id", sa.String(100), primary_key=True),
        sa.Column("role", sa.String(4), primary_key=True),
        sa.Column("segment_name", sa.String(300), primary_key=True),
    )
    op.create_index("ix_lineage_segments_segment", "tp_lineage_segments", ["table_name", "segment_name"])
    op.create_table(
        "tp_processed_files",
        sa.Column("table_name", sa.String(200), primary_key=True),
        sa.Column("file_uri", sa.String(1000), primary_key=True),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("segment_name", sa.String(300), nullable=False),
        sa.Column("processed_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tp_exported_segments",
        sa.Column("table_name", sa.String(200), primary_key=True),
        sa.Column("target", sa.String(500), primary_key=True),
        sa.Column("segment_name", sa.String(300), primary_key=True),
        sa.Column("total_docs", sa.BigInteger, nullable=False),
        sa.Column("exported_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_index("ix_lineage_segments_segment", "tp_lineage_segments")
    for name in (
        "tp_exported_segments",
        "tp_processed_files",
        "tp_lineage_segments",
        "tp_segment_lineage",
        "tp_segments",
    ):
        op.drop_table(name)
