"""The data task types doing real work on real files, on SQLite and PostgreSQL catalogs.

One module past 400 lines: one section per task type, sharing the in-process plan loop and crash points.

Batches are generated and executed in process here (the plan workflow's loop without Temporal), so crash
points can be placed exactly; tests/data/test_data_plans.py runs the same task types as Temporal plans.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest

from taskplan.catalog import Catalog
from taskplan.data.deepstore import DeepStore
from taskplan.data.parquet import DuckDBConfig, read_rows
from taskplan.data.segments import SegmentManager
from taskplan.models.table import TableConfig
from taskplan.plugin import (
    BatchRequest,
    ExecutionContext,
    FatalTaskError,
    PinotTaskConfig,
    PluginContext,
    TaskConfigError,
    TaskTypePlugin,
)
from taskplan.settings import Settings
from taskplan.tasktypes.data_export import DATA_EXPORT
from taskplan.tasktypes.file_ingestion import FILE_INGESTION, SEGMENT_GENERATION_AND_PUSH
from taskplan.tasktypes.segment_purge import SEGMENT_PURGE
from tests.support.data import (
    deep_store_leaks,
    event,
    events_schema,
    make_table,
    run_plan_directly,
    table_rows,
    write_csv,
    write_jsonl,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    for sub in ("input", "export"):
        (tmp_path / sub).mkdir()
    return Settings.model_validate({"taskplan.dataDir": str(tmp_path)})


def manager_of(settings: Settings, catalog: Catalog) -> SegmentManager:
    return SegmentManager.from_settings(settings, catalog)


def name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def generator_of(plugin: TaskTypePlugin, settings: Settings, catalog: Catalog) -> Any:
    generator = plugin.generator()
    generator.init(PluginContext(settings=settings, catalog=catalog, duckdb_config=DuckDBConfig()))
    return generator


def execute(plugin: TaskTypePlugin, settings: Settings, catalog: Catalog, task: PinotTaskConfig) -> Any:
    context = ExecutionContext(
        subtask_name="t", attempt=1, plugin=PluginContext(settings, catalog, DuckDBConfig())
    )
    return plugin.executor().execute(task, context)


def request(
    table: TableConfig, configs: Mapping[str, str], sequence: int = 0, plan: str = "p1"
) -> BatchRequest:
    return BatchRequest(plan, table, configs, sequence, {}, 0, None)


# ---------------------------------------------------------------- SegmentPurgeTask


def test_purge_removes_exactly_the_matching_rows(settings: Settings, catalog: Catalog) -> None:
    manager = manager_of(settings, catalog)
    table = make_table(catalog, name("purge"))
    schema = events_schema(table.raw_table_name)
    countries = ["US", "FR", None, "US"]
    for s in range(5):
        rows = [event(s * 10 + i, country=countries[i % 4]) for i in range(8)]  # type: ignore[arg-type]
        manager.upload(table, schema, rows, f"seg{s}")
    before = table_rows(manager, table.tableName)
    configs = {"purgeFilter": "country = 'US'", "tableMaxNumTasks": "2", "maxNumRecordsPerTask": "8"}

    run = run_plan_directly(SEGMENT_PURGE, settings, catalog, table, configs)

    assert run.batches == 3  # 5 segments of 8 rows, one a subtask, 2 subtasks a batch
    after = table_rows(manager, table.tableName)
    assert after == [r for r in before if r["country"] != "US"]  # NULL countries are kept
    assert run.total("rowsScanned") == 40 and run.total("rowsPurged") == 20
    assert deep_store_leaks(manager, table.tableName) == set()
    # Every segment is marked: a second plan with the same filter has nothing to do.
    assert run_plan_directly(SEGMENT_PURGE, settings, catalog, table, configs).batches == 0


def test_a_duplicated_or_retried_purge_subtask_changes_nothing(settings: Settings, catalog: Catalog) -> None:
    manager = manager_of(settings, catalog)
    table = make_table(catalog, name("dup"))
    manager.upload(
        table,
        events_schema(table.raw_table_name),
        [event(i, "US" if i % 2 else "FR") for i in range(6)],
        "s0",
    )
    generator = generator_of(SEGMENT_PURGE, settings, catalog)
    [task] = generator.generate_next_batch(request(table, {"purgeFilter": "country = 'US'"})).subtasks
    first = execute(SEGMENT_PURGE, settings, catalog, task)
    again = execute(SEGMENT_PURGE, settings, catalog, task)  # a duplicate, or a retry after a lost worker
    assert first.counts["rowsPurged"] == 3 and again.counts.get("segmentsSkipped") == 1
    assert [r["id"] for r in table_rows(manager, table.tableName)] == [0, 2, 4]


def table_of_small_segments(
    settings: Settings, catalog: Catalog, prefix: str, segments: int
) -> tuple[SegmentManager, TableConfig]:
    """A table of segments seg0, seg1, ... of 4 rows each, half of them US."""
    manager = manager_of(settings, catalog)
    table = make_table(catalog, name(prefix))
    schema = events_schema(table.raw_table_name)
    for s in range(segments):
        rows = [event(s * 10 + i, "US" if i % 2 else "FR") for i in range(4)]
        manager.upload(table, schema, rows, f"seg{s}")
    return manager, table


def test_purge_subtasks_can_carry_several_segments(settings: Settings, catalog: Catalog) -> None:
    """maxNumSegmentsPerTask packs small segments into one subtask (one orchestration round trip each)."""
    manager, table = table_of_small_segments(settings, catalog, "pack", 7)
    schema = events_schema(table.raw_table_name)
    configs = {"purgeFilter": "country = 'US'", "tableMaxNumTasks": "2", "maxNumSegmentsPerTask": "3"}
    generator = generator_of(SEGMENT_PURGE, settings, catalog)
    first = generator.generate_next_batch(request(table, configs))
    assert [t.configs["segmentName"] for t in first.subtasks] == ["seg0,seg1,seg2", "seg3,seg4,seg5"]
    assert (first.inputs_in_batch, first.inputs_to_process) == (6, 7)

    # A subtask cut short after its first segment swaps nothing in; its retry purges all three at once.
    cancelled = ExecutionContext(
        subtask_name="t", attempt=1, plugin=PluginContext(settings, catalog, DuckDBConfig())
    )
    heartbeats: list[object] = []

    def heartbeat_then_cancel(*details: object) -> None:
        heartbeats.append(details)
        cancelled.cancelled.set()

    cancelled._heartbeat = heartbeat_then_cancel
    partial = SEGMENT_PURGE.executor().execute(first.subtasks[0], cancelled)
    assert partial.counts == {"rowsScanned": 0, "rowsPurged": 0}
    assert heartbeats == [({"segmentsRewritten": 1, "segments": 3},)]
    assert (
        len(table_rows(manager, table.tableName)) == 28
        and deep_store_leaks(manager, table.tableName) == set()
    )
    retried = execute(SEGMENT_PURGE, settings, catalog, first.subtasks[0])
    assert retried.counts == {"rowsScanned": 12, "rowsPurged": 6, "segmentsPurged": 3}
    [lineage] = catalog.segments.lineage(table.tableName)  # one replacement for the subtask's segments
    assert lineage.segments_from == ("seg0", "seg1", "seg2")
    again = execute(SEGMENT_PURGE, settings, catalog, first.subtasks[0])
    assert again.counts == {"rowsScanned": 0, "rowsPurged": 0, "segmentsSkipped": 3}

    # Another replacement holds seg4: the others are purged one by one, seg4 is left for a later batch.
    catalog.segments.start_replace(table.tableName, ["seg4"], [], lineage_id="other")
    held = execute(SEGMENT_PURGE, settings, catalog, first.subtasks[1])
    assert held.counts == {"rowsScanned": 8, "rowsPurged": 4, "segmentsPurged": 2, "segmentsSkipped": 1}
    catalog.segments.revert_replace(table.tableName, "other")

    run = run_plan_directly(SEGMENT_PURGE, settings, catalog, table, configs)
    assert run.batches == 1  # seg4 and seg6 in one subtask
    assert run.total("segmentsPurged") == 2 and run.total("rowsPurged") == 4
    assert {r["country"] for r in table_rows(manager, table.tableName)} == {"FR"}
    assert len(table_rows(manager, table.tableName)) == 14
    assert deep_store_leaks(manager, table.tableName) == set()
    for bad in ("0", "1001", "x"):
        with pytest.raises(TaskConfigError, match="maxNumSegmentsPerTask"):
            generator.validate_task_configs(table, schema, {**configs, "maxNumSegmentsPerTask": bad})


def test_a_packed_purge_killed_between_its_publications_is_finished_by_its_retry(
    settings: Settings, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies after the replacement was opened and one purged copy published: nothing is visible
    yet, and the retry (same lineage) publishes the rest and swaps all three in."""
    manager, table = table_of_small_segments(settings, catalog, "crash", 3)
    before = table_rows(manager, table.tableName)
    configs = {"purgeFilter": "country = 'US'", "maxNumSegmentsPerTask": "3"}
    [task] = (
        generator_of(SEGMENT_PURGE, settings, catalog).generate_next_batch(request(table, configs)).subtasks
    )
    publish = DeepStore.publish
    published: list[str] = []

    def publish_once_then_die(self: DeepStore, staged: Path, table_name: str, file_name: str) -> None:
        if published:
            raise SystemExit("minion killed")
        published.append(file_name)
        publish(self, staged, table_name, file_name)

    monkeypatch.setattr(DeepStore, "publish", publish_once_then_die)
    with pytest.raises(SystemExit):
        execute(SEGMENT_PURGE, settings, catalog, task)
    assert table_rows(manager, table.tableName) == before  # the old set is still the visible one
    [lineage] = catalog.segments.lineage(table.tableName)
    assert lineage.state == "IN_PROGRESS" and len(lineage.segments_to) == 3
    monkeypatch.setattr(DeepStore, "publish", publish)

    retried = execute(SEGMENT_PURGE, settings, catalog, task)
    assert retried.counts == {"rowsScanned": 12, "rowsPurged": 6, "segmentsPurged": 3}
    assert table_rows(manager, table.tableName) == [r for r in before if r["country"] != "US"]
    [lineage] = catalog.segments.lineage(table.tableName)
    assert lineage.state == "COMPLETED"
    assert deep_store_leaks(manager, table.tableName) == set()


