"""Appends to a REALTIME table's consuming segment racing each other, the flush threshold and a table drop:
every row is kept exactly once (or refused with nothing written), and no file outlives its race."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pytest

from taskplan.catalog import Catalog
from taskplan.catalog.errors import TableDroppedError
from taskplan.data.deepstore import DeepStore
from taskplan.data.parquet import DuckDBConfig
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import SegmentMetadata, SegmentStatus
from taskplan.models.table import TableConfig
from tests.support.data import deep_store_leaks, event, events_schema, make_table, table_rows

FLUSH_ROWS = 700


def realtime(catalog: Catalog, raw: str, flush_rows: int = FLUSH_ROWS) -> TableConfig:
    stream = {"realtime.segment.flush.threshold.rows": str(flush_rows)}
    return make_table(catalog, raw, "REALTIME", tableIndexConfig={"streamConfigs": stream})


def batch(start: int, count: int) -> list[dict[str, Any]]:
    return [event(i) for i in range(start, start + count)]


def assert_kept_exactly_once(manager: SegmentManager, table: TableConfig, expected: int) -> None:
    """Each id once, in the rows (DuckDB) and the segments' totals; one consuming segment at most, every
    committed one at the flush threshold; no file but the segments'."""
    name = table.tableName
    segments = manager.store.all_segments(name)
    ids = [r["id"] for r in table_rows(manager, name)]
    assert ids == list(range(expected))
    assert sum(s.total_docs for s in segments) == expected
    consuming = [s for s in segments if s.status is SegmentStatus.IN_PROGRESS]
    assert len(consuming) <= 1 and all(s.total_docs < FLUSH_ROWS for s in consuming)
    assert all(s.total_docs >= FLUSH_ROWS for s in segments if s.status is SegmentStatus.DONE)
    assert deep_store_leaks(manager, name) == set()


def segments_of(manager: SegmentManager, table: TableConfig) -> list[SegmentMetadata]:
    return manager.store.all_segments(table.tableName)


def appender(catalog: Catalog, root: Path) -> SegmentManager:
    # One manager per call, as the API makes one per request.
    return SegmentManager(catalog, DeepStore(root), DuckDBConfig())


@contextlib.contextmanager
def processes(catalog: Catalog, count: int) -> Iterator[list[Catalog]]:
    """Catalogs of their own, as ``count`` API processes have: their appends race (those of one catalog
    take turns)."""
    opened = [Catalog(catalog.url) for _ in range(count)]
    try:
        yield opened
    finally:
        for each in opened:
            each.close()


def test_twenty_concurrent_appends_keep_every_row_across_flushes(catalog: Catalog, tmp_path: Path) -> None:
    table = realtime(catalog, "racing")
    schema = events_schema("racing")
    root = tmp_path / "deepstore"
    with processes(catalog, 4) as catalogs:

        def append(i: int) -> None:
            appender(catalogs[i % 4], root).append_realtime(table, schema, batch(i * 100, 100))

        with ThreadPoolExecutor(20) as pool:
            list(pool.map(append, range(20)))
    manager = appender(catalog, root)
    assert_kept_exactly_once(manager, table, 2000)
    # Each version is a file of its own, named after the segment and the version: 7 appends made each
    # committed segment (versions 0 to 6), 6 the consuming one.
    versions = {
        s.status: s.file_name.removeprefix(s.segment_name).split(".")[1] for s in segments_of(manager, table)
    }
    assert versions == {SegmentStatus.DONE: "v6", SegmentStatus.IN_PROGRESS: "v5"}
    assert sum(s.status is SegmentStatus.DONE for s in manager.store.all_segments(table.tableName)) == 2


