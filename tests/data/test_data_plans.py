"""The data task types as real Temporal task plans, driven through the REST API; ingestFromFile; segments."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.data.deepstore import DeepStore
from taskplan.data.parquet import DuckDBConfig
from taskplan.data.segments import SegmentManager
from tests.api.test_tables_and_triggers_api import wait_inactive
from tests.support.data import deep_store_leaks, event, events_schema, table_rows, write_csv
from tests.support.engine import eventually
from tests.support.minions import start_minion


async def create(http: httpx.AsyncClient, raw: str, table_type: str = "OFFLINE", **extra: Any) -> str:
    schema = events_schema(raw).model_dump(mode="json", exclude_none=True)
    assert (await http.post("/schemas", json=schema)).status_code == 200
    body = {"tableName": raw, "tableType": table_type, **extra}
    response = await http.post("/tables", json=body)
    assert response.status_code == 200, response.text
    return f"{raw}_{table_type}"


async def ingest(http: httpx.AsyncClient, table: str, content: bytes, fmt: str = "csv") -> httpx.Response:
    return await http.post(
        "/ingestFromFile",
        params={"tableNameWithType": table, "batchConfigMapStr": json.dumps({"inputFormat": fmt})},
        files={"file": (f"upload.{fmt}", content, "application/octet-stream")},
    )


def csv_bytes(rows: list[dict[str, Any]], tmp: Path) -> bytes:
    return write_csv(tmp / f"{uuid.uuid4().hex}.csv", rows).read_bytes()


async def segments(http: httpx.AsyncClient, table: str) -> list[dict[str, str]]:
    """The metadata of the segments readers see (Pinot's segment ZK metadata: ``segment.total.docs``,
    ``segment.realtime.status``, ...), through Pinot's listing and per-segment metadata endpoints."""
    response = await http.get(f"/segments/{table}", params={"excludeReplacedSegments": "true"})
    assert response.status_code == 200, response.text
    [entry] = response.json()
    found: list[dict[str, str]] = []
    for name in next(iter(entry.values())):
        metadata = await http.get(f"/segments/{table}/{name}/metadata")
        assert metadata.status_code == 200, metadata.text
        found.append(metadata.json())
    return found


async def execute(http: httpx.AsyncClient, task_type: str, table: str, **configs: str) -> httpx.Response:
    body = {
        "taskType": task_type,
        "tableName": table,
        "taskConfigs": {"enableTaskOrchestration": "true", **configs},
    }
    return await http.post("/tasks/execute", json=body)


def manager(tables: Catalog, data_dir: Path) -> SegmentManager:
    return SegmentManager(tables, DeepStore(data_dir / "deepstore"), DuckDBConfig())


async def test_ingest_from_file_and_list_segments(http: httpx.AsyncClient, tmp_path: Path) -> None:
    raw = f"ing{uuid.uuid4().hex[:8]}"
    table = await create(http, raw)
    response = await ingest(http, table, csv_bytes([event(1), event(2), {"id": "bad"}], tmp_path))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rowStats"]["processed"] == 2 and body["rowStats"]["processedWithError"] == 1
    [segment] = await segments(http, table)
    assert segment["segment.total.docs"] == "3" and "segment.realtime.status" not in segment
    assert segment["segment.start.time"] == "1700000000001" and segment["segment.end.time"] == "1700000000002"

    realtime = await create(
        http,
        raw,
        "REALTIME",
        tableIndexConfig={"streamConfigs": {"realtime.segment.flush.threshold.rows": "4"}},
    )
    await ingest(http, realtime, csv_bytes([event(1), event(2)], tmp_path))
    [consuming] = await segments(http, realtime)
    assert consuming["segment.realtime.status"] == "IN_PROGRESS" and consuming["segment.total.docs"] == "2"
    await ingest(http, realtime, csv_bytes([event(3), event(4)], tmp_path))
    [committed] = await segments(http, realtime)
    assert committed["segment.realtime.status"] == "DONE" and committed["segment.total.docs"] == "4"

    bad = await http.post(
        "/ingestFromFile",
        params={"tableNameWithType": table, "batchConfigMapStr": '{"inputFormat": "xml"}'},
        files={"file": ("x.xml", b"<x/>")},
    )
    assert bad.status_code == 400 and "inputFormat 'xml' is not supported" in bad.json()["error"]
    missing = await ingest(http, "nosuch_OFFLINE", b"id\n1\n")
    assert missing.status_code == 404
    assert (await http.get("/segments/nosuch")).status_code == 404


async def test_a_purge_plan_chains_batches_until_every_segment_is_purged(
    http: httpx.AsyncClient, tables: Catalog, data_dir: Path, tmp_path: Path
) -> None:
    raw = f"pur{uuid.uuid4().hex[:8]}"
    table = await create(http, raw)
    for s in range(4):
        rows = [event(s * 10 + i, "US" if i % 2 else "FR") for i in range(6)]
        assert (await ingest(http, table, csv_bytes(rows, tmp_path))).status_code == 200
    response = await execute(
        http,
        "SegmentPurgeTask",
        table,
        purgeFilter="country = 'US'",
        tableMaxNumTasks="1",
        maxNumRecordsPerTask="6",  # a subtask per 6-row segment
    )
    assert response.status_code == 200, response.text
    plan_id = response.json()["taskPlanId"]
    await wait_inactive(http, plan_id)
    plan = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    assert plan["status"] == "COMPLETED" and plan["numBatches"] == 4, plan
    assert plan["inputsToProcess"] == 4 and plan["inputUnit"] == "segments"
    rows = table_rows(manager(tables, data_dir), table)
    assert len(rows) == 12 and {r["country"] for r in rows} == {"FR"}
    assert sum(int(s["segment.total.docs"]) for s in await segments(http, table)) == 12


