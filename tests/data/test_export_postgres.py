"""DataExportTask to PostgreSQL with COPY: every column type the schema allows arrives value for value.

The rows go to PostgreSQL as CSV written by DuckDB (taskplan/data/pg_copy.py); these tests read them back
and compare them with the segment file, for single- and multi-value columns of every Pinot type, nulls,
float edge values, and strings that CSV and PostgreSQL's COPY treat specially. One SQLite catalog: the
catalog's kind plays no part in how rows reach the target (tests/data/test_task_types.py covers both).
"""

from __future__ import annotations

import json
import math
import struct
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from taskplan.catalog import Catalog
from taskplan.data.parquet import DuckDBConfig, column_types, quote
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import SegmentStatus
from taskplan.models.table import Schema, TableConfig
from taskplan.plugin import BatchRequest, ExecutionContext, FatalTaskError, PinotTaskConfig, PluginContext
from taskplan.settings import Settings
from taskplan.tasktypes.data_export import DATA_EXPORT

TRICKY_STRINGS = [
    "",
    "NULL",
    "\\N",
    "\\.",  # on a line of its own: the end of data for an unquoted COPY
    "a\n\\.\nb",
    "tab\there",
    "cr\rlf\r\n",
    "back\\slash",
    'quote " and ""',
    "comma, and {braces}",
    " lead and trail ",
    "héllo ☃ 𝄞 日本",
]
SINGLE: dict[str, list[Any]] = {
    "INT": [-(2**31), 2**31 - 1, 0],
    "LONG": [-(2**63), 2**63 - 1, 7],
    "FLOAT": [0.1, 3.4e38, 1e-45, math.inf, -math.inf, math.nan, -0.0],
    "DOUBLE": [0.1, 1e300, 5e-324, math.inf, -math.inf, math.nan, -0.0],
    "BIG_DECIMAL": ["123.4500", "-1E-30", "12345678901234567890.123456789", "0"],
    "BOOLEAN": [True, False],
    "TIMESTAMP": [1_700_000_000_000, -1, 0],
    "STRING": TRICKY_STRINGS,
    "JSON": ['{"a": "tab\\there", "n": [1, 2.5, null], "u": "☃"}', '"just a string"', "[]"],
    "BYTES": ["deadbeef", "", "00ff"],
}
MULTI: dict[str, list[Any]] = {
    kind: [[*values[:3], None], [], values[-2:]] for kind, values in SINGLE.items() if kind != "STRING"
}
MULTI["STRING"] = [TRICKY_STRINGS[:6], [None, *TRICKY_STRINGS[6:]], []]


def export_schema(raw: str, *, with_added: bool) -> Schema:
    fields: list[dict[str, Any]] = [{"name": f"sv_{k.lower()}", "dataType": k} for k in SINGLE]
    fields += [{"name": f"mv_{k.lower()}", "dataType": k, "singleValueField": False} for k in MULTI]
    fields.append({"name": "e", "dataType": "INT"})  # the name the array expressions give their element
    if with_added:  # added to the schema after the segment was written: NULL in every exported row
        fields.append({"name": "added", "dataType": "STRING"})
    return Schema.model_validate({"schemaName": raw, "dimensionFieldSpecs": fields})


def rows_for(schema: Schema) -> list[dict[str, Any]]:
    """One row per tricky string, the other columns cycling through their values; then a row of nulls."""
    rows = []
    for i in range(len(TRICKY_STRINGS)):
        row: dict[str, Any] = {"e": i}
        for kind, values in SINGLE.items():
            row[f"sv_{kind.lower()}"] = values[i % len(values)]
        for kind, lists in MULTI.items():
            row[f"mv_{kind.lower()}"] = lists[i % len(lists)]
        rows.append(row)
    rows.append({f.name: None for f in schema.fields} | {"e": len(rows)})
    return rows


def add_segment(
    manager: SegmentManager,
    table: TableConfig,
    schema: Schema,
    rows: list[dict[str, Any]],
    suffix: str = "0",
) -> None:
    """A committed segment written straight with DuckDB (so that inf, nan and -0.0 reach the file)."""
    types = column_types(schema)
    staged = manager.deep_store.staging_path(table.tableName)
    with duckdb.connect() as conn:
        conn.execute(f"CREATE TABLE t ({', '.join(f'{quote(c)} {t}' for c, t in types.items())})")
        conn.executemany(
            f"INSERT INTO t VALUES ({', '.join('?' for _ in types)})", [[r[c] for c in types] for r in rows]
        )
        conn.execute(f"COPY t TO '{staged}' (FORMAT parquet)")
    segment = manager.describe_file(
        table, schema, staged, f"{table.raw_table_name}_{suffix}", SegmentStatus.DONE, None, None, 0
    )
    manager.deep_store.publish(staged, table.tableName, segment.file_name)
    manager.store.add_segment(segment)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Settings, Catalog, SegmentManager]]:
    settings = Settings.model_validate({"taskplan.dataDir": str(tmp_path)})
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.migrate()
    yield settings, catalog, SegmentManager.from_settings(settings, catalog)
    catalog.close()