def test_concurrent_appends_after_sequential_ones(catalog: Catalog, tmp_path: Path) -> None:
    table = realtime(catalog, "later")
    schema = events_schema("later")
    root = tmp_path / "deepstore"
    for i in range(3):
        appender(catalog, root).append_realtime(table, schema, batch(i * 100, 100))

    with processes(catalog, 5) as catalogs:

        def append(i: int) -> None:
            appender(catalogs[i], root).append_realtime(table, schema, batch(300 + i * 100, 100))

        with ThreadPoolExecutor(5) as pool:
            list(pool.map(append, range(5)))
    assert_kept_exactly_once(appender(catalog, root), table, 800)


def test_the_flush_age_commit_does_not_undo_a_racing_append(catalog: Catalog, tmp_path: Path) -> None:
    """The maintenance commit swaps by version too: an append that got in first is not overwritten."""
    table = realtime(catalog, "aging")
    schema = events_schema("aging")
    manager = appender(catalog, tmp_path / "deepstore")
    manager.append_realtime(table, schema, batch(0, 10))
    stale = manager.store.consuming_segment(table.tableName)
    assert stale is not None
    manager.append_realtime(table, schema, batch(10, 10))
    committed = stale.__class__(**{**stale.__dict__, "status": SegmentStatus.DONE, "committed_ms": 1})
    assert manager.store.commit_consuming(committed) is False  # the version it saw is gone
    [segment] = manager.store.all_segments(table.tableName)
    assert segment.status is SegmentStatus.IN_PROGRESS and segment.total_docs == 20


def paused_rows(rows: list[dict[str, Any]], reached: threading.Event, go: threading.Event) -> Iterator[Any]:
    """Rows that stop halfway until ``go``: the writer is mid-append when the test acts."""
    for index, row in enumerate(rows):
        if index == len(rows) // 2:
            reached.set()
            assert go.wait(30)
        yield row


@pytest.mark.parametrize("table_type", ["REALTIME", "OFFLINE"])
def test_an_append_racing_a_drop_writes_nothing_that_outlives_it(
    catalog: Catalog, tmp_path: Path, table_type: str
) -> None:
    raw = f"dropped{table_type.lower()}"
    table = realtime(catalog, raw) if table_type == "REALTIME" else make_table(catalog, raw)
    schema = events_schema(raw)
    manager = appender(catalog, tmp_path / "deepstore")
    if table_type == "REALTIME":
        manager.append_realtime(table, schema, batch(0, 10))  # a consuming segment that the drop removes
    reached, go = threading.Event(), threading.Event()
    rows = paused_rows(batch(100, 10), reached, go)
    created = manager.store.table_created_ms(table.tableName)

    def write() -> object:
        if table_type == "REALTIME":
            return manager.append_realtime(table, schema, rows, table_created_ms=created)
        return manager.upload(table, schema, rows, "late", table_created_ms=created)

    with ThreadPoolExecutor(1) as pool:
        writing = pool.submit(write)
        assert reached.wait(30)
        manager.remove_table(table.tableName)
        assert catalog.get_table_config(table.tableName) is None
        again = realtime(catalog, raw) if table_type == "REALTIME" else make_table(catalog, raw)
        go.set()
        with pytest.raises(TableDroppedError, match="was dropped"):
            writing.result(timeout=60)
    # The table created again under the name has nothing of the old one: no segment, no file.
    assert manager.store.all_segments(again.tableName) == []
    assert manager.deep_store.files(again.tableName) == {}
    assert not list((tmp_path / "deepstore").glob(".dropped-*"))


def test_a_lost_consuming_file_is_an_error_not_a_race(catalog: Catalog, tmp_path: Path) -> None:
    table = realtime(catalog, "lost")
    schema = events_schema("lost")
    manager = appender(catalog, tmp_path / "deepstore")
    segment = manager.append_realtime(table, schema, batch(0, 5))
    manager.deep_store.path(segment.table_name, segment.file_name).unlink()  # gone, while named
    with pytest.raises(duckdb.IOException):
        manager.append_realtime(table, schema, batch(5, 5))
    assert manager.store.all_segments(table.tableName) == [segment]
    assert deep_store_leaks(manager, table.tableName) == set()
