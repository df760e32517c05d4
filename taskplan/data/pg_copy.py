"""A segment's rows into a PostgreSQL table with COPY: DuckDB writes them as CSV, PostgreSQL parses it.

Rows used to cross Python one by one (``executemany``: about 20 s per 1M rows here). Now DuckDB turns the
segment's Parquet file into PostgreSQL's CSV dialect in one statement, and the bytes go to ``COPY ... FROM
STDIN`` unchanged: no Python object per value, the same path a hand-written direct COPY takes.

How each value is written so that PostgreSQL reads back exactly what the segment holds:

- NULL is an empty unquoted field, and every text-like column is always quoted (``FORCE_QUOTE``), so an
  empty string stays ``""`` and a value such as ``\\.`` (on a line of its own, PostgreSQL's end-of-data mark)
  or ``NULL`` is data. Tabs, newlines, carriage returns, backslashes and quotes need nothing more in CSV.
- Numbers are written by DuckDB in their shortest exact form (FLOAT as a float32, so ``0.1`` reads back
  as the same ``real``); ``inf``, ``-inf`` and ``nan`` are spellings PostgreSQL accepts.
- A multi-value column becomes an array literal: every element double-quoted with ``\\`` and ``"``
  backslash-escaped, a null element as the bare word ``NULL``, an empty list as ``{}``.
- The bytes are UTF-8 whatever the connection's client encoding (the COPY says ``ENCODING 'UTF8'``).
- A column the schema has and the segment file has not (added after the segment was written) is NULL.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from taskplan.data.parquet import DuckDBConfig, quote, sql_string
from taskplan.models.table import FieldSpec

# Pinot data type -> PostgreSQL column type (TIMESTAMP stays epoch millis, as Pinot and the segment hold it).
PG_TYPES = {
    "INT": "integer",
    "LONG": "bigint",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "BIG_DECIMAL": "numeric",
    "BOOLEAN": "boolean",
    "TIMESTAMP": "bigint",
    "STRING": "text",
    "JSON": "jsonb",
    "BYTES": "text",
}
TEXT_TYPES = frozenset({"STRING", "JSON", "BYTES", "BIG_DECIMAL"})
COPY_CHUNK_BYTES = 1 << 20


def pg_column(spec: FieldSpec) -> sql.Composable:
    """``"name" type`` for the target table's CREATE TABLE."""
    kind = PG_TYPES[spec.dataType] + ("" if spec.singleValueField else "[]")
    return sql.SQL("{} {}").format(sql.Identifier(spec.name), sql.SQL(kind))


def _array_literal(column: str) -> str:
    """A DuckDB expression writing a list as a PostgreSQL array literal (text), NULL for a NULL list."""
    element = (
        "CASE WHEN e IS NULL THEN 'NULL' ELSE '\"' || "
        "replace(replace(CAST(e AS VARCHAR), '\\', '\\\\'), '\"', '\\\"') || '\"' END"
    )
    return (
        f"CASE WHEN {column} IS NULL THEN NULL "
        f"ELSE '{{' || array_to_string(list_transform({column}, lambda e: {element}), ',') || '}}' END"
    )


def csv_select(fields: Sequence[FieldSpec], present: set[str], source: str) -> tuple[str, list[str]]:
    """The DuckDB query writing ``fields`` (in order) from ``source``, and the columns to force-quote."""
    expressions, quoted = [], []
    for spec in fields:
        name = quote(spec.name)
        if spec.name not in present:
            expressions.append(f"NULL AS {name}")
            continue
        if spec.singleValueField:
            expressions.append(name)
        else:
            expressions.append(f"{_array_literal(name)} AS {name}")
        if spec.dataType in TEXT_TYPES or not spec.singleValueField:
            quoted.append(name)
    return f"SELECT {', '.join(expressions)} FROM {source}", quoted


def copy_parquet(
    cursor: psycopg.Cursor[Any],
    source: Path,
    table: str,
    fields: Sequence[FieldSpec],
    duckdb_config: DuckDBConfig,
) -> int:
    """COPY the rows of the Parquet file ``source`` into ``table`` (columns ``fields``, in the cursor's
    transaction); returns the number of rows. The CSV is staged next to ``source`` and deleted after."""
    staged = source.parent / f".staging-{uuid.uuid4().hex}.csv"
    parquet = f"read_parquet({sql_string(str(source))})"
    try:
        with duckdb_config.connect(source.parent) as conn:
            present = {d[0] for d in conn.execute(f"SELECT * FROM {parquet} LIMIT 0").description or []}
            query, quoted = csv_select(fields, present, parquet)
            force = f", FORCE_QUOTE ({', '.join(quoted)})" if quoted else ""
            conn.execute(
                f"COPY ({query}) TO {sql_string(str(staged))} "
                f"(FORMAT csv, HEADER false, DELIMITER ',', QUOTE '\"', ESCAPE '\"', NULLSTR ''{force})"
            )
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, ENCODING 'UTF8')").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(f.name) for f in fields)
        )
        with cursor.copy(statement) as copy, staged.open("rb") as csv:
            while chunk := csv.read(COPY_CHUNK_BYTES):
                copy.write(chunk)
        return cursor.rowcount
    finally:
        staged.unlink(missing_ok=True)
