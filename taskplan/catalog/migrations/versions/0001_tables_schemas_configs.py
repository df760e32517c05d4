"""Tables, schemas, cluster configs and named states.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tp_tables",
        sa.Column("name_with_type", sa.String(200), primary_key=True),
        sa.Column("raw_name", sa.String(150), nullable=False, index=True),
        sa.Column("table_type", sa.String(16), nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tp_schemas",
        sa.Column("name", sa.String(150), primary_key=True),
        sa.Column("schema_json", sa.Text, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tp_cluster_configs",
        sa.Column("name", sa.String(300), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "tp_states",
        sa.Column("scope", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(300), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for name in ("tp_states", "tp_cluster_configs", "tp_schemas", "tp_tables"):
        op.drop_table(name)
