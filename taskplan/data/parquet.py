"""Segment files: typed rows written to Parquet and read back with DuckDB, and their metadata."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from taskplan.models.table import FieldSpec, Schema, TableConfig

# Pinot data types as stored in the segment's Parquet file.
DUCKDB_TYPES = {
    "INT": "INTEGER",
    "LONG": "BIGINT",
    "FLOAT": "FLOAT",
    "DOUBLE": "DOUBLE",
    "BIG_DECIMAL": "VARCHAR",
    "BOOLEAN": "BOOLEAN",
    "TIMESTAMP": "BIGINT",  # epoch millis, as Pinot stores it
    "STRING": "VARCHAR",
    "JSON": "VARCHAR",
    "BYTES": "VARCHAR",  # hex
}


def column_type(spec: FieldSpec) -> str:
    base = DUCKDB_TYPES[spec.dataType]
    return base if spec.singleValueField else f"{base}[]"


def column_types(schema: Schema) -> dict[str, str]:
    return {spec.name: column_type(spec) for spec in schema.fields}


def time_column(table: TableConfig, schema: Schema) -> str | None:
    """The table's time column: segmentsConfig.timeColumnName, else the schema's first date-time field."""
    configured = table.segmentsConfig.get("timeColumnName")
    if isinstance(configured, str) and configured:
        return configured
    return schema.dateTimeFieldSpecs[0].name if schema.dateTimeFieldSpecs else None


def time_column_of(table: TableConfig, schema: Schema) -> tuple[str | None, bool]:
    """The time column and whether it holds numbers (so that its min and max are a time range)."""
    column = time_column(table, schema)
    numeric = column is not None and any(
        f.name == column and f.dataType in ("INT", "LONG", "TIMESTAMP") and f.singleValueField
        for f in schema.fields
    )
    return column, numeric


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_pooled = threading.local()  # each thread's open connections (a DuckDB connection is not shared)
POOLED_PER_THREAD = 4


@dataclass(frozen=True)
class DuckDBConfig:
    """How DuckDB connections are opened: sandboxed to the directories they are given, each with ``threads``
    threads (a data subtask's: taskplan.duckdb.threadsPerSubtask, handed down from the worker's settings)."""

    threads: int = 1
    memory_limit: str = ""  # taskplan.duckdb.memoryLimit, per connection (empty: DuckDB's default)

    def connect(self, *allowed_dirs: Path) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection that can touch files under ``allowed_dirs`` only (and nothing else, ever)."""
        config: dict[str, str | bool | int | float | list[str]] = {"threads": max(1, self.threads)}
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        conn = duckdb.connect(config=config)
        dirs = ", ".join(sql_string(str(d.resolve()) + "/") for d in allowed_dirs)
        conn.execute(f"SET allowed_directories = [{dirs}]")
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")
        return conn

    @contextlib.contextmanager
    def pooled(self, *allowed_dirs: Path) -> Iterator[duckdb.DuckDBPyConnection]:
        """A sandboxed connection (see ``connect``) that this thread reuses for the same directories: opening
        one costs about 20 ms, as much as purging a 100,000-row segment. For statements that leave nothing
        behind, or whose caller drops the temporary tables it made; a connection whose statement failed or
        was interrupted is closed."""
        key = (self.threads, self.memory_limit, tuple(str(d.resolve()) for d in allowed_dirs))
        pool: dict[tuple[int, str, tuple[str, ...]], duckdb.DuckDBPyConnection] = getattr(
            _pooled, "connections", {}
        )
        _pooled.connections = pool
        conn = pool.pop(key, None) or self.connect(*allowed_dirs)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        pool[key] = conn  # the most recently used last
        while len(pool) > POOLED_PER_THREAD:
            pool.pop(next(iter(pool))).close()


def write_rows(
    rows: Iterable[Mapping[str, Any]], schema: Schema, dest: Path, duckdb_config: DuckDBConfig
) -> int:
    """Write already-typed rows (dicts keyed by column) to ``dest`` as Parquet; returns the row count."""
    types = column_types(schema)
    count = 0
    with tempfile.NamedTemporaryFile(
        "w", suffix=".jsonl", dir=dest.parent, delete=False, encoding="utf-8"
    ) as staged_rows:
        for row in rows:
            staged_rows.write(json.dumps({c: row.get(c) for c in types}, separators=(",", ":")))
            staged_rows.write("\n")
            count += 1
    try:
        columns = "{" + ", ".join(f"{sql_string(c)}: {sql_string(t)}" for c, t in types.items()) + "}"
        select = ", ".join(quote(c) for c in types)
        with duckdb_config.connect(dest.parent) as conn:
            conn.execute(
                f"COPY (SELECT {select} FROM read_json({sql_string(staged_rows.name)}, "
                f"format='newline_delimited', columns={columns})) "
                f"TO {sql_string(str(dest))} (FORMAT parquet)"
            )
    finally:
        os.unlink(staged_rows.name)
    return count


@dataclass(frozen=True)
class FileStats:
    total_docs: int
    size_bytes: int
    crc: str
    start_time: int | None
    end_time: int | None


def file_crc(path: Path) -> str:
    crc = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return str(crc)


def file_stats(
    path: Path, time_col: str | None, numeric_time: bool, duckdb_config: DuckDBConfig
) -> FileStats:
    with duckdb_config.connect(path.parent) as conn:
        source = f"read_parquet({sql_string(str(path))})"
        if time_col is not None and numeric_time:
            row = conn.execute(
                f"SELECT count(*), min({quote(time_col)}), max({quote(time_col)}) FROM {source}"
            ).fetchone()
        else:
            row = conn.execute(f"SELECT count(*), NULL, NULL FROM {source}").fetchone()
    assert row is not None
    return FileStats(
        total_docs=int(row[0]),
        size_bytes=path.stat().st_size,
        crc=file_crc(path),
        start_time=None if row[1] is None else int(row[1]),
        end_time=None if row[2] is None else int(row[2]),
    )


def copy_to_parquet(
    conn: duckdb.DuckDBPyConnection, query: str, dest: Path, time_col: str | None, numeric_time: bool
) -> FileStats:
    """Write ``query``'s rows to ``dest`` and return the file's stats from DuckDB's own write statistics,
    so the file is not read again for its row count and time range (only once more, for its CRC)."""
    row = conn.execute(f"COPY ({query}) TO {sql_string(str(dest))} (FORMAT parquet, RETURN_STATS)").fetchone()
    assert row is not None
    columns: dict[str, dict[str, str]] = row[4] or {}
    start = end = None
    if time_col is not None and numeric_time:
        column = columns.get(quote(time_col)) or columns.get(time_col) or {}
        start = int(column["min"]) if column.get("min") not in (None, "") else None
        end = int(column["max"]) if column.get("max") not in (None, "") else None
    return FileStats(
        total_docs=int(row[1]),
        size_bytes=dest.stat().st_size,
        crc=file_crc(dest),
        start_time=start,
        end_time=end,
    )


def read_rows(path: Path, duckdb_config: DuckDBConfig) -> list[dict[str, Any]]:
    with duckdb_config.connect(path.parent) as conn:
        cursor = conn.execute(f"SELECT * FROM read_parquet({sql_string(str(path))})")
        names = [d[0] for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
