"""A plan's report through REST: its subtasks' counters summed over all of its batches, exact, for a real
FileIngestionTask plan (rows processed, with an error; segments added) and a SegmentPurgeTask plan over its
segments (rows scanned, purged; segments replaced)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.api.test_tables_and_triggers_api import wait_inactive
from tests.data.test_data_plans import create, execute
from tests.support.data import event, write_csv

FILES = [3, 4, 5]  # rows per input file: one segment and (here) one batch each


async def _run(http: httpx.AsyncClient, task_type: str, table: str, **configs: str) -> dict[str, Any]:
    response = await execute(http, task_type, table, tableMaxNumTasks="1", **configs)
    assert response.status_code == 200, response.text
    plan_id = response.json()["taskPlanId"]
    await wait_inactive(http, plan_id)
    plan: dict[str, Any] = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    assert plan["status"] == "COMPLETED", plan
    return plan


async def test_the_report_sums_every_batch_of_an_ingestion_and_a_purge_plan(
    http: httpx.AsyncClient, data_dir: Path
) -> None:
    table = await create(http, f"rep{uuid.uuid4().hex[:8]}")
    directory = data_dir / "input" / f"report-{uuid.uuid4().hex[:8]}"
    first = 0
    for f, count in enumerate(FILES):
        rows = [event(first + i, "US" if i % 2 else "FR") for i in range(count)]
        if f == 0:
            rows.append({**event(99, "FR"), "id": "not-a-number"})  # kept, its id null
        write_csv(directory / f"part{f}.csv", rows)
        first += count
    ingested = await _run(
        http,
        "FileIngestionTask",
        table,
        inputDirURI=str(directory),
        inputFormat="csv",
        maxParseExceptions="5",
    )
    assert ingested["numBatches"] == len(FILES)
    report = ingested["report"]
    total = sum(FILES) + 1
    assert report["rowStats"]["processed"] == total - 1, report  # Druid's: the rows without an error
    assert report["rowStats"]["processedWithError"] == 1 and report["rowStats"]["unparseable"] == 0
    assert report["rowStats"]["thrownAway"] == 0 and report["rowStats"]["processedBytes"] > 0
    assert report["segments"] == {"added": len(FILES), "removed": 0, "replaced": 0, "skipped": 0}
    assert report["subtasksCompleted"] == len(FILES) and report["subtasksFailed"] == 0
    assert report["counters"]["segments"] == len(FILES)

    purged = await _run(
        http, "SegmentPurgeTask", table, purgeFilter="country = 'US'", maxNumSegmentsPerTask="1"
    )
    us = sum(count // 2 for count in FILES)  # odd indexes are US
    report = purged["report"]
    assert purged["numBatches"] == len(FILES)
    assert report["rowStats"]["processed"] == total and report["rowStats"]["thrownAway"] == us, report
    assert report["segments"] == {"added": 0, "removed": 0, "replaced": len(FILES), "skipped": 0}
    assert report["counters"] == {"rowsScanned": total, "rowsPurged": us, "segmentsPurged": len(FILES)}
    page = (await http.get("/ui", params={"plan": purged["planId"]})).text
    assert 'data-testid="report"' in page, page
    assert f'data-testid="report-rowStats-thrownAway">{us}<' in page
    assert f'data-testid="report-segments-replaced">{len(FILES)}<' in page
