"""The catalog's SQL tables (SQLAlchemy Core). Changes go through an Alembic migration in migrations/."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text

metadata = MetaData()

tables = Table(
    "tp_tables",
    metadata,
    Column("name_with_type", String(200), primary_key=True),
    Column("raw_name", String(150), nullable=False, index=True),
    Column("table_type", String(16), nullable=False),
    Column("config_json", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

schemas = Table(
    "tp_schemas",
    metadata,
    Column("name", String(150), primary_key=True),
    Column("schema_json", Text, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

cluster_configs = Table(
    "tp_cluster_configs",
    metadata,
    Column("name", String(300), primary_key=True),
    Column("value", Text, nullable=False),
)

# Small named states, e.g. a task type's queue state (STOPPED / RESUMED).
states = Table(
    "tp_states",
    metadata,
    Column("scope", String(100), primary_key=True),
    Column("name", String(300), primary_key=True),
    Column("value", Text, nullable=False),
)