def export_tasks(
    settings: Settings, catalog: Catalog, table: TableConfig, url: str, target: str
) -> list[PinotTaskConfig]:
    generator = DATA_EXPORT.generator()
    generator.init(PluginContext(settings=settings, catalog=catalog, duckdb_config=DuckDBConfig()))
    configs = {"externalTable.target": url, "externalTable.tableName": target, "bufferTimePeriod": "0s"}
    return list(generator.generate_next_batch(BatchRequest("p", table, configs, 0, {}, 0, None)).subtasks)


def execute(settings: Settings, catalog: Catalog, task: PinotTaskConfig) -> Any:
    context = ExecutionContext(
        subtask_name="t", attempt=1, plugin=PluginContext(settings, catalog, DuckDBConfig())
    )
    return DATA_EXPORT.executor().execute(task, context)


def comparable(kind: str, value: Any, *, parsed: bool = False) -> Any:
    """A value in a form that compares exactly (floats by their bits); ``parsed``: JSON as psycopg gives
    it back (already decoded), else the JSON text written to the segment."""
    if value is None:
        return None
    if isinstance(value, list):
        return [comparable(kind, v, parsed=parsed) for v in value]
    if kind == "FLOAT":
        return struct.pack("<f", value)
    if kind == "DOUBLE":
        return struct.pack("<d", value)
    if kind == "BIG_DECIMAL":
        return Decimal(value)
    if kind == "JSON":
        return value if parsed else json.loads(value)
    return value


def test_every_type_and_tricky_value_arrives_exactly(
    setup: tuple[Settings, Catalog, SegmentManager], postgres_url: str
) -> None:
    settings, catalog, manager = setup
    raw = f"types{uuid.uuid4().hex[:8]}"
    written = export_schema(raw, with_added=False)
    catalog.put_schema(export_schema(raw, with_added=True))
    table = TableConfig.model_validate({"tableName": raw, "tableType": "REALTIME"})
    catalog.create_table(table)
    rows = rows_for(written)
    add_segment(manager, table, written, rows)
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    target = f"export_{uuid.uuid4().hex[:8]}"

    [task] = export_tasks(settings, catalog, table, url, target)
    result = execute(settings, catalog, task)

    assert result.counts == {"rowsExported": len(rows), "segmentsExported": 1}
    with psycopg.connect(url) as conn:
        cursor = conn.execute(f'SELECT * FROM "{target}" ORDER BY e')
        names = [d.name for d in cursor.description or []]
        got = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        kinds: dict[str, str] = dict(
            conn.execute(
                "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns c "
                "JOIN pg_attribute a ON a.attname = c.column_name AND a.attrelid = %s::regclass "
                "WHERE table_name = %s",
                (f'"{target}"', target),
            ).fetchall()
        )
    assert kinds["sv_timestamp"] == "bigint" and kinds["mv_float"] == "real[]" and kinds["sv_json"] == "jsonb"
    assert len(got) == len(rows)
    for expected, actual in zip(rows, got, strict=True):
        assert actual.pop("added") is None
        for spec in written.fields:
            want = comparable(spec.dataType, expected[spec.name])
            assert comparable(spec.dataType, actual[spec.name], parsed=True) == want, (
                spec.name,
                expected["e"],
            )


def test_a_one_column_table_and_a_value_postgresql_cannot_hold(
    setup: tuple[Settings, Catalog, SegmentManager], postgres_url: str
) -> None:
    """One text column: a lone ``\\.`` is a line of its own (the end of an unquoted COPY's data). A NUL,
    which no PostgreSQL text holds, fails its subtask for good and leaves nothing of that segment."""
    settings, catalog, manager = setup
    raw = f"one{uuid.uuid4().hex[:8]}"
    schema = Schema.model_validate(
        {"schemaName": raw, "dimensionFieldSpecs": [{"name": "s", "dataType": "STRING"}]}
    )
    catalog.put_schema(schema)
    table = TableConfig.model_validate({"tableName": raw, "tableType": "REALTIME"})
    catalog.create_table(table)
    values = ["\\.", "", None, "NULL", "last"]
    add_segment(manager, table, schema, [{"s": v} for v in values], "a")
    add_segment(manager, table, schema, [{"s": "fine"}, {"s": "nul \x00 inside"}], "b")
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    target = f"export_{uuid.uuid4().hex[:8]}"
    good, bad = export_tasks(settings, catalog, table, url, target)

    assert execute(settings, catalog, good).counts["rowsExported"] == len(values)
    with pytest.raises(FatalTaskError, match=f"{target}: segment {raw}_b: .*0x00"):
        execute(settings, catalog, bad)

    with psycopg.connect(url) as conn:  # the failed segment's transaction rolled back: no claim, no rows
        got = [r[0] for r in conn.execute(f'SELECT s FROM "{target}"').fetchall()]
        claims = conn.execute(
            "SELECT segment_name FROM taskplan_exported_segments WHERE source_table = %s", (table.tableName,)
        ).fetchall()
    assert got == values and claims == [(f"{raw}_a",)]
    assert catalog.segments.exported(table.tableName, f"{url}#{target}") == {f"{raw}_a"}