@pytest.mark.parametrize(
    "bad",
    ["country = 'US'; DELETE FROM tp_tables", "country = (SELECT 'US')", "1=1) OR (1=1", "nosuch = 1", ""],
)
def test_purge_filters_are_checked_when_triggered(settings: Settings, catalog: Catalog, bad: str) -> None:
    table = make_table(catalog, name("inj"))
    generator = generator_of(SEGMENT_PURGE, settings, catalog)
    with pytest.raises(TaskConfigError, match="purgeFilter"):
        generator.validate_task_configs(table, events_schema(table.raw_table_name), {"purgeFilter": bad})


# ---------------------------------------------------------------- FileIngestionTask


def ingest_configs(directory: Path, **extra: str) -> dict[str, str]:
    return {"inputDirURI": directory.as_uri(), "inputFormat": "csv", "tableMaxNumTasks": "2", **extra}


def test_append_ingests_each_file_exactly_once_across_plans(settings: Settings, catalog: Catalog) -> None:
    manager = manager_of(settings, catalog)
    table = make_table(catalog, name("append"))
    directory = settings.allowed_input_roots[0] / table.raw_table_name
    for f in range(3):
        write_csv(directory / f"part{f}.csv", [event(f * 10 + i) for i in range(4)])
    write_csv(directory / "notes.txt", [event(99)])  # excluded by the pattern
    configs = ingest_configs(directory, includeFileNamePattern="glob:**/*.csv")

    run = run_plan_directly(FILE_INGESTION, settings, catalog, table, configs)
    assert run.batches == 2 and run.total("processed") == 12
    assert [r["id"] for r in table_rows(manager, table.tableName)] == [
        0,
        1,
        2,
        3,
        10,
        11,
        12,
        13,
        20,
        21,
        22,
        23,
    ]

    assert run_plan_directly(FILE_INGESTION, settings, catalog, table, configs).batches == 0
    write_csv(directory / "part3.csv", [event(30)])
    later = run_plan_directly(FILE_INGESTION, settings, catalog, table, configs)
    assert later.batches == 1 and later.total("processed") == 1
    assert len(table_rows(manager, table.tableName)) == 13

    # A subtask that ran twice (its worker died after the upload) ingests nothing the second time.
    generator = generator_of(FILE_INGESTION, settings, catalog)
    write_csv(directory / "part4.csv", [event(40), event(41)])
    [task] = generator.generate_next_batch(request(table, configs)).subtasks
    execute(FILE_INGESTION, settings, catalog, task)
    assert execute(FILE_INGESTION, settings, catalog, task).counts == {"filesSkipped": 1}
    assert len(table_rows(manager, table.tableName)) == 15
    assert deep_store_leaks(manager, table.tableName) == set()


