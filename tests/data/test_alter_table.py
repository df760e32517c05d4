"""AlterTableTask on real segments, on SQLite and PostgreSQL catalogs, batches run in process
(tests/data/test_new_task_plans.py runs it as a Temporal plan)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskplan.catalog import Catalog
from taskplan.data.merging import file_columns
from taskplan.data.parquet import DuckDBConfig
from taskplan.data.segments import SegmentManager
from taskplan.models.table import Schema, TableConfig
from taskplan.plugin import TaskConfigError
from taskplan.settings import Settings
from taskplan.tasktypes.alter_table import ALTER_TABLE
from taskplan.tasktypes.rewriting import local_sources
from tests.data.test_task_types import execute, generator_of, manager_of, name, request
from tests.support.data import deep_store_leaks, events_schema, make_table, run_plan_directly, table_rows


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.model_validate({"taskplan.dataDir": str(tmp_path)})


def old_schema(raw: str) -> Schema:
    """The events schema with ``id`` an INT (widened to LONG later)."""
    data = events_schema(raw).model_dump(mode="json", exclude_none=True)
    data["dimensionFieldSpecs"][0]["dataType"] = "INT"
    return Schema.model_validate(data)


def new_schema(raw: str) -> Schema:
    """``id`` widened to LONG, ``tags`` removed, ``city`` (STRING) and ``score`` (INT metric, default 7)
    added."""
    data = events_schema(raw).model_dump(mode="json", exclude_none=True)
    data["dimensionFieldSpecs"] = [d for d in data["dimensionFieldSpecs"] if d["name"] != "tags"] + [
        {"name": "city", "dataType": "STRING"}
    ]
    data["metricFieldSpecs"].append({"name": "score", "dataType": "INT", "defaultNullValue": 7})
    return Schema.model_validate(data)


def altered_table(settings: Settings, catalog: Catalog, segments: int) -> tuple[SegmentManager, TableConfig]:
    manager = manager_of(settings, catalog)
    table = make_table(catalog, name("alt"))
    raw = table.raw_table_name
    catalog.put_schema(old_schema(raw))
    for s in range(segments):
        rows: list[dict[str, Any]] = [
            {"id": s * 10 + i, "country": "US", "amount": 1.5, "ts": 1_700_000_000_000 + i, "tags": ["x"]}
            for i in range(3)
        ]
        manager.upload(table, old_schema(raw), rows, f"seg{s}")
    catalog.put_schema(new_schema(raw))
    return manager, table


def test_a_plan_rewrites_every_segment_to_the_current_schema_and_resumes(
    settings: Settings, catalog: Catalog
) -> None:
    manager, table = altered_table(settings, catalog, 3)
    configs = {"tableMaxNumTasks": "2", "maxNumSegmentsPerTask": "1"}
    generator = generator_of(ALTER_TABLE, settings, catalog)
    first = generator.generate_next_batch(request(table, configs))
    assert (first.inputs_in_batch, first.inputs_to_process) == (2, 3)
    for task in first.subtasks:  # one batch, then the plan stops (aborted, failed, a worker gone)
        assert execute(ALTER_TABLE, settings, catalog, task).counts["segmentsRewritten"] == 1

    run = run_plan_directly(ALTER_TABLE, settings, catalog, table, configs)  # the next trigger resumes

    assert run.batches == 1 and run.total("segmentsRewritten") == 1
    rows = table_rows(manager, table.tableName)
    assert len(rows) == 9 and [r["id"] for r in rows] == [0, 1, 2, 10, 11, 12, 20, 21, 22]
    assert all(r["city"] == "null" and r["score"] == 7 and "tags" not in r for r in rows)
    for segment in catalog.segments.visible_segments(table.tableName):
        with local_sources(manager, [segment]) as [path], DuckDBConfig().connect(path.parent) as conn:
            columns = file_columns(conn, path)
            assert columns == {
                "id": "BIGINT", "country": "VARCHAR", "city": "VARCHAR", "amount": "DOUBLE",
                "score": "INTEGER", "ts": "BIGINT",
            }  # fmt: skip
    assert deep_store_leaks(manager, table.tableName) == set()
    assert run_plan_directly(ALTER_TABLE, settings, catalog, table, configs).batches == 0  # nothing left
    # A config change (a sorted column) makes every segment pending again.
    catalog.update_table(table.model_copy(update={"tableIndexConfig": {"sortedColumn": ["country"]}}))
    # At the defaults the three small segments go in one subtask (sized by rows), each its own swap.
    resorted = run_plan_directly(ALTER_TABLE, settings, catalog, table, {})
    assert resorted.batches == 1 and [r.counts for r in resorted.results] == [
        {"segmentsRewritten": 3, "rowsRewritten": 9}
    ]
    assert len(catalog.segments.lineage(table.tableName)) == 6  # 3 + 3 replacements, one a segment
    assert len(table_rows(manager, table.tableName)) == 9


def test_an_alter_killed_between_upload_and_swap_is_finished_by_its_retry(
    settings: Settings, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, table = altered_table(settings, catalog, 1)
    [task] = generator_of(ALTER_TABLE, settings, catalog).generate_next_batch(request(table, {})).subtasks

    def killed(*args: object, **kwargs: object) -> None:
        raise SystemExit("minion killed after the upload, before the swap")

    with monkeypatch.context() as patch:
        patch.setattr(SegmentManager, "finish_replace", killed)
        with pytest.raises(SystemExit):
            execute(ALTER_TABLE, settings, catalog, task)
    assert [s.segment_name for s in catalog.segments.visible_segments(table.tableName)] == ["seg0"]
    assert execute(ALTER_TABLE, settings, catalog, task).counts == {
        "segmentsRewritten": 1,
        "rowsRewritten": 3,
    }
    assert execute(ALTER_TABLE, settings, catalog, task).counts == {"segmentsSkipped": 1}  # a duplicate
    [entry] = catalog.segments.lineage(table.tableName)
    assert entry.state.value == "COMPLETED" and entry.segments_from == ("seg0",)
    assert [r["score"] for r in table_rows(manager, table.tableName)] == [7, 7, 7]
    assert deep_store_leaks(manager, table.tableName) == set()


def test_it_refuses_the_legacy_flow_and_bad_configs(settings: Settings, catalog: Catalog) -> None:
    _, table = altered_table(settings, catalog, 1)
    generator = generator_of(ALTER_TABLE, settings, catalog)
    assert generator.orchestration_only and generator.supports_orchestration
    with pytest.raises(TaskConfigError, match="does not implement one-shot generation"):
        generator.generate_adhoc_tasks(table, {})
    bad = table.model_copy(update={"tableIndexConfig": {"sortedColumn": ["nope"]}})
    with pytest.raises(TaskConfigError, match="sortedColumn names columns not in the schema"):
        generator.validate_task_configs(bad, new_schema(table.raw_table_name), {})
