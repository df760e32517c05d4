"""Input parsing with Druid's counters, purge filters, segment files, the sweep, REALTIME ingestion."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import duckdb
import pytest

from taskplan.catalog import Catalog
from taskplan.data.csv_loader import READER_TYPED, _CsvLoad, _reader_types, load_csv
from taskplan.data.deepstore import DeepStore
from taskplan.data.maintenance import SegmentMaintenance
from taskplan.data.parquet import DuckDBConfig, FileStats, column_types, read_rows
from taskplan.data.predicate import PurgeFilterError, validate_purge_filter
from taskplan.data.rows import InputFormat, ReaderInitError, RowReader, RowStats, TooManyParseExceptions
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import SegmentStatus
from taskplan.models.table import FieldSpec, Schema
from tests.support.data import event, events_schema, make_table, table_rows, write_parquet

COLUMNS = column_types(events_schema("t"))


def test_csv_rows_are_typed_and_bad_ones_counted(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "id,country,amount,ts,tags\n"
        "1,US,2.5,1700000000000,a;b\n"
        "2,FR,not-a-number,1700000000001,\n"  # typed with an error: amount is null
        "3,DE\n"  # wrong number of fields: unparseable
        "4,IT,1,1700000000004,x\n",
        encoding="utf-8",
    )
    reader = RowReader(events_schema("t"), DuckDBConfig(), source_name="in.csv")
    rows = list(reader.read(path, InputFormat.CSV))
    assert [r["id"] for r in rows] == [1, 2, 4]
    assert rows[0] == {"id": 1, "country": "US", "amount": 2.5, "ts": 1700000000000, "tags": ["a", "b"]}
    assert rows[1]["amount"] is None
    assert reader.stats.counts() == {
        "processed": 2,
        "processedBytes": path.stat().st_size,
        "processedWithError": 1,
        "thrownAway": 0,
        "unparseable": 1,
    }
    assert any("amount" in s for s in reader.stats.samples) and any(
        "line 4" in s for s in reader.stats.samples
    )


def test_csv_loads_through_duckdb_with_the_same_counters(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "id,country,amount,ts,tags\n"
        "1,US,2.5,1700000000000,a;b\n"
        "2,FR,not-a-number,1700000000001,\n"  # typed with an error: amount is null
        "3,DE\n"  # wrong number of fields: unparseable
        ",,,,\n"  # none of the columns: thrown away
        "4,IT,1,1700000000004,x;y\n",
        encoding="utf-8",
    )
    dest = tmp_path / "out.parquet"
    stats, written = load_csv(
        path, events_schema("t"), dest, DuckDBConfig(), source_name="in.csv", time_col="ts", numeric_time=True
    )
    assert stats.counts() == {
        "processed": 2,
        "processedBytes": path.stat().st_size,
        "processedWithError": 1,
        "thrownAway": 1,
        "unparseable": 1,
    }
    rows = read_rows(dest, DuckDBConfig())
    assert (written.total_docs, written.start_time, written.end_time) == (
        3,
        1_700_000_000_000,
        1_700_000_000_004,
    )
    assert [(r["id"], r["amount"], r["tags"]) for r in rows] == [
        (1, 2.5, ["a", "b"]),
        (2, None, None),
        (4, 1.0, ["x", "y"]),
    ]
    assert any("cannot type amount" in s for s in stats.samples)
    with pytest.raises(TooManyParseExceptions):
        load_csv(
            path, events_schema("t"), tmp_path / "strict.parquet", DuckDBConfig(), max_parse_exceptions=1
        )
    (tmp_path / "bad.csv").write_text("nothing,here\n1,2\n", encoding="utf-8")
    with pytest.raises(ReaderInitError, match="names none of the schema's columns"):
        load_csv(tmp_path / "bad.csv", events_schema("t"), tmp_path / "x.parquet", DuckDBConfig())


EDGE_VALUES = [
    " 12",
    "12 ",
    "\t3",
    "1e3",
    "0x10",
    "0b101",
    "1_000",
    "1__0",
    "+5",
    "-0",
    "00012",
    "1.5",
    ".5",
    "5.",
    "NaN",
    "-inf",
    "Infinity",
    "1e400",
    "3000000000",
    "99999999999999999999",
    "0xFFFFFFFF",
    "1 000",
    "true",
    "",
    " ",
    "x",
]


def _loaded(loaded: tuple[RowStats, FileStats] | None, dest: Path) -> tuple[dict[str, int], str] | None:
    """A load's counters and rows (as text, so that NaN equals NaN)."""
    return None if loaded is None else (loaded[0].counts(), repr(read_rows(dest, DuckDBConfig())))


