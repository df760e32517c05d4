"""MergeRollupTask, RealtimeToOfflineSegmentsTask and AlterTableTask as real Temporal task plans (and
one-shot batches), driven through the REST API on data ingested with ingestFromFile."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from taskplan.catalog import Catalog
from tests.api.test_tables_and_triggers_api import wait_inactive
from tests.data.test_data_plans import create, csv_bytes, execute, ingest, manager, segments
from tests.support.data import event, events_schema, table_rows
from tests.support.engine import eventually

DAY = 86_400_000
D0 = (1_700_000_000_000 // DAY) * DAY


def on_day(i: int, day: int) -> dict[str, Any]:
    return event(i, ts=D0 + day * DAY)


async def completed_plan(http: httpx.AsyncClient, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    plan_id = response.json()["taskPlanId"]
    await wait_inactive(http, plan_id)
    plan: dict[str, Any] = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    assert plan["status"] == "COMPLETED", plan
    return plan


async def test_merge_rollup_one_shot_then_as_a_plan(
    http: httpx.AsyncClient, tables: Catalog, data_dir: Path, tmp_path: Path
) -> None:
    table = await create(http, f"mrp{uuid.uuid4().hex[:8]}")
    for s, day in enumerate([0, 0, 1, 1, 2]):
        await ingest(http, table, csv_bytes([on_day(s * 10 + i, day) for i in range(4)], tmp_path))
    level = {"1day.bucketTimePeriod": "1d", "1day.bufferTimePeriod": "1d"}
    bad = await execute(http, "MergeRollupTask", table, **level, **{"1day.mergeType": "squash"})
    assert bad.status_code == 400 and "1day.mergeType must be one of" in bad.json()["error"]

    legacy = await execute(http, "MergeRollupTask", table, enableTaskOrchestration="false", **level)
    assert legacy.status_code == 200, legacy.text
    [task_name] = legacy.json().values()

    async def legacy_done() -> None:
        state = (await http.get(f"/tasks/task/{task_name}/state")).json()
        assert state == "COMPLETED", state

    await eventually(legacy_done, timeout=60)
    assert len(await segments(http, table)) == 4  # day 0 merged: 2 segments became 1

    plan = await completed_plan(http, await execute(http, "MergeRollupTask", table, **level))
    assert plan["numBatches"] == 2 and plan["inputUnit"] == "buckets"  # days 1 and 2
    merged = await segments(http, table)
    assert len(merged) == 3 and sum(int(s["segment.total.docs"]) for s in merged) == 20
    assert len({r["id"] for r in table_rows(manager(tables, data_dir), table)}) == 20


async def test_realtime_to_offline_plan_catches_up_every_window(
    http: httpx.AsyncClient, tables: Catalog, data_dir: Path, tmp_path: Path
) -> None:
    raw = f"rtp{uuid.uuid4().hex[:8]}"
    stream = {"realtime.segment.flush.threshold.rows": "2"}
    realtime = await create(http, raw, "REALTIME", tableIndexConfig={"streamConfigs": stream})
    offline = await create(http, raw)
    for day in (0, 1, 3):
        await ingest(http, realtime, csv_bytes([on_day(day * 10, day), on_day(day * 10 + 1, day)], tmp_path))
    configs = {"bucketTimePeriod": "1d", "bufferTimePeriod": "1d"}
    one_shot = await execute(
        http, "RealtimeToOfflineSegmentsTask", realtime, enableTaskOrchestration="false", **configs
    )
    assert one_shot.status_code == 200, one_shot.text
    [task_name] = one_shot.json().values()

    async def one_shot_done() -> None:
        state = (await http.get(f"/tasks/task/{task_name}/state")).json()
        assert state == "COMPLETED", state

    await eventually(one_shot_done, timeout=60)
    assert len(await segments(http, offline)) == 1  # one-shot: the first window, day 0
    plan = await completed_plan(
        http, await execute(http, "RealtimeToOfflineSegmentsTask", realtime, **configs)
    )
    assert plan["numBatches"] == 2 and plan["inputUnit"] == "windows"  # days 1, 3 (2 has no segment)
    moved = await segments(http, offline)
    assert len(moved) == 3 and sum(int(s["segment.total.docs"]) for s in moved) == 6
    metadata = tables.segments.task_metadata(realtime, "RealtimeToOfflineSegmentsTask")
    assert metadata == {"watermarkMs": D0 + 4 * DAY}
    again = await completed_plan(
        http, await execute(http, "RealtimeToOfflineSegmentsTask", realtime, **configs)
    )
    assert again["numBatches"] == 0 and len(await segments(http, offline)) == 3


async def test_alter_table_plan_rewrites_every_segment_and_refuses_the_legacy_flow(
    http: httpx.AsyncClient, tables: Catalog, data_dir: Path, tmp_path: Path
) -> None:
    raw = f"atp{uuid.uuid4().hex[:8]}"
    table = await create(http, raw)
    for s in range(3):
        await ingest(http, table, csv_bytes([event(s * 10 + i) for i in range(2)], tmp_path))
    schema = events_schema(raw).model_dump(mode="json", exclude_none=True)
    schema["metricFieldSpecs"].append({"name": "score", "dataType": "LONG", "defaultNullValue": 3})
    assert (await http.post("/schemas", json=schema)).status_code == 200

    legacy = await execute(http, "AlterTableTask", table, enableTaskOrchestration="false")
    assert legacy.status_code == 400 and "only runs as an orchestrated task plan" in legacy.json()["error"]
    alter = await execute(http, "AlterTableTask", table, tableMaxNumTasks="2", maxNumSegmentsPerTask="1")
    plan = await completed_plan(http, alter)
    assert plan["numBatches"] == 2 and plan["inputsToProcess"] == 3
    rows = table_rows(manager(tables, data_dir), table)
    assert len(rows) == 6 and {r["score"] for r in rows} == {3}
