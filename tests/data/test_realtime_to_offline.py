"""RealtimeToOfflineSegmentsTask on real segments, on SQLite and PostgreSQL catalogs, batches run in process
(tests/data/test_new_task_plans.py runs it as a Temporal plan)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from taskplan.catalog import Catalog
from taskplan.catalog.segments import SegmentCatalog
from taskplan.clock import now_ms
from taskplan.data.deepstore import DeepStore
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import SegmentStatus
from taskplan.models.table import TableConfig
from taskplan.plugin import FatalTaskError, TaskConfigError
from taskplan.settings import Settings
from taskplan.tasktypes.realtime_to_offline import REALTIME_TO_OFFLINE
from tests.data.test_merge_rollup import D0, DAY, row
from tests.data.test_task_types import execute, generator_of, manager_of, name, request
from tests.support.data import deep_store_leaks, events_schema, make_table, run_plan_directly, table_rows

CONFIGS = {"bucketTimePeriod": "1d", "bufferTimePeriod": "1d"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.model_validate({"taskplan.dataDir": str(tmp_path)})


def tables_with_segments(
    settings: Settings, catalog: Catalog, prefix: str
) -> tuple[SegmentManager, TableConfig, TableConfig]:
    """A REALTIME table with rows on days 0 and 2 (seg1 spans both; day 1 has none) and a consuming segment
    of now, and its empty OFFLINE table."""
    manager = manager_of(settings, catalog)
    raw = name(prefix)
    realtime = make_table(catalog, raw, "REALTIME")
    offline = make_table(catalog, raw)
    schema = events_schema(raw)
    manager.upload(realtime, schema, [row(1, D0 + 1), row(2, D0 + 2)], "seg0")
    manager.upload(realtime, schema, [row(3, D0 + 3), row(4, D0 + 2 * DAY + 4)], "seg1")
    manager.upload(realtime, schema, [row(5, D0 + 2 * DAY + 5), row(6, D0 + 2 * DAY + 6)], "seg2")
    manager.upload(realtime, schema, [row(7, now_ms())], "consuming", status=SegmentStatus.IN_PROGRESS)
    return manager, realtime, offline


def watermark(catalog: Catalog, table: TableConfig) -> object:
    return (catalog.segments.task_metadata(table.tableName, "RealtimeToOfflineSegmentsTask") or {}).get(
        "watermarkMs"
    )


def test_a_plan_moves_every_completed_window_once(settings: Settings, catalog: Catalog) -> None:
    manager, realtime, offline = tables_with_segments(settings, catalog, "rto")

    run = run_plan_directly(REALTIME_TO_OFFLINE, settings, catalog, realtime, CONFIGS)

    # Days 0, 1 (seg1 spans it, with no row in it: no segment) and 2, one window a batch.
    assert run.batches == 3 and run.total("windowsMoved") == 3 and run.total("rowsOut") == 6
    assert [r["id"] for r in table_rows(manager, offline.tableName)] == [1, 2, 3, 4, 5, 6]
    names = sorted(s.segment_name for s in catalog.segments.visible_segments(offline.tableName))
    assert names == [f"{realtime.raw_table_name}_{D0 + d * DAY}_{D0 + (d + 1) * DAY}_0" for d in (0, 2)]
    assert watermark(catalog, realtime) == D0 + 3 * DAY
    assert len(table_rows(manager, realtime.tableName)) == 7  # the REALTIME table keeps its rows
    assert run_plan_directly(REALTIME_TO_OFFLINE, settings, catalog, realtime, CONFIGS).batches == 0
    assert deep_store_leaks(manager, offline.tableName) == set()
    manager.remove_table(realtime.tableName)  # a dropped table's watermark goes with it
    assert watermark(catalog, realtime) is None


def test_a_move_killed_between_upload_and_watermark_moves_the_window_once(
    settings: Settings, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, realtime, offline = tables_with_segments(settings, catalog, "rtk")
    rollup = {**CONFIGS, "mergeType": "rollup", "roundBucketTimePeriod": "1d", "maxNumRecordsPerSegment": "1"}
    generator = generator_of(REALTIME_TO_OFFLINE, settings, catalog)
    [task] = generator.generate_adhoc_tasks(realtime, rollup)  # one-shot: one window
    assert task.configs["segmentName"] == "seg0,seg1" and watermark(catalog, realtime) == D0

    def killed(*args: object, **kwargs: object) -> None:
        raise SystemExit("minion killed after the upload, before the watermark")

    with monkeypatch.context() as patch:
        patch.setattr(SegmentCatalog, "advance_watermark", killed)
        with pytest.raises(SystemExit):
            execute(REALTIME_TO_OFFLINE, settings, catalog, task)
    assert table_rows(manager, offline.tableName) == [] and watermark(catalog, realtime) == D0
    assert len(deep_store_leaks(manager, offline.tableName)) == 3  # files of no segment, for the sweep

    retried = execute(REALTIME_TO_OFFLINE, settings, catalog, task)
    assert retried.counts == {"windowsMoved": 1, "rowsIn": 4, "rowsOut": 3, "segmentsCreated": 3}
    duplicate = execute(REALTIME_TO_OFFLINE, settings, catalog, task)
    assert duplicate.counts == {"windowsSkipped": 1}
    rows = [(r["id"], r["ts"]) for r in table_rows(manager, offline.tableName)]
    assert rows == [(1, D0), (2, D0), (3, D0)]  # rolled up by id (ids differ), time rounded to the day
    assert watermark(catalog, realtime) == D0 + DAY
    manager.cleanup(offline.tableName, grace_s=0)
    assert deep_store_leaks(manager, offline.tableName) == set()

    # The plan goes on from the watermark: only day 2 is left.
    run = run_plan_directly(REALTIME_TO_OFFLINE, settings, catalog, realtime, rollup)
    assert run.batches == 2 and len(table_rows(manager, offline.tableName)) == 6


def test_bad_configs_are_refused(settings: Settings, catalog: Catalog) -> None:
    generator = generator_of(REALTIME_TO_OFFLINE, settings, catalog)
    raw = name("rtb")
    realtime = make_table(catalog, raw, "REALTIME")
    schema = events_schema(raw)
    with pytest.raises(TaskConfigError, match=f"{raw}_OFFLINE, which does not exist"):
        generator.validate_task_configs(realtime, schema, CONFIGS)
    offline = make_table(catalog, raw)
    with pytest.raises(TaskConfigError, match="is not REALTIME"):
        generator.validate_task_configs(offline, schema, CONFIGS)
    for configs, message in [
        ({"bucketTimePeriod": "0d"}, "bucketTimePeriod must be a period longer than 0"),
        ({"bufferTimePeriod": "later"}, "bufferTimePeriod"),
        ({"mergeType": "squash"}, "mergeType must be one of"),
        ({"maxNumRecordsPerSegment": "0"}, "maxNumRecordsPerSegment"),
        ({"amount.aggregationType": "avg"}, "amount.aggregationType"),
    ]:
        with pytest.raises(TaskConfigError, match=message):
            generator.validate_task_configs(realtime, schema, configs)
    assert generator.generate_next_batch(request(realtime, CONFIGS)).no_more_work  # no segments yet


def test_a_window_is_not_recorded_for_a_dropped_offline_table(
    settings: Settings, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, realtime, offline = tables_with_segments(settings, catalog, "rtd")
    [task] = generator_of(REALTIME_TO_OFFLINE, settings, catalog).generate_adhoc_tasks(realtime, CONFIGS)
    publish = DeepStore.publish

    def publish_then_drop(self: DeepStore, *args: Any) -> Any:  # the drop lands after the upload
        published = publish(self, *args)
        monkeypatch.undo()
        manager.remove_table(offline.tableName)
        catalog.create_table(offline)  # and the table is created again under the name
        return published

    monkeypatch.setattr(DeepStore, "publish", publish_then_drop)
    with pytest.raises(FatalTaskError, match="was dropped while the window moved"):
        execute(REALTIME_TO_OFFLINE, settings, catalog, task)
    assert catalog.segments.all_segments(offline.tableName) == [] and watermark(catalog, realtime) == D0
    assert deep_store_leaks(manager, offline.tableName) == set()


def test_duplicates_racing_move_the_window_once(settings: Settings, catalog: Catalog) -> None:
    manager, realtime, offline = tables_with_segments(settings, catalog, "rtr")
    [task] = generator_of(REALTIME_TO_OFFLINE, settings, catalog).generate_adhoc_tasks(realtime, CONFIGS)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: execute(REALTIME_TO_OFFLINE, settings, catalog, task), range(4)))
    assert sorted(r.counts.get("windowsMoved", 0) for r in results) == [0, 0, 0, 1]
    assert [r["id"] for r in table_rows(manager, offline.tableName)] == [1, 2, 3]
    assert watermark(catalog, realtime) == D0 + DAY
    assert deep_store_leaks(manager, offline.tableName) == set()
