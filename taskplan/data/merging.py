"""Rewriting segments with DuckDB: read segment files into the table's current schema, merge them (Pinot's
merge types concat, rollup and dedup), and write the result as segment files of at most N rows.

Used by MergeRollupTask, RealtimeToOfflineSegmentsTask and AlterTableTask. A column a segment file lacks
(the schema gained it) gets the column's default (``defaultNullValue``, else Pinot's default null value of
its type); a column the schema no longer has is dropped; a column whose type was widened is cast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from taskplan.data.parquet import DuckDBConfig, FileStats, column_type, copy_to_parquet, quote, sql_string
from taskplan.models.table import FieldSpec, Schema

MERGE_TYPES = ("concat", "rollup", "dedup")
AGGREGATION_TYPES = ("sum", "min", "max")

# Pinot's default null values (FieldSpec): dimensions and date-times, then metrics.
_DIMENSION_DEFAULTS: dict[str, Any] = {
    "INT": -(2**31),
    "LONG": -(2**63),
    "FLOAT": -math.inf,
    "DOUBLE": -math.inf,
    "BIG_DECIMAL": "0",
    "BOOLEAN": False,
    "TIMESTAMP": 0,
    "STRING": "null",
    "JSON": "null",
    "BYTES": "",
}
_METRIC_DEFAULTS: dict[str, Any] = {**_DIMENSION_DEFAULTS, "INT": 0, "LONG": 0, "FLOAT": 0.0, "DOUBLE": 0.0}


def default_value(schema: Schema, spec: FieldSpec) -> Any:
    if spec.defaultNullValue is not None:
        return spec.defaultNullValue
    metric = any(m.name == spec.name for m in schema.metricFieldSpecs)
    return (_METRIC_DEFAULTS if metric else _DIMENSION_DEFAULTS)[spec.dataType]


def _literal(value: Any, spec: FieldSpec) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and math.isinf(value):
        text = "'-inf'" if value < 0 else "'inf'"
    elif isinstance(value, int | float):
        text = repr(value)
    else:
        text = sql_string(str(value))
    base = column_type(FieldSpec(name=spec.name, dataType=spec.dataType))
    single = f"CAST({text} AS {base})"
    return single if spec.singleValueField else f"[{single}]"


def file_columns(conn: duckdb.DuckDBPyConnection, path: Path) -> dict[str, str]:
    """A segment file's columns and their DuckDB types (read from the Parquet footer only)."""
    rows = conn.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_string(str(path))})").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def projection(schema: Schema, present: Mapping[str, str]) -> str:
    """SELECT list that turns a file with columns ``present`` into the schema's columns and types."""
    parts = []
    for spec in schema.fields:
        target = column_type(spec)
        if spec.name in present:
            parts.append(f"CAST({quote(spec.name)} AS {target}) AS {quote(spec.name)}")
        else:
            parts.append(f"{_literal(default_value(schema, spec), spec)} AS {quote(spec.name)}")
    return ", ".join(parts)


def matches_schema(schema: Schema, present: Mapping[str, str]) -> bool:
    """The file already has exactly the schema's columns, in order, with the schema's types."""
    wanted = [(s.name, column_type(s)) for s in schema.fields]
    return list(present.items()) == wanted


@dataclass(frozen=True)
class MergeSpec:
    """How rows are merged: Pinot's merge type, aggregation per metric column (rollup), the time column
    (epoch millis) and an optional rounding of it (Pinot's roundBucketTimePeriod), and a time window."""

    merge_type: str = "concat"
    aggregations: Mapping[str, str] | None = None
    time_column: str | None = None
    round_ms: int | None = None
    window: tuple[int, int] | None = None  # [start, end) in epoch millis of the time column
    window_keeps_null_time: bool = False  # rows with no time are kept by the window too
    sort_columns: Sequence[str] = ()
    erase_columns: Sequence[str] = ()  # Pinot's eraseDimensionValues: set to their default null value


