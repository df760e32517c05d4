"""Segment upkeep goes on table by table: a bad table is logged and counted, the others are still upkept."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from taskplan.catalog import Catalog
from taskplan.catalog.schema import tables
from taskplan.data.deepstore import DeepStore
from taskplan.data.maintenance import SegmentMaintenance
from taskplan.data.parquet import DuckDBConfig
from taskplan.data.segments import FLUSH_ROWS, FLUSH_TIME, SegmentManager
from taskplan.models.segment import SegmentStatus
from tests.support.data import event, events_schema, make_table

FLUSH_BY_TIME = {FLUSH_TIME: "1s"}


def consuming_table(catalog: Catalog, manager: SegmentManager, raw: str) -> str:
    """A REALTIME table with a consuming segment that its flush time makes due within a second."""
    table = make_table(catalog, raw, "REALTIME", tableIndexConfig={"streamConfigs": FLUSH_BY_TIME})
    segment = manager.append_realtime(table, events_schema(raw), [event(1), event(2)])
    assert segment.status is SegmentStatus.IN_PROGRESS
    return table.tableName


def test_a_bad_table_does_not_keep_the_others_from_committing(
    catalog: Catalog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = SegmentManager(catalog, DeepStore(tmp_path / "deepstore"), DuckDBConfig())
    # Names sort the bad tables first: they used to stop the pass before the good one.
    bad = consuming_table(catalog, manager, "aaBadFlush")
    unreadable = consuming_table(catalog, manager, "abUnreadable")
    good = consuming_table(catalog, manager, "zzGood")
    # Written to the catalog directly, as the API would refuse them: a flush row count that is no number,
    # and a config that no longer loads.
    config = catalog.require_table(bad)
    streams = {**FLUSH_BY_TIME, FLUSH_ROWS: "abc"}
    catalog.update_table(config.model_copy(update={"tableIndexConfig": {"streamConfigs": streams}}))
    with catalog.engine.begin() as conn:
        conn.execute(update(tables).where(tables.c.name_with_type == unreadable).values(config_json="{oops"))
    time.sleep(1.1)

    maintenance = SegmentMaintenance(manager, catalog, sweep_interval_s=0)
    with caplog.at_level(logging.ERROR, logger="taskplan.data.maintenance"):
        report = maintenance.run_once()
    assert list(report.committed) == [good]
    [segment] = manager.store.all_segments(good)
    assert segment.status is SegmentStatus.DONE
    assert sorted(report.failed) == [bad, unreadable]
    assert "'abc'" in report.failed[bad]
    assert report.swept  # the sweep went through every table, the bad ones too
    logged = {r.getMessage() for r in caplog.records}
    assert any(bad in m and "abc" in m for m in logged), logged
    assert any(unreadable in m for m in logged), logged
    assert all(r.exc_info for r in caplog.records)  # a new error: with its traceback

    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="taskplan.data.maintenance"):
        again = maintenance.run_once()
    assert sorted(again.failed) == [bad, unreadable] and not again.committed
    assert len(caplog.records) == 2 and not any(r.exc_info for r in caplog.records)  # the same: one line
