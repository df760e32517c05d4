"""CSV straight into a segment file with DuckDB, counting rows in Druid's terms (see taskplan/data/rows.py).

DuckDB reads the file as text (every column VARCHAR) and sets aside lines it cannot split into the header's
columns (``unparseable``); the values are then typed with TRY_CAST, so a value that does not fit its column
is stored as null and its row counted ``processedWithError``; rows with none of the schema's columns are
``thrownAway``. This keeps CSV ingestion at DuckDB's own speed (the row-by-row reader is for JSON).
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb

from taskplan.data.parquet import DUCKDB_TYPES, FileStats, connect, copy_to_parquet, quote, sql_string
from taskplan.data.rows import MULTI_VALUE_DELIMITER, ReaderInitError, RowStats, TooManyParseExceptions
from taskplan.models.table import FieldSpec, Schema


def _typed_scalar(spec: FieldSpec, raw: str) -> str:
    """SQL typing one text value for its column (NULL when it does not fit)."""
    kind = spec.dataType
    if kind in ("STRING", "JSON"):
        return raw
    if kind == "BYTES":
        return f"CASE WHEN regexp_full_match({raw}, '([0-9a-fA-F]{{2}})*') THEN lower({raw}) END"
    if kind == "BIG_DECIMAL":
        return f"CASE WHEN TRY_CAST({raw} AS DECIMAL(38, 10)) IS NOT NULL THEN trim({raw}) END"
    if kind == "TIMESTAMP":
        return (
            f"CASE WHEN regexp_full_match(trim({raw}), '-?[0-9]+') THEN TRY_CAST(trim({raw}) AS BIGINT) "
            f"ELSE epoch_ms(TRY_CAST({raw} AS TIMESTAMPTZ)) END"
        )
    if kind == "BOOLEAN":
        return (
            f"CASE lower(trim({raw})) WHEN 'true' THEN true WHEN '1' THEN true "
            f"WHEN 'false' THEN false WHEN '0' THEN false END"
        )
    return f"TRY_CAST(trim({raw}) AS {DUCKDB_TYPES[kind]})"


RAW_PREFIX = "__raw_"


def _failed_after_typing(spec: FieldSpec) -> str:
    """SQL condition on a row of typed columns (and the raw ones, prefixed): the value did not type."""
    raw, typed = quote(RAW_PREFIX + spec.name), quote(spec.name)
    if spec.singleValueField:
        if spec.dataType == "STRING":
            return "false"
        return f"({raw} IS NOT NULL AND {raw} <> '' AND {typed} IS NULL)"
    return f"({raw} IS NOT NULL AND list_contains(list_transform({typed}, lambda x: x IS NULL), true))"


def _typed(spec: FieldSpec, column: str) -> tuple[str, str]:
    """(typed expression, SQL condition: the raw value is present but did not type)."""
    raw = quote(column)
    if spec.singleValueField:
        typed = _typed_scalar(spec, raw)
        present = f"{raw} IS NOT NULL AND {raw} <> ''" if spec.dataType != "STRING" else "false"
        return typed, f"({present} AND ({typed}) IS NULL)"
    parts = f"list_filter(string_split({raw}, {sql_string(MULTI_VALUE_DELIMITER)}), lambda x: x <> '')"
    element = _typed_scalar(spec, "x")
    typed = f"list_transform({parts}, lambda x: {element})"
    untyped = f"list_transform({parts}, lambda x: ({element}) IS NULL)"
    failed = f"({raw} IS NOT NULL AND list_contains({untyped}, true))"
    return typed, failed


def _header(path: Path, name: str) -> list[str]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReaderInitError(f"cannot read {name} as CSV: {exc}") from None
    header = next(csv.reader([first]), [])
    if not header or len(set(header)) != len(header):
        raise ReaderInitError(f"{name}: the CSV header is empty or names a column twice: {header}")
    return header


def load_csv(
    path: Path,
    schema: Schema,
    dest: Path,
    *,
    max_parse_exceptions: int | None = None,
    source_name: str = "",
    time_col: str | None = None,
    numeric_time: bool = False,
) -> tuple[RowStats, FileStats]:
    """Write the CSV file's rows, typed for ``schema``, to ``dest`` (Parquet); returns the row counters and
    the written file's stats."""
    stats = RowStats(processed_bytes=path.stat().st_size)
    name = source_name or str(path)
    header = _header(path, name)
    columns = "{" + ", ".join(f"{sql_string(c)}: 'VARCHAR'" for c in header) + "}"
    options = (
        f"header=true, auto_detect=false, delim=',', quote='\"', escape='\"', columns={columns}, "
        "store_rejects=true, rejects_table='rejects', rejects_scan='reject_scans', parallel=true"
    )
    with connect(path.parent, dest.parent) as conn:
        known = [f for f in schema.fields if f.name in header]
        if not known:
            raise ReaderInitError(f"{name}: the CSV header names none of the schema's columns: {header}")
        try:
            conn.execute(
                f"CREATE TEMP TABLE raw AS SELECT * FROM read_csv({sql_string(str(path))}, {options})"
            )
        except duckdb.Error as exc:
            raise ReaderInitError(f"cannot read {name} as CSV: {exc}") from None
        rejected = conn.execute(
            "SELECT line, min(error_message) FROM rejects GROUP BY line ORDER BY line"
        ).fetchall()
        stats.unparseable = len(rejected)
        for line, message in rejected[:5]:
            stats.sample(f"line {line}: {message.splitlines()[0] if message else 'unparseable'}")
        typed: list[str] = []
        failures: list[str] = []
        for spec in schema.fields:
            if spec.name in header:
                expression, failed = _typed(spec, spec.name)
                typed.append(f"{expression} AS {quote(spec.name)}")
                failures.append(f"CASE WHEN {failed} THEN {sql_string(spec.name)} END")
            else:
                typed.append(f"NULL AS {quote(spec.name)}")
        empty = " AND ".join(f"{quote(f.name)} IS NULL" for f in known)
        # One pass types the rows and flags the ones with a value that did not type (a cheap test on the
        # typed column); which columns failed is worked out again only for the few rows sampled.
        flagged = " OR ".join(_failed_after_typing(f) for f in known) or "false"
        conn.execute(
            # A row's line: its place among the parsed rows (rowid, in file order) after the header.
            f"CREATE TEMP TABLE checked AS SELECT __line, __kept, ({flagged}) AS __failed, "
            f"{', '.join(quote(f.name) for f in schema.fields)} FROM ("
            f"SELECT rowid + 2 AS __line, NOT ({empty}) AS __kept, "
            f"{', '.join(f'{quote(f.name)} AS {quote(RAW_PREFIX + f.name)}' for f in known)}, "
            f"{', '.join(typed)} FROM raw)"
        )
        counts = conn.execute(
            "SELECT count(*) FILTER (WHERE NOT __kept), count(*) FILTER (WHERE __kept AND __failed), "
            "count(*) FILTER (WHERE __kept AND NOT __failed) FROM checked"
        ).fetchone()
        assert counts is not None
        stats.thrown_away, stats.processed_with_error, stats.processed = (int(c) for c in counts)
        sampled = "SELECT __line FROM checked WHERE __kept AND __failed ORDER BY __line LIMIT 5"
        for line, errors in conn.execute(
            f"SELECT rowid + 2, list_filter([{', '.join(failures)}], lambda x: x IS NOT NULL) FROM raw "
            f"WHERE rowid + 2 IN ({sampled}) ORDER BY rowid"
        ).fetchall():
            stats.sample(f"row {line - 1}: cannot type {', '.join(errors)}")
        if max_parse_exceptions is not None and stats.parse_exceptions > max_parse_exceptions:
            raise TooManyParseExceptions(
                f"{name}: more than {max_parse_exceptions} parse exceptions (maxParseExceptions); "
                f"first: {'; '.join(stats.samples)}"
            )
        columns = ", ".join(quote(f.name) for f in schema.fields)
        # In file order: DuckDB keeps insertion order (preserve_insertion_order), no sort needed.
        query = f"SELECT {columns} FROM checked WHERE __kept"
        written = copy_to_parquet(conn, query, dest, time_col, numeric_time)
    return stats, written
