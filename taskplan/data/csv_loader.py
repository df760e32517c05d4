"""CSV straight into a segment file with DuckDB, counting rows in Druid's terms (see taskplan/data/rows.py).

DuckDB reads the file as text (every column VARCHAR) and sets aside lines it cannot split into the header's
columns (``unparseable``); the values are then typed with TRY_CAST, so a value that does not fit its column
is stored as null and its row counted ``processedWithError``; rows with none of the schema's columns are
``thrownAway``. This keeps CSV ingestion at DuckDB's own speed (the row-by-row reader is for JSON).
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path

import duckdb

from taskplan.data.parquet import (
    DUCKDB_TYPES,
    DuckDBConfig,
    FileStats,
    copy_to_parquet,
    quote,
    sql_string,
)
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
    duckdb_config: DuckDBConfig,
    *,
    max_parse_exceptions: int | None = None,
    source_name: str = "",
    time_col: str | None = None,
    numeric_time: bool = False,
) -> tuple[RowStats, FileStats]:
    """Write the CSV file's rows, typed for ``schema``, to ``dest`` (Parquet); returns the row counters and
    the written file's stats."""
    name = source_name or str(path)
    header = _header(path, name)
    if not any(f.name in header for f in schema.fields):
        raise ReaderInitError(f"{name}: the CSV header names none of the schema's columns: {header}")
    load = _CsvLoad(
        path, schema, header, dest, name, max_parse_exceptions, time_col, numeric_time, duckdb_config
    )
    reader_types = _reader_types(schema, header)
    if reader_types is not None:
        loaded = load.typed_by_reader(reader_types)
        if loaded is not None:
            return loaded
    return load.typed_from_text()


# Pinot types whose values DuckDB's CSV reader types exactly as TRY_CAST(trim(value)) does (checked value by
# value in tests/data/test_data_plane.py); the others are typed from text by expressions of our own.
READER_TYPED = frozenset({"INT", "LONG", "FLOAT", "DOUBLE"})


def _reader_types(schema: Schema, header: list[str]) -> dict[str, str] | None:
    """The types for DuckDB's CSV reader to give the file's columns, when its typing is ours for all of
    them; None when one needs typing of our own (booleans, timestamps, decimals, bytes, lists of numbers)."""
    specs = {f.name: f for f in schema.fields}
    types: dict[str, str] = {}
    for column in header:
        spec = specs.get(column)
        if spec is None or spec.dataType in ("STRING", "JSON"):
            types[column] = "VARCHAR"  # multi-value strings are split afterwards, which cannot fail
        elif spec.singleValueField and spec.dataType in READER_TYPED:
            types[column] = DUCKDB_TYPES[spec.dataType]
        else:
            return None
    return types