def test_sync_mirrors_the_directory(settings: Settings, catalog: Catalog) -> None:
    manager = manager_of(settings, catalog)
    table = make_table(catalog, name("sync"))
    directory = settings.allowed_input_roots[0] / table.raw_table_name
    write_csv(directory / "a.csv", [event(1)])
    write_csv(directory / "b.csv", [event(2)])
    write_csv(directory / "c.csv", [event(3)])
    configs = ingest_configs(directory, ingestionMode="SYNC")
    run_plan_directly(FILE_INGESTION, settings, catalog, table, configs)
    assert [r["id"] for r in table_rows(manager, table.tableName)] == [1, 2, 3]

    write_csv(directory / "a.csv", [event(1, "FR"), event(11)])  # changed
    os.utime(directory / "a.csv", ns=(1, 2_000_000_000_000_000_000))
    (directory / "b.csv").unlink()  # removed
    write_csv(directory / "d.csv", [event(4)])  # new
    run = run_plan_directly(FILE_INGESTION, settings, catalog, table, configs)
    rows = table_rows(manager, table.tableName)
    assert [(r["id"], r["country"]) for r in rows] == [(1, "FR"), (3, "US"), (4, "US"), (11, "US")]
    assert run.custom_stats.get("segmentsDropped") == "1"
    assert deep_store_leaks(manager, table.tableName) == set()


