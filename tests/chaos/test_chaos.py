"""Fault injection on a real cluster (every part its own process) while plans run over real tables.

`make test` runs it with CHAOS_TRIALS=2 minion kills; `make chaos` with 20. After each fault the data is
checked: the right terminal state, purged rows exactly, each ingested file's rows once, one full swap,
each segment exported once, no lineage entry left IN_PROGRESS, no file the sweep has to remove but cannot.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx

from taskplan.data.parquet import DuckDBConfig, read_rows
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import LineageState
from tests.chaos.cluster import Cluster
from tests.support.data import events_schema

TRIALS = int(os.environ.get("CHAOS_TRIALS", "2"))
ROWS_PER_FILE = 150_000


def write_events(path: Path, start: int, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as conn:
        conn.execute(
            f"COPY (SELECT i AS id, CASE WHEN i % 4 = 0 THEN 'US' ELSE 'FR' END AS country, 1.5 AS amount, "
            f"1700000000000 + i AS ts, 'a' AS tags FROM range({start}, {start + rows}) t(i)) "
            f"TO '{path}' (FORMAT csv, HEADER)"
        )


async def call(http: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    """Retry through API restarts; fail on a 4xx/5xx answer."""
    for _ in range(120):
        try:
            response = await http.request(method, path, **kwargs)
        except httpx.TransportError:
            await asyncio.sleep(0.5)
            continue
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()
    raise AssertionError(f"{method} {path}: the API did not come back")


async def execute(http: httpx.AsyncClient, task_type: str, table: str, **configs: str) -> str:
    body = {
        "taskType": task_type,
        "tableName": table,
        "taskConfigs": {"enableTaskOrchestration": "true", **configs},
    }
    return str((await call(http, "POST", "/tasks/execute", json=body))["taskPlanId"])


async def wait_batch(http: httpx.AsyncClient, plan_id: str, sequence: int) -> bool:
    """Until batch `sequence` runs; False if the plan ended first."""
    for _ in range(600):
        plan = await call(http, "GET", f"/tasks/taskPlans/{plan_id}", params={"batchLimit": 5})
        if plan["status"] not in ("ACTIVE", "ABORTING"):
            return False
        batches = plan["batches"]
        if batches and batches[-1]["batchSequence"] >= sequence and batches[-1]["taskState"] == "IN_PROGRESS":
            return True
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {sequence} of {plan_id} never ran")


async def finish(http: httpx.AsyncClient, plan_id: str) -> dict[str, Any]:
    """The plan once it ended (waitForTerminalSeconds), through API restarts."""
    for _ in range(120):
        try:
            response = await http.get(
                f"/tasks/taskPlans/{plan_id}", params={"waitForTerminalSeconds": 10, "batchLimit": 0}
            )
        except httpx.TransportError:
            await asyncio.sleep(0.5)
            continue
        if response.status_code == 408:
            continue
        assert response.status_code == 200, response.text
        plan: dict[str, Any] = response.json()
        return plan
    raise AssertionError(f"{plan_id} did not end")


async def handbacks(http: httpx.AsyncClient, plan_id: str) -> int:
    """Subtasks handed to another minion because theirs died (kills that landed mid-subtask)."""
    plan = await call(http, "GET", f"/tasks/taskPlans/{plan_id}", params={"batchLimit": 1000})
    total = 0
    for batch in plan["batches"]:
        subtasks = await call(http, "GET", f"/tasks/task/{batch['submittedTaskName']}/subtasks")
        total += sum(s.get("lostWorkerRetries", 0) for s in subtasks["subtasks"])
    return total


def ids(manager: SegmentManager, table: str) -> list[int]:
    return sorted(r["id"] for s in manager.store.visible_segments(table) for r in manager.read(s))


async def test_faults_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    await asyncio.to_thread(cluster.start)
    figures: dict[str, Any] = {"trials": TRIALS}
    try:
        catalog = cluster.catalog()
        manager = SegmentManager.from_settings(cluster.settings, catalog)
        async with httpx.AsyncClient(base_url=cluster.url, timeout=60) as http:
            for raw, kind, extra in (
                ("events", "OFFLINE", {}),
                (
                    "clicks",
                    "REALTIME",
                    {"tableIndexConfig": {"streamConfigs": {"realtime.segment.flush.threshold.rows": "100"}}},
                ),
            ):
                await call(
                    http,
                    "POST",
                    "/schemas",
                    json=events_schema(raw).model_dump(mode="json", exclude_none=True),
                )
                await call(http, "POST", "/tables", json={"tableName": raw, "tableType": kind, **extra})
            events = "events_OFFLINE"

            # 1. Append ingestion with minions killed mid-batch.
            files = TRIALS + 2
            for f in range(files):
                write_events(
                    cluster.data_dir / "input" / "v1" / f"part{f}.csv", f * ROWS_PER_FILE, ROWS_PER_FILE
                )
            plan_id = await execute(
                http,
                "FileIngestionTask",
                events,
                inputDirURI=str(cluster.data_dir / "input" / "v1"),
                inputFormat="csv",
                tableMaxNumTasks="1",
            )
            for trial in range(TRIALS):
                if not await wait_batch(http, plan_id, trial):
                    break
                await asyncio.sleep(random.uniform(0, 0.3))
                await asyncio.to_thread(cluster.kill_minion)
            plan = await finish(http, plan_id)
            assert plan["status"] == "COMPLETED", plan
            expected = list(range(files * ROWS_PER_FILE))
            assert ids(manager, events) == expected  # every file's rows, exactly once
            handed_back = await handbacks(http, plan_id)
            figures["append"] = {
                "files": files,
                "rows": len(expected),
                "minion_kills": TRIALS,
                "subtasks_handed_back": handed_back,
            }

            # 2. Purge with the controller killed mid-plan.
            plan_id = await execute(
                http,
                "SegmentPurgeTask",
                events,
                purgeFilter="country = 'US'",
                tableMaxNumTasks="1",
                maxNumSegmentsPerTask="1",  # a batch per segment: the controller dies mid-plan
            )
            await wait_batch(http, plan_id, 0)
            await asyncio.to_thread(cluster.kill_controller)
            plan = await finish(http, plan_id)
            assert plan["status"] == "COMPLETED", plan
            kept = [i for i in expected if i % 4 != 0]
            assert ids(manager, events) == kept
            figures["purge"] = {"rows_checked": len(expected), "rows_kept": len(kept)}

            # 3. Full swap with the dev server restarted mid-plan.
            for f in range(3):
                write_events(cluster.data_dir / "input" / "v2" / f"n{f}.csv", 10_000_000 + f * 50_000, 50_000)
            plan_id = await execute(
                http,
                "FileIngestionTask",
                events,
                inputDirURI=str(cluster.data_dir / "input" / "v2"),
                inputFormat="csv",
                ingestionMode="FULL_SWAP",
                tableMaxNumTasks="1",
            )
            await wait_batch(http, plan_id, 0)
            await asyncio.to_thread(cluster.restart_server)
            plan = await finish(http, plan_id)
            assert plan["status"] == "COMPLETED", plan
            assert ids(manager, events) == list(range(10_000_000, 10_150_000))
            swaps = [e for e in catalog.segments.lineage(events) if e.owner.startswith("FileIngestionTask:")]
            assert [e.state for e in swaps] == [LineageState.COMPLETED]  # one swap, done once
            figures["full_swap"] = {"rows": 150_000}

            # 4. Export with the API killed mid-plan.
            for start in range(0, 500, 100):
                rows = "id,country,amount,ts,tags\n" + "".join(
                    f"{i},FR,1.0,{1700000000000 + i},a\n" for i in range(start, start + 100)
                )
                await call(
                    http,
                    "POST",
                    "/ingestFromFile",
                    params={
                        "tableNameWithType": "clicks_REALTIME",
                        "batchConfigMapStr": json.dumps({"inputFormat": "csv"}),
                    },
                    files={"file": ("c.csv", rows.encode())},
                )
            target = cluster.data_dir / "export" / "clicks"
            plan_id = await execute(
                http,
                "DataExportTask",
                "clicks_REALTIME",
                bufferTimePeriod="0s",
                tableMaxNumTasks="1",
                **{"externalTable.target": str(target)},
            )
            await asyncio.to_thread(cluster.kill_api)
            plan = await finish(http, plan_id)
            assert plan["status"] == "COMPLETED", plan
            exported = sorted(
                r["id"]
                for f in (target / "clicks_REALTIME").glob("*.parquet")
                for r in read_rows(f, DuckDBConfig())
            )
            assert exported == list(range(500))  # each segment once
            assert len(catalog.segments.exported("clicks_REALTIME", str(target))) == 5
            figures["export"] = {"segments": 5, "rows": 500}

        # What crashes left: the sweep removes it, and then nothing is left over.
        swept = {t: manager.cleanup(t, grace_s=0) for t in ("events_OFFLINE", "clicks_REALTIME")}
        for table in ("events_OFFLINE", "clicks_REALTIME"):
            assert not [e for e in catalog.segments.lineage(table) if e.state is LineageState.IN_PROGRESS]
            known = {s.file_name for s in catalog.segments.all_segments(table)}
            assert set(manager.deep_store.files(table)) == known
        figures["swept_files"] = sum(len(r.deleted_files) for r in swept.values())
        figures["faults"] = cluster.faults
    finally:
        await asyncio.to_thread(cluster.stop)
    print("CHAOS", json.dumps(figures))
    (Path(os.environ.get("CHAOS_REPORT_DIR", tmp_path)) / f"chaos-{int(time.time())}.json").write_text(
        json.dumps(figures)
    )