class _CsvLoad:
    """One CSV file to one segment file, by one of two routes that count rows the same way."""

    def __init__(
        self,
        path: Path,
        schema: Schema,
        header: list[str],
        dest: Path,
        name: str,
        max_parse_exceptions: int | None,
        time_col: str | None,
        numeric_time: bool,
        duckdb_config: DuckDBConfig,
    ) -> None:
        self.duckdb_config = duckdb_config
        self.path, self.schema, self.header, self.dest, self.name = path, schema, header, dest, name
        self.max_parse_exceptions = max_parse_exceptions
        self.time_col, self.numeric_time = time_col, numeric_time
        self.known = [f for f in schema.fields if f.name in header]
        self.names = ", ".join(quote(f.name) for f in schema.fields)  # the segment's columns, in order
        # A row with none of the schema's columns is thrown away.
        self.empty = " AND ".join(f"{quote(f.name)} IS NULL" for f in self.known)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """This thread's sandboxed connection for the two directories (opening one costs about 12 ms, a tenth
        of loading 500,000 rows), left as it was found: the tables made here are dropped."""
        with self.duckdb_config.pooled(self.path.parent, self.dest.parent) as conn:
            yield conn
            for table in ("typed", "raw", "checked", "rejects", "reject_scans"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")

    def _read_csv(self, types: dict[str, str]) -> str:
        columns = "{" + ", ".join(f"{sql_string(c)}: {sql_string(types[c])}" for c in self.header) + "}"
        return (
            f"read_csv({sql_string(str(self.path))}, header=true, auto_detect=false, delim=',', quote='\"', "
            f"escape='\"', columns={columns}, store_rejects=true, rejects_table='rejects', "
            "rejects_scan='reject_scans', parallel=true)"
        )

    def _materialize(self, conn: duckdb.DuckDBPyConnection, table: str, select: str) -> None:
        try:
            conn.execute(f"CREATE TEMP TABLE {table} AS {select}")
        except duckdb.Error as exc:
            raise ReaderInitError(f"cannot read {self.name} as CSV: {exc}") from None

    def _count_unparseable(self, conn: duckdb.DuckDBPyConnection, stats: RowStats) -> None:
        """Lines DuckDB could not split into the header's columns (set aside in ``rejects``)."""
        rejected = conn.execute(
            "SELECT line, min(error_message) FROM rejects WHERE error_type <> 'CAST' "
            "GROUP BY line ORDER BY line"
        ).fetchall()
        stats.unparseable = len(rejected)
        for line, message in rejected[:5]:
            stats.sample(f"line {line}: {message.splitlines()[0] if message else 'unparseable'}")

    def _write(
        self, conn: duckdb.DuckDBPyConnection, stats: RowStats, query: str
    ) -> tuple[RowStats, FileStats]:
        limit = self.max_parse_exceptions
        if limit is not None and stats.parse_exceptions > limit:
            raise TooManyParseExceptions(
                f"{self.name}: more than {limit} parse exceptions (maxParseExceptions); "
                f"first: {'; '.join(stats.samples)}"
            )
        # In file order: DuckDB keeps insertion order (preserve_insertion_order), no sort needed.
        return stats, copy_to_parquet(conn, query, self.dest, self.time_col, self.numeric_time)

    def typed_by_reader(self, types: dict[str, str]) -> tuple[RowStats, FileStats] | None:
        """DuckDB's reader types the values (as fast as reading the file into Parquet directly). A value it
        cannot type makes it set the row aside; then this route gives up (None) for ``typed_from_text``,
        which keeps such a row with a null and counts it ``processedWithError``."""
        stats = RowStats(processed_bytes=self.path.stat().st_size)
        columns: list[str] = []
        for spec in self.schema.fields:
            if spec.name not in self.header:
                columns.append(f"NULL AS {quote(spec.name)}")
            elif spec.singleValueField:
                columns.append(quote(spec.name))
            else:
                columns.append(f"{_typed(spec, spec.name)[0]} AS {quote(spec.name)}")
        with self._connection() as conn:
            self._materialize(conn, "typed", f"SELECT {', '.join(columns)} FROM {self._read_csv(types)}")
            cast_errors = conn.execute("SELECT count(*) FROM rejects WHERE error_type = 'CAST'").fetchone()
            if cast_errors is None or cast_errors[0]:
                return None
            self._count_unparseable(conn, stats)
            counts = conn.execute(
                f"SELECT count(*) FILTER (WHERE {self.empty}), count(*) FROM typed"
            ).fetchone()
            assert counts is not None
            stats.thrown_away = int(counts[0])
            stats.processed = int(counts[1]) - stats.thrown_away
            return self._write(conn, stats, f"SELECT {self.names} FROM typed WHERE NOT ({self.empty})")

    def typed_from_text(self) -> tuple[RowStats, FileStats]:
        """Every value read as text and typed by the expressions of ``_typed``: a value that does not type is
        stored as null and its row counted ``processedWithError``."""
        stats = RowStats(processed_bytes=self.path.stat().st_size)
        known, fields = self.known, self.schema.fields
        with self._connection() as conn:
            as_text = dict.fromkeys(self.header, "VARCHAR")
            self._materialize(conn, "raw", f"SELECT * FROM {self._read_csv(as_text)}")
            self._count_unparseable(conn, stats)
            typed: list[str] = []
            failures: list[str] = []
            for spec in fields:
                if spec.name in self.header:
                    expression, failed = _typed(spec, spec.name)
                    typed.append(f"{expression} AS {quote(spec.name)}")
                    failures.append(f"CASE WHEN {failed} THEN {sql_string(spec.name)} END")
                else:
                    typed.append(f"NULL AS {quote(spec.name)}")
            # One pass types the rows and flags the ones with a value that did not type (a cheap test on the
            # typed column); which columns failed is worked out again only for the few rows sampled.
            flagged = " OR ".join(_failed_after_typing(f) for f in known) or "false"
            conn.execute(
                # A row's line: its place among the parsed rows (rowid, in file order) after the header.
                f"CREATE TEMP TABLE checked AS SELECT __line, __kept, ({flagged}) AS __failed, "
                f"{self.names} FROM ("
                f"SELECT rowid + 2 AS __line, NOT ({self.empty}) AS __kept, "
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
            return self._write(conn, stats, f"SELECT {self.names} FROM checked WHERE __kept")