def test_consistent_push_publishes_the_whole_change_at_the_end(settings: Settings, catalog: Catalog) -> None:
    manager = manager_of(settings, catalog)
    refresh = {"batchIngestionConfig": {"segmentIngestionType": "REFRESH", "consistentDataPush": True}}
    table = make_table(catalog, name("consistent"), ingestionConfig=refresh)
    directory = settings.allowed_input_roots[0] / table.raw_table_name
    for f in range(3):
        write_csv(directory / f"f{f}.csv", [event(f)])
    configs = ingest_configs(directory, ingestionMode="SYNC", tableMaxNumTasks="1")
    generator = generator_of(FILE_INGESTION, settings, catalog)
    first = generator.generate_next_batch(request(table, configs))
    execute(FILE_INGESTION, settings, catalog, first.subtasks[0])
    assert table_rows(manager, table.tableName) == []  # nothing visible mid-plan
    run_plan_directly(FILE_INGESTION, settings, catalog, table, configs, plan_id="p1")
    assert [r["id"] for r in table_rows(manager, table.tableName)] == [0, 1, 2]


def test_full_swap_replaces_everything_once_even_when_retried(settings: Settings, catalog: Catalog) -> None:
    manager = manager_of(settings, catalog)
    table = make_table(catalog, name("swap"))
    old_dir = settings.allowed_input_roots[0] / f"{table.raw_table_name}_old"
    write_csv(old_dir / "old.csv", [event(1), event(2)])
    run_plan_directly(FILE_INGESTION, settings, catalog, table, ingest_configs(old_dir))
    new_dir = settings.allowed_input_roots[0] / f"{table.raw_table_name}_new"
    for f in range(3):
        write_csv(new_dir / f"n{f}.csv", [event(100 + f)])
    configs = ingest_configs(new_dir, ingestionMode="FULL_SWAP", tableMaxNumTasks="2")
    generator = generator_of(FILE_INGESTION, settings, catalog)

    batch = generator.generate_next_batch(request(table, configs, plan="swap-plan"))
    assert len(batch.subtasks) == 2
    for task in batch.subtasks:
        execute(FILE_INGESTION, settings, catalog, task)
        execute(FILE_INGESTION, settings, catalog, task)  # the worker died after the upload: retried
    assert [r["id"] for r in table_rows(manager, table.tableName)] == [1, 2]  # old set until the swap
    second = generator.generate_next_batch(request(table, configs, 1, plan="swap-plan"))
    [last] = second.subtasks
    execute(FILE_INGESTION, settings, catalog, last)
    done = generator.generate_next_batch(request(table, configs, 2, plan="swap-plan"))
    assert done.no_more_work and done.custom_stats["segmentsReplaced"] == "1"
    again = generator.generate_next_batch(request(table, configs, 2, plan="swap-plan"))  # the swap retried
    assert again.no_more_work
    assert [r["id"] for r in table_rows(manager, table.tableName)] == [100, 101, 102]
    assert deep_store_leaks(manager, table.tableName) == set()
    assert len(manager.store.all_segments(table.tableName)) == 3


