"""MergeRollupTask on real segments (Parquet through DuckDB), on SQLite and PostgreSQL catalogs, batches run
in process as the plan workflow runs them (tests/data/test_new_task_plans.py runs it as a Temporal plan)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskplan.catalog import Catalog
from taskplan.clock import now_ms
from taskplan.data.segments import SegmentManager
from taskplan.models.table import TableConfig
from taskplan.plugin import TaskConfigError
from taskplan.settings import Settings
from taskplan.tasktypes.merge_rollup import MERGE_LEVEL_KEY, MERGE_ROLLUP, merge_levels
from tests.data.test_task_types import execute, generator_of, manager_of, name, request
from tests.support.data import deep_store_leaks, events_schema, make_table, run_plan_directly, table_rows

HOUR = 3_600_000
DAY = 24 * HOUR
D0 = (1_700_000_000_000 // (3 * DAY)) * (3 * DAY)  # a 3-day bucket's start, so a 1-day bucket's too


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.model_validate({"taskplan.dataDir": str(tmp_path)})


def row(i: int, ts: int, country: str = "US", amount: float = 1.0) -> dict[str, Any]:
    return {"id": i, "country": country, "amount": amount, "ts": ts, "tags": ["a"]}


def add(manager: SegmentManager, table: TableConfig, segment: str, rows: list[dict[str, Any]]) -> None:
    manager.upload(table, events_schema(table.raw_table_name), rows, segment)


def day_segments(manager: SegmentManager, table: TableConfig) -> None:
    """Two segments on day 0, two on day 1, one on day 2 (3 rows each), and one of today (not ready)."""
    for s, day in enumerate([0, 0, 1, 1, 2]):
        add(manager, table, f"seg{s}", [row(s * 10 + i, D0 + day * DAY + s * 10 + i) for i in range(3)])
    add(manager, table, "today", [row(100 + i, now_ms() - i) for i in range(3)])


LEVELS = {
    "1day.bucketTimePeriod": "1d",
    "1day.bufferTimePeriod": "1d",
    "3day.bucketTimePeriod": "3d",
    "3day.bufferTimePeriod": "1d",
    "3day.maxNumRecordsPerSegment": "10",
}


def test_a_plan_walks_every_ready_bucket_level_by_level(settings: Settings, catalog: Catalog) -> None:
    manager = manager_of(settings, catalog)
    table = make_table(catalog, name("mr"))
    day_segments(manager, table)
    before = table_rows(manager, table.tableName)

    run = run_plan_directly(MERGE_ROLLUP, settings, catalog, table, LEVELS)

    # Three 1-day buckets one batch each (maxNumParallelBuckets 1), then the 3-day bucket over them.
    assert run.batches == 4
    assert run.total("segmentsMerged") == 5 + 3 and run.total("rowsIn") == 15 + 15
    assert table_rows(manager, table.tableName) == before  # concat: every row, once
    segments = {s.segment_name: s for s in catalog.segments.visible_segments(table.tableName)}
    merged = sorted(n for n in segments if n != "today")
    assert len(merged) == 2 and all(segments[n].custom[MERGE_LEVEL_KEY] == "3day" for n in merged)
    assert sorted(segments[n].total_docs for n in merged) == [5, 10]  # 15 rows, at most 10 a segment
    marks = catalog.segments.task_metadata(table.tableName, "MergeRollupTask")
    assert marks is not None and set(marks["watermarkMap"]) == {"1day", "3day"}
    # Each watermark is past every bucket merged and the empty buckets after them, up to the first not ready.
    watermarks = marks["watermarkMap"]
    assert D0 + 3 * DAY <= watermarks["3day"] <= watermarks["1day"] <= now_ms() - DAY
    assert deep_store_leaks(manager, table.tableName) == set()
    assert run_plan_directly(MERGE_ROLLUP, settings, catalog, table, LEVELS).batches == 0


def test_rollup_aggregates_metrics_and_dedup_drops_duplicates(settings: Settings, catalog: Catalog) -> None:
    manager = manager_of(settings, catalog)
    table = make_table(catalog, name("ru"))
    add(manager, table, "a", [row(1, D0 + 10, amount=1), row(1, D0 + 20, amount=5), row(2, D0 + 5, "FR", 2)])
    add(manager, table, "b", [row(1, D0 + 30, amount=3), row(2, D0 + 50, "FR", 7), row(3, D0 + DAY, "DE")])
    configs = {
        "1day.bucketTimePeriod": "1d",
        "1day.bufferTimePeriod": "0d",
        "1day.mergeType": "rollup",
        "1day.roundBucketTimePeriod": "1h",
        "1day.maxNumParallelBuckets": "5",
        "amount.aggregationType": "max",
    }
    # One-shot: one batch, one subtask per ready bucket (b starts on day 0; its day-1 row spills over).
    [task] = generator_of(MERGE_ROLLUP, settings, catalog).generate_adhoc_tasks(table, configs)
    assert task.configs["segmentName"] == "a,b"
    assert execute(MERGE_ROLLUP, settings, catalog, task).counts["segmentsCreated"] == 2
    rows = [(r["id"], r["country"], r["amount"], r["ts"]) for r in table_rows(manager, table.tableName)]
    assert rows == [(1, "US", 5.0, D0), (2, "FR", 7.0, D0), (3, "DE", 1.0, D0 + DAY)]
    assert execute(MERGE_ROLLUP, settings, catalog, task).counts == {"segmentsSkipped": 2}  # a duplicate
    # The spilled segment is merged in its own bucket, day 1.
    run = run_plan_directly(MERGE_ROLLUP, settings, catalog, table, configs)
    assert run.batches == 1 and run.total("segmentsMerged") == 1
    assert len(table_rows(manager, table.tableName)) == 3
    levels = sorted(
        s.custom.get(MERGE_LEVEL_KEY, "") for s in catalog.segments.visible_segments(table.tableName)
    )
    assert levels == ["1day", "1day"]

    dedup = make_table(catalog, name("dd"))
    add(manager, dedup, "a", [row(1, D0 + 10), row(1, D0 + 10), row(2, D0 + 11)])
    add(manager, dedup, "b", [row(1, D0 + 10), row(3, D0 + 12), {**row(4, 0), "ts": None}])
    configs = {"1d.bucketTimePeriod": "1d", "1d.bufferTimePeriod": "0d", "1d.mergeType": "dedup"}
    run = run_plan_directly(MERGE_ROLLUP, settings, catalog, dedup, configs)
    assert run.batches == 1 and run.total("rowsIn") == 6 and run.total("rowsOut") == 4
    assert [r["id"] for r in table_rows(manager, dedup.tableName)] == [1, 2, 3, 4]  # no time: kept


def test_a_merge_killed_between_upload_and_swap_is_finished_by_its_retry(
    settings: Settings, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = manager_of(settings, catalog)
    table = make_table(catalog, name("mk"))
    day_segments(manager, table)
    before = table_rows(manager, table.tableName)
    [task] = (
        generator_of(MERGE_ROLLUP, settings, catalog).generate_next_batch(request(table, LEVELS)).subtasks
    )

    def killed(*args: object, **kwargs: object) -> None:
        raise SystemExit("minion killed after the upload, before the swap")

    with monkeypatch.context() as patch:
        patch.setattr(SegmentManager, "finish_replace", killed)
        with pytest.raises(SystemExit):
            execute(MERGE_ROLLUP, settings, catalog, task)
    [entry] = catalog.segments.lineage(table.tableName)
    assert entry.state.value == "IN_PROGRESS" and entry.segments_from == ("seg0", "seg1")
    assert table_rows(manager, table.tableName) == before  # the old set, still
    retried = execute(MERGE_ROLLUP, settings, catalog, task)
    assert retried.counts["segmentsMerged"] == 2 and retried.counts["rowsOut"] == 6
    assert execute(MERGE_ROLLUP, settings, catalog, task).counts == {"segmentsSkipped": 2}  # a duplicate
    [entry] = catalog.segments.lineage(table.tableName)
    assert entry.state.value == "COMPLETED"
    assert table_rows(manager, table.tableName) == before
    assert deep_store_leaks(manager, table.tableName) == set()


def test_periods_and_time_rounding_are_pinots(settings: Settings, catalog: Catalog) -> None:
    # Pinot's periods (TimeUtils.convertPeriodToMillis): compound ones too, units largest first.
    [level] = merge_levels({"x.bucketTimePeriod": "1d12h", "x.bufferTimePeriod": "4h30m"})
    assert (level.bucket_ms, level.buffer_ms) == (36 * HOUR, 4 * HOUR + 30 * 60_000)
    # roundBucketTimePeriod rounds every row's time, whatever the merge type: concat keeps the rows, dedup
    # then drops the rows equal once rounded.
    manager = manager_of(settings, catalog)
    rows = {"a": [row(1, D0 + 10), row(1, D0 + 20)], "b": [row(2, D0 + HOUR + 5), row(2, D0 + HOUR + 7)]}
    expected = {
        "concat": [(1, D0), (1, D0), (2, D0 + HOUR), (2, D0 + HOUR)],
        "dedup": [(1, D0), (2, D0 + HOUR)],
    }
    for merge_type, merged in expected.items():
        table = make_table(catalog, name("rd"))
        for segment, segment_rows in rows.items():
            add(manager, table, segment, segment_rows)
        configs = {
            "1d.bucketTimePeriod": "1d",
            "1d.bufferTimePeriod": "0d",
            "1d.mergeType": merge_type,
            "1d.roundBucketTimePeriod": "1h",
        }
        run = run_plan_directly(MERGE_ROLLUP, settings, catalog, table, configs)
        assert run.batches == 1 and run.total("rowsIn") == 4
        assert sorted((r["id"], r["ts"]) for r in table_rows(manager, table.tableName)) == merged, merge_type


def test_erased_dimensions_are_set_to_their_default_null_value(settings: Settings, catalog: Catalog) -> None:
    manager = manager_of(settings, catalog)
    table = make_table(catalog, name("er"))
    add(manager, table, "a", [row(1, D0 + 10, "US", 1.0), row(1, D0 + 10, "FR", 2.0)])
    add(manager, table, "b", [row(1, D0 + 10, "DE", 4.0)])
    configs = {
        "1d.bucketTimePeriod": "1d",
        "1d.bufferTimePeriod": "0d",
        "1d.mergeType": "rollup",
        "1d.eraseDimensionValues": "country, tags",  # Pinot's key: the rows then roll up into one
    }
    run = run_plan_directly(MERGE_ROLLUP, settings, catalog, table, configs)
    assert run.batches == 1 and (run.total("rowsIn"), run.total("rowsOut")) == (3, 1)
    [merged] = table_rows(manager, table.tableName)
    assert (merged["country"], merged["tags"], merged["amount"]) == ("null", ["null"], 7.0)


BAD_CONFIGS: list[tuple[dict[str, str], str]] = [
    ({}, "at least one merge level"),
    ({"1d.bucketTimePeriod": "1d"}, "1d.bufferTimePeriod is required"),
    ({"1d.bucketTimePeriod": "soon", "1d.bufferTimePeriod": "0d"}, "1d.bucketTimePeriod"),
    ({**LEVELS, "1day.mergeType": "squash"}, "1day.mergeType must be one of concat, rollup, dedup"),
    ({**LEVELS, "amount.aggregationType": "avg"}, "amount.aggregationType must be one of sum, min, max"),
    ({**LEVELS, "country.aggregationType": "sum"}, "'country' is not a metric column"),
    ({**LEVELS, "1day.maxNumParallelBuckets": "0"}, "1day.maxNumParallelBuckets"),
    ({**LEVELS, "1day.bucketTimePerod": "1d"}, "unknown merge level property 'bucketTimePerod'"),
    ({**LEVELS, "3day.bucketTimePeriod": "36h"}, "multiple of 1day.bucketTimePeriod"),
    (
        {**LEVELS, "1day.eraseDimensionValues": "country,city"},
        "1day.eraseDimensionValues: city not in schema",
    ),
]


def test_bad_merge_configs_are_refused(settings: Settings, catalog: Catalog) -> None:
    table = make_table(catalog, name("bad"))
    generator = generator_of(MERGE_ROLLUP, settings, catalog)
    for configs, message in BAD_CONFIGS:
        with pytest.raises(TaskConfigError, match=message):
            generator.validate_task_configs(table, events_schema(table.raw_table_name), configs)
    # Pinot merges APPEND tables only (its generator skips REFRESH ones), the deprecated push type too.
    for extra in (
        {"ingestionConfig": {"batchIngestionConfig": {"segmentIngestionType": "REFRESH"}}},
        {"segmentsConfig": {"segmentPushType": "refresh"}},
    ):
        refresh = make_table(catalog, name("rf"), **extra)
        refused = f"merges APPEND tables only: {refresh.tableName} is a REFRESH table"
        with pytest.raises(TaskConfigError, match=refused):
            generator.generate_next_batch(request(refresh, LEVELS))