@pytest.mark.parametrize("data_type", sorted(READER_TYPED))
def test_csv_reader_typing_is_the_same_as_typing_from_text(tmp_path: Path, data_type: str) -> None:
    """DuckDB's reader types numbers itself when it types them as our expressions would: value by value,
    the route through the reader either gives up (and the text route is taken) or gives the same rows and
    counters as the text route."""
    schema = Schema.model_validate(
        {
            "schemaName": "t",
            "dimensionFieldSpecs": [
                {"name": "v", "dataType": data_type},
                {"name": "s", "dataType": "STRING"},
                {"name": "tags", "dataType": "STRING", "singleValueField": False},
            ],
        }
    )
    taken = 0
    for n, value in enumerate(EDGE_VALUES):
        path = tmp_path / f"{n}.csv"
        path.write_text(f"v,s,tags,other\n{value},a,x;;y,1\n,,,2\n3,b\n", encoding="utf-8")
        header = ["v", "s", "tags", "other"]
        types = _reader_types(schema, header)
        assert types is not None

        dest = tmp_path / f"{n}.parquet"
        load = _CsvLoad(path, schema, header, dest, path.name, None, None, False, DuckDBConfig())
        by_reader = _loaded(load.typed_by_reader(types), dest)
        from_text = _loaded(load.typed_from_text(), dest)
        assert from_text is not None and from_text[0]["unparseable"] == 1 and from_text[0]["thrownAway"] == 1
        if by_reader is not None:
            taken += 1
            assert by_reader == from_text, value
    assert taken >= len(EDGE_VALUES) // 2  # the route is taken for most values, clean ones included


def test_csv_reader_route_is_left_for_types_it_does_not_type_as_we_do() -> None:
    header = ["id", "country", "tags", "when", "flag"]
    schema = Schema.model_validate(
        {
            "schemaName": "t",
            "dimensionFieldSpecs": [
                {"name": "id", "dataType": "LONG"},
                {"name": "country", "dataType": "STRING"},
                {"name": "tags", "dataType": "STRING", "singleValueField": False},
            ],
        }
    )
    assert _reader_types(schema, header) == dict.fromkeys(header, "VARCHAR") | {"id": "BIGINT"}
    for spec in (
        {"name": "flag", "dataType": "BOOLEAN"},
        {"name": "when", "dataType": "TIMESTAMP"},
        {"name": "ids", "dataType": "LONG", "singleValueField": False},
    ):
        other = schema.model_copy(
            update={"dimensionFieldSpecs": [*schema.dimensionFieldSpecs, FieldSpec(**spec)]}
        )
        assert _reader_types(other, [*header, "ids"]) is None, spec