def merged_query(
    conn: duckdb.DuckDBPyConnection, sources: Sequence[Path], schema: Schema, spec: MergeSpec
) -> str:
    """The rows of ``sources`` in the schema's columns, merged per ``spec``."""
    selects = [
        f"SELECT {projection(schema, file_columns(conn, p))} FROM read_parquet({sql_string(str(p))})"
        for p in sources
    ]
    rows = " UNION ALL ".join(selects) if selects else "SELECT NULL WHERE false"
    columns = [s.name for s in schema.fields]
    where = ""
    time_col = spec.time_column
    if spec.window is not None and time_col is not None:
        column = quote(time_col)
        where = f" WHERE ({column} >= {spec.window[0]} AND {column} < {spec.window[1]})"
        if spec.window_keeps_null_time:
            where += f" OR {column} IS NULL"
    base = f"(SELECT * FROM ({rows}){where})"
    # Pinot's record transforms, after the window filter and whatever the merge type (concat keeps the rows,
    # dedup and rollup then merge rows equal once transformed): roundBucketTimePeriod rounds every row's time
    # down, eraseDimensionValues sets the columns to their default null value.
    rounding = spec.round_ms if spec.round_ms and time_col in columns else None
    erased = {c for c in spec.erase_columns if c in columns}
    if rounding or erased:
        transformed = []
        for field in schema.fields:
            name = quote(field.name)
            if field.name in erased:
                transformed.append(f"{_literal(default_value(schema, field), field)} AS {name}")
            elif rounding and field.name == time_col:
                rounded = f"(({name} // {rounding}) * {rounding})"
                transformed.append(f"CAST({rounded} AS {column_type(field)}) AS {name}")
            else:
                transformed.append(name)
        base = f"(SELECT {', '.join(transformed)} FROM {base})"
    if spec.merge_type == "dedup":
        query = f"SELECT DISTINCT * FROM {base}"
    elif spec.merge_type == "rollup":
        metrics = {m.name for m in schema.metricFieldSpecs}
        aggregations = dict(spec.aggregations or {})
        select, group = [], []
        for name in columns:
            if name in metrics:
                fn = aggregations.get(name, "sum")
                select.append(f"{fn}({quote(name)}) AS {quote(name)}")
            else:
                select.append(quote(name))
                group.append(quote(name))
        group_by = f" GROUP BY {', '.join(group)}" if group else ""
        query = f"SELECT {', '.join(select)} FROM {base}{group_by}"
    else:
        query = f"SELECT * FROM {base}"
    order = [c for c in spec.sort_columns if c in columns] or ([time_col] if time_col in columns else [])
    if order:
        query = f"SELECT * FROM ({query}) ORDER BY {', '.join(quote(c) for c in order)}"
    return query


def write_segments(
    duckdb_config: DuckDBConfig,
    sources: Sequence[Path],
    schema: Schema,
    spec: MergeSpec,
    staging: Callable[[], Path],
    max_rows: int,
    *,
    numeric_time: bool,
) -> list[tuple[Path, FileStats]]:
    """Merge ``sources`` and write the rows to staged files of at most ``max_rows`` rows each (``staging``
    names a new staged file); returns each staged file with its stats (no file for no rows). On an error
    every staged file is deleted."""
    written: list[tuple[Path, FileStats]] = []
    first = staging()
    dirs = {p.parent for p in sources} | {first.parent}
    try:
        with duckdb_config.connect(*dirs) as conn:
            conn.execute(f"CREATE TEMP TABLE merged AS {merged_query(conn, sources, schema, spec)}")
            row = conn.execute("SELECT count(*) FROM merged").fetchone()
            total = int(row[0]) if row else 0
            offset = 0
            while offset < total:
                dest = first if not written else staging()
                chunk = f"SELECT * FROM merged ORDER BY rowid LIMIT {max_rows} OFFSET {offset}"
                written.append((dest, copy_to_parquet(conn, chunk, dest, spec.time_column, numeric_time)))
                offset += max_rows
    except BaseException:
        for path, _ in written:
            path.unlink(missing_ok=True)
        first.unlink(missing_ok=True)
        raise
    if not written:
        first.unlink(missing_ok=True)
    return written