@pytest.mark.parametrize(
    ("task_type", "configs", "message"),
    [
        ("SegmentPurgeTask", {"purgeFilter": "country = 'US'; DROP TABLE tp_tables"}, "statement separator"),
        ("SegmentPurgeTask", {"purgeFilter": "country = (SELECT 1)"}, "subquery"),
        ("SegmentPurgeTask", {}, "purgeFilter is required"),
        (
            "SegmentPurgeTask",
            {"purgeFilter": "country = 'US'", "maxNumRecordsPerTask": "0"},
            "maxNumRecordsPerTask must be between 1 and",
        ),
        (
            "FileIngestionTask",
            {"inputDirURI": "/etc", "inputFormat": "csv"},
            "outside the allowed directories",
        ),
        ("FileIngestionTask", {"inputDirURI": "/tmp/../etc", "inputFormat": "csv"}, "outside the allowed"),
    ],
)
async def test_bad_task_configs_are_refused_when_triggered(
    http: httpx.AsyncClient, task_type: str, configs: dict[str, str], message: str
) -> None:
    table = await create(http, f"bad{uuid.uuid4().hex[:8]}")
    for orchestrated in ("true", "false"):
        response = await execute(http, task_type, table, enableTaskOrchestration=orchestrated, **configs)
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]
        assert f"task.taskTypeConfigsMap.{task_type}" in response.json()["error"]
    plans = (await http.get(f"/tasks/taskPlans?tableNameWithType={table}&taskType={task_type}")).json()
    assert plans == []


def data_minion(
    tag: str, tables: Catalog, data_dir: Path, address: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {"TASKPLAN_DATADIR": str(data_dir), "TASKPLAN_CATALOG_URL": str(tables.engine.url)}
    return start_minion(address, tag, log, env=env, args=["--max-concurrent-subtasks", "1"])


async def test_full_swap_survives_a_minion_killed_between_upload_and_swap(
    http: httpx.AsyncClient,
    engine: Client,
    tables: Catalog,
    data_dir: Path,
    tmp_path: Path,
    minion_procs: list[subprocess.Popen[bytes]],
) -> None:
    raw = f"swp{uuid.uuid4().hex[:8]}"
    tag = f"swap{uuid.uuid4().hex[:6]}"
    table = await create(http, raw)
    await ingest(http, table, csv_bytes([event(1), event(2)], tmp_path))
    directory = data_dir / "input" / raw
    for f in range(4):
        write_csv(directory / f"f{f}.csv", [event(100 + f * 10_000 + i) for i in range(2000)])
    address = engine.service_client.config.target_host
    minion_procs.append(data_minion(tag, tables, data_dir, address, tmp_path / "m1.log"))
    response = await execute(
        http,
        "FileIngestionTask",
        table,
        inputDirURI=str(directory),
        inputFormat="csv",
        ingestionMode="FULL_SWAP",
        tableMaxNumTasks="2",
        minionInstanceTag=tag,
    )
    assert response.status_code == 200, response.text
    plan_id = response.json()["taskPlanId"]
    segments_store = tables.segments

    async def uploaded() -> None:
        lineage = [e for e in segments_store.lineage(table) if e.state.value == "IN_PROGRESS"]
        assert lineage and lineage[0].segments_to

    await eventually(uploaded, timeout=60, interval=0.05)
    minion_procs[0].send_signal(signal.SIGKILL)  # new segments uploaded, the swap not yet done
    assert [r["id"] for r in table_rows(manager(tables, data_dir), table)] == [1, 2]  # old set still
    await asyncio.sleep(0.5)
    minion_procs.append(data_minion(tag, tables, data_dir, address, tmp_path / "m2.log"))
    await wait_inactive(http, plan_id)
    plan = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    assert plan["status"] == "COMPLETED", plan
    rows = table_rows(manager(tables, data_dir), table)
    assert len(rows) == 8000 and len({r["id"] for r in rows}) == 8000  # the new set, once
    assert deep_store_leaks(manager(tables, data_dir), table) == set()
    [entry] = [e for e in segments_store.lineage(table) if e.owner.startswith("FileIngestionTask")]
    assert entry.state.value == "COMPLETED" and len(entry.segments_to) == 4


async def test_export_plan_drains_committed_segments(
    http: httpx.AsyncClient, tables: Catalog, data_dir: Path, tmp_path: Path
) -> None:
    raw = f"exp{uuid.uuid4().hex[:8]}"
    stream = {"realtime.segment.flush.threshold.rows": "2"}
    table = await create(http, raw, "REALTIME", tableIndexConfig={"streamConfigs": stream})
    for start in range(0, 7, 2):
        await ingest(http, table, csv_bytes([event(start), event(start + 1)], tmp_path))
    await ingest(http, table, csv_bytes([event(99)], tmp_path))  # consuming, not exported
    target = data_dir / "export" / raw
    response = await execute(
        http, "DataExportTask", table, **{"externalTable.target": str(target), "bufferTimePeriod": "0s"},
        tableMaxNumTasks="3",
    )  # fmt: skip
    assert response.status_code == 200, response.text
    plan_id = response.json()["taskPlanId"]
    await wait_inactive(http, plan_id)
    plan = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    assert plan["status"] == "COMPLETED" and plan["numBatches"] == 2
    assert len(list((target / table).glob("*.parquet"))) == 4