def test_bad_rows_are_counted_and_a_limit_fails_the_subtask(settings: Settings, catalog: Catalog) -> None:
    table = make_table(catalog, name("bad"))
    directory = settings.allowed_input_roots[0] / table.raw_table_name
    write_jsonl(directory / "rows.json", [event(1), {"id": "x"}, event(2)])
    with (directory / "rows.json").open("a") as f:
        f.write("{not json\n")
    configs = {"inputDirURI": str(directory), "inputFormat": "json"}
    run = run_plan_directly(FILE_INGESTION, settings, catalog, table, configs)
    [result] = run.results
    assert {k: result.counts[k] for k in ("processed", "processedWithError", "unparseable")} == {
        "processed": 2, "processedWithError": 1, "unparseable": 1,
    }  # fmt: skip
    assert len(result.samples) == 2

    strict = make_table(catalog, name("strict"))
    generator = generator_of(FILE_INGESTION, settings, catalog)
    [task] = generator.generate_next_batch(request(strict, {**configs, "maxParseExceptions": "1"})).subtasks
    with pytest.raises(FatalTaskError, match="more than 1 parse exceptions"):
        execute(FILE_INGESTION, settings, catalog, task)


def test_unreadable_files_fail_or_are_skipped(settings: Settings, catalog: Catalog) -> None:
    table = make_table(catalog, name("unreadable"))
    directory = settings.allowed_input_roots[0] / table.raw_table_name
    directory.mkdir()
    (directory / "x.parquet").write_bytes(b"garbage")
    configs = {"inputDirURI": str(directory), "inputFormat": "parquet"}
    generator = generator_of(FILE_INGESTION, settings, catalog)
    [task] = generator.generate_next_batch(request(table, configs)).subtasks
    with pytest.raises(FatalTaskError, match="skipFileIfFailToInitReader"):
        execute(FILE_INGESTION, settings, catalog, task)
    run = run_plan_directly(
        FILE_INGESTION, settings, catalog, table, {**configs, "skipFileIfFailToInitReader": "true"}
    )
    assert run.batches == 1 and run.total("filesSkipped") == 1


def test_input_outside_the_allowed_roots_is_refused(
    settings: Settings, catalog: Catalog, tmp_path: Path
) -> None:
    table = make_table(catalog, name("roots"))
    generator = generator_of(FILE_INGESTION, settings, catalog)
    schema = events_schema(table.raw_table_name)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    escape = settings.allowed_input_roots[0] / "link"
    escape.symlink_to(outside)
    for bad in (str(outside), outside.as_uri(), str(settings.allowed_input_roots[0] / ".." / "elsewhere"),
                str(escape), "/etc", "s3://bucket/x", "relative/dir"):  # fmt: skip
        with pytest.raises(TaskConfigError, match="inputDirURI"):
            generator.validate_task_configs(table, schema, {"inputDirURI": bad, "inputFormat": "csv"})


def test_segment_generation_and_push_is_a_one_shot_alias(settings: Settings, catalog: Catalog) -> None:
    manager = manager_of(settings, catalog)
    table = make_table(catalog, name("sgp"))
    directory = settings.allowed_input_roots[0] / table.raw_table_name
    write_csv(directory / "a.csv", [event(1), event(2)])
    generator = generator_of(SEGMENT_GENERATION_AND_PUSH, settings, catalog)
    assert generator.supports_orchestration is False
    tasks = generator.generate_adhoc_tasks(table, ingest_configs(directory))
    for task in tasks:
        execute(SEGMENT_GENERATION_AND_PUSH, settings, catalog, task)
    assert len(table_rows(manager, table.tableName)) == 2
    with pytest.raises(TaskConfigError, match="task plan"):
        generator.generate_adhoc_tasks(table, ingest_configs(directory, ingestionMode="FULL_SWAP"))


# ---------------------------------------------------------------- DataExportTask


def realtime_table(catalog: Catalog, raw: str) -> TableConfig:
    stream = {"realtime.segment.flush.threshold.rows": "3"}
    return make_table(catalog, raw, "REALTIME", tableIndexConfig={"streamConfigs": stream})