def test_json_lines_count_unparseable_and_thrown_away(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text(
        '{"id": 1, "country": "US"}\n{broken\n[1, 2]\n{"other": 1}\n{"id": "x"}\n', encoding="utf-8"
    )
    reader = RowReader(events_schema("t"), DuckDBConfig())
    rows = list(reader.read(path, InputFormat.JSON))
    assert len(rows) == 2
    counts = reader.stats.counts()
    wanted = ("processed", "unparseable", "thrownAway", "processedWithError")
    assert [counts[k] for k in wanted] == [1, 2, 1, 1]


def test_too_many_parse_exceptions_stop_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("nope\n" * 5, encoding="utf-8")
    reader = RowReader(events_schema("t"), DuckDBConfig(), max_parse_exceptions=3, source_name="bad.json")
    with pytest.raises(TooManyParseExceptions, match="more than 3 parse exceptions"):
        list(reader.read(path, InputFormat.JSON))


def test_unreadable_parquet_fails_to_init(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(ReaderInitError):
        list(RowReader(events_schema("t"), DuckDBConfig()).read(path, InputFormat.PARQUET))
    good = write_parquet(tmp_path / "good.parquet", [event(1), event(2, "FR")])
    rows = list(RowReader(events_schema("t"), DuckDBConfig()).read(good, InputFormat.PARQUET))
    assert [(r["id"], r["country"], r["tags"]) for r in rows] == [
        (1, "US", ["a", "b"]),
        (2, "FR", ["a", "b"]),
    ]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("country = 'US'; DROP TABLE tp_tables", "statement separator"),
        ("country = 'US') OR (1 = 1", "parentheses do not balance"),
        ("1=1) UNION SELECT * FROM read_csv('/etc/passwd') --", "comment"),
        ("country IN (SELECT country FROM tp_tables)", "subquery"),
        ("read_csv('/etc/passwd') IS NOT NULL", "function 'read_csv'"),
        ("getenv('HOME') = 'x'", "function 'getenv'"),
        ("country = 'US') GROUP BY (country", "parentheses do not balance"),
        ("secret = 1", "column 'secret'"),
        ("t.country = 'US'", "bare column names"),
        ("", "empty"),
        ("country = ", "not a valid SQL expression"),
    ],
)
def test_purge_filters_other_than_one_expression_are_refused(expression: str, message: str) -> None:
    with pytest.raises(PurgeFilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_purge_filter(expression, COLUMNS)


def test_purge_filters_that_are_one_expression_pass() -> None:
    for expression in (
        "country = 'US'",
        "amount > 10 AND country IN ('US', 'FR') OR ts BETWEEN 1 AND 2",
        "lower(country) LIKE 'u%' AND NOT (id IS NULL)",
        "country = 'it''s (odd'",
        "CASE WHEN amount > 1 THEN true ELSE false END",
        "list_contains(tags, 'a')",
    ):
        assert validate_purge_filter(expression, COLUMNS) == expression


def manager_for(catalog: Catalog, tmp_path: Path) -> SegmentManager:
    return SegmentManager(catalog, DeepStore(tmp_path / "deepstore"), DuckDBConfig())


def test_a_half_done_replacement_is_rolled_back_and_leaves_no_file(catalog: Catalog, tmp_path: Path) -> None:
    manager = manager_for(catalog, tmp_path)
    table = make_table(catalog, "sweep")
    schema = events_schema("sweep")
    manager.upload(table, schema, [event(1), event(2)], "old")
    # Crash 1: a new segment uploaded into a replacement that never ended.
    lineage = manager.store.start_replace(table.tableName, ["old"], [], lineage_id="crashed")
    manager.upload(table, schema, [event(3)], "new", lineage_id=lineage)
    # Crash 2: a file published but never recorded.
    orphan, staged = manager.build(table, schema, [event(4)], "orphan")
    manager.deep_store.publish(staged, table.tableName, orphan.file_name)
    # Crash 3: a staging file.
    manager.deep_store.staging_path(table.tableName).write_bytes(b"partial")
    assert [r["id"] for r in table_rows(manager, table.tableName)] == [1, 2]  # readers see the old set

    report = manager.cleanup(table.tableName, stale_after_ms=0, grace_s=0)
    assert report.reverted == ["crashed"] and "new" in report.retired_segments
    assert [s.segment_name for s in manager.store.all_segments(table.tableName)] == ["old"]
    assert set(manager.deep_store.files(table.tableName)) == {"old.parquet"}
    assert [r["id"] for r in table_rows(manager, table.tableName)] == [1, 2]


def test_a_completed_replacement_interrupted_before_retiring_is_finished(
    catalog: Catalog, tmp_path: Path
) -> None:
    manager = manager_for(catalog, tmp_path)
    table = make_table(catalog, "finish")
    schema = events_schema("finish")
    manager.upload(table, schema, [event(1)], "old")
    lineage = manager.store.start_replace(table.tableName, ["old"], ["new"])
    manager.upload(table, schema, [event(2)], "new")
    manager.store.end_replace(table.tableName, lineage)  # crash here: "old" not yet retired
    assert [r["id"] for r in table_rows(manager, table.tableName)] == [2]
    manager.cleanup(table.tableName, grace_s=0)
    assert set(manager.deep_store.files(table.tableName)) == {"new.parquet"}
    assert [s.segment_name for s in manager.store.all_segments(table.tableName)] == ["new"]


def test_realtime_rows_go_to_the_consuming_segment_until_a_flush_threshold(
    catalog: Catalog, tmp_path: Path
) -> None:
    manager = manager_for(catalog, tmp_path)
    stream = {"realtime.segment.flush.threshold.rows": "5", "realtime.segment.flush.threshold.time": "1h"}
    table = make_table(catalog, "clicks", "REALTIME", tableIndexConfig={"streamConfigs": stream})
    schema = events_schema("clicks")
    first = manager.append_realtime(table, schema, [event(1), event(2)])
    assert first.status is SegmentStatus.IN_PROGRESS and first.total_docs == 2
    second = manager.append_realtime(table, schema, [event(3), event(4)])
    assert second.segment_name == first.segment_name and second.total_docs == 4
    third = manager.append_realtime(table, schema, [event(5)])
    assert third.status is SegmentStatus.DONE and third.committed_ms is not None
    fourth = manager.append_realtime(table, schema, [event(6)])
    assert fourth.segment_name != first.segment_name and fourth.status is SegmentStatus.IN_PROGRESS
    assert [r["id"] for r in table_rows(manager, table.tableName)] == [1, 2, 3, 4, 5, 6]
    assert not set(manager.deep_store.files(table.tableName)) - {
        s.file_name for s in manager.store.all_segments(table.tableName)
    }

    # The time threshold commits a consuming segment that stopped receiving rows.
    aged = table.model_copy(
        update={
            "tableIndexConfig": {"streamConfigs": {**stream, "realtime.segment.flush.threshold.time": "1s"}}
        }
    )
    time.sleep(1.1)
    assert manager.commit_due_segments(aged) == [fourth.segment_name]
    assert all(s.status is SegmentStatus.DONE for s in manager.store.all_segments(table.tableName))


def test_deep_store_refuses_paths_outside_the_table(tmp_path: Path) -> None:
    store = DeepStore(tmp_path)
    for bad in ("../x.parquet", ".hidden", "a/b.parquet"):
        with pytest.raises(ValueError, match="bad segment file name"):
            store.path("events_OFFLINE", bad)
    with pytest.raises(ValueError, match="table"):
        store.table_dir("../../etc")
    assert os.path.commonpath([store.path("events_OFFLINE", "s.parquet"), tmp_path]) == str(
        tmp_path.resolve()
    )


def test_maintenance_commits_due_segments_and_sweeps(catalog: Catalog, tmp_path: Path) -> None:
    manager = manager_for(catalog, tmp_path)
    stream = {"realtime.segment.flush.threshold.time": "1s"}
    table = make_table(catalog, "upkeep", "REALTIME", tableIndexConfig={"streamConfigs": stream})
    manager.append_realtime(table, events_schema("upkeep"), [event(1)])
    orphan = manager.deep_store.staging_path(table.tableName)
    orphan.write_bytes(b"left by a crash")
    os.utime(orphan, (1, 1))  # long ago
    time.sleep(1.1)
    SegmentMaintenance(manager, catalog, sweep_interval_s=0).run_once()
    [segment] = manager.store.all_segments(table.tableName)
    assert segment.status is SegmentStatus.DONE
    assert not orphan.exists()


def test_pooled_connections_are_reused_per_thread_and_stay_sandboxed(tmp_path: Path) -> None:
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    for directory in (inside, outside):
        with duckdb.connect() as conn:
            conn.execute(f"COPY (SELECT 1 AS x) TO '{directory / 'f.parquet'}' (FORMAT parquet)")
    config = DuckDBConfig()
    with config.pooled(inside) as first:
        assert first.execute(f"SELECT x FROM read_parquet('{inside / 'f.parquet'}')").fetchall() == [(1,)]
    with config.pooled(inside) as again:
        assert again is first
        # One DuckDB thread per subtask by default (taskplan.duckdb.threadsPerSubtask).
        assert again.execute("SELECT current_setting('threads')").fetchone() == (1,)
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(config.pooled(inside).__enter__()))
    thread.start()
    thread.join()
    assert other[0] is not first  # one pool per thread: a DuckDB connection is not shared
    with pytest.raises(duckdb.PermissionException), config.pooled(inside) as conn:
        conn.execute(f"SELECT x FROM read_parquet('{outside / 'f.parquet'}')")
    with config.pooled(inside) as fresh:
        assert fresh is not first  # the one that failed was closed, not reused
        with pytest.raises(duckdb.Error):
            fresh.execute("SET allowed_directories = ['/']")