def test_export_to_a_directory_takes_segments_committed_mid_plan(
    settings: Settings, catalog: Catalog
) -> None:
    manager = manager_of(settings, catalog)
    table = realtime_table(catalog, name("clicks"))
    schema = events_schema(table.raw_table_name)
    manager.append_realtime(table, schema, [event(i) for i in range(3)])  # committed: 3 rows
    manager.append_realtime(table, schema, [event(i) for i in range(3, 6)])  # committed
    manager.append_realtime(table, schema, [event(6)])  # consuming: not exported
    target = settings.allowed_export_roots[0] / "clicks"
    configs = {"externalTable.target": str(target), "bufferTimePeriod": "0s", "tableMaxNumTasks": "1"}
    generator = generator_of(DATA_EXPORT, settings, catalog)

    first = generator.generate_next_batch(request(table, configs))
    assert len(first.subtasks) == 1 and first.inputs_to_process == 2
    execute(DATA_EXPORT, settings, catalog, first.subtasks[0])
    manager.append_realtime(table, schema, [event(7), event(8)])  # commits a third segment mid-plan
    run = run_plan_directly(DATA_EXPORT, settings, catalog, table, configs)
    assert run.batches == 2  # the second committed segment, then the one committed mid-plan
    files = sorted((target / table.tableName).glob("*.parquet"))
    assert len(files) == 3
    exported = sorted(r["id"] for f in files for r in read_rows(f, DuckDBConfig()))
    assert exported == list(range(9))
    assert run_plan_directly(DATA_EXPORT, settings, catalog, table, configs).batches == 0
    again = execute(DATA_EXPORT, settings, catalog, first.subtasks[0])
    assert again.counts == {"segmentsSkipped": 1}


def test_export_to_postgresql_is_exactly_once(
    settings: Settings, catalog: Catalog, postgres_url: str
) -> None:
    manager = manager_of(settings, catalog)
    table = realtime_table(catalog, name("views"))
    schema = events_schema(table.raw_table_name)
    for start in (0, 3):
        manager.append_realtime(table, schema, [event(i) for i in range(start, start + 3)])
    target_table = name("export_")
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    configs = {"externalTable.target": url, "externalTable.tableName": target_table, "bufferTimePeriod": "0s"}
    generator = generator_of(DATA_EXPORT, settings, catalog)
    tasks = generator.generate_next_batch(request(table, configs)).subtasks
    assert len(tasks) == 2
    execute(DATA_EXPORT, settings, catalog, tasks[0])
    # The catalog lost the record (a crash after the PostgreSQL commit): the retry must not insert again.
    with catalog.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM tp_exported_segments")
    execute(DATA_EXPORT, settings, catalog, tasks[0])
    execute(DATA_EXPORT, settings, catalog, tasks[1])
    with psycopg.connect(url) as conn:
        ids = sorted(r[0] for r in conn.execute(f'SELECT id FROM "{target_table}"').fetchall())
        tags = conn.execute(f'SELECT tags FROM "{target_table}" LIMIT 1').fetchone()
    assert ids == list(range(6))
    assert tags == (["a", "b"],)


def test_export_waits_for_the_buffer_period_and_needs_a_realtime_table(
    settings: Settings, catalog: Catalog
) -> None:
    manager = manager_of(settings, catalog)
    table = realtime_table(catalog, name("fresh"))
    manager.append_realtime(table, events_schema(table.raw_table_name), [event(i) for i in range(3)])
    target = str(settings.allowed_export_roots[0] / "fresh")
    generator = generator_of(DATA_EXPORT, settings, catalog)
    held = generator.generate_next_batch(
        request(table, {"externalTable.target": target, "bufferTimePeriod": "1h"})
    )
    assert held.no_more_work and not held.subtasks
    offline = make_table(catalog, name("off"))
    with pytest.raises(TaskConfigError, match="REALTIME"):
        generator.validate_task_configs(offline, None, {"externalTable.target": target})
    with pytest.raises(TaskConfigError, match="outside the allowed directories"):
        generator.validate_task_configs(table, None, {"externalTable.target": "/tmp/elsewhere"})
    with pytest.raises(TaskConfigError, match="bufferTimePeriod"):
        generator.validate_task_configs(
            table, None, {"externalTable.target": target, "bufferTimePeriod": "soon"}
        )
