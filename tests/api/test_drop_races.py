"""Work racing DELETE /tables: an ingest answers 200 or a clear 404 and leaves nothing in a table created
again under the name; a plan started during the drop ends and is not listed as active afterwards."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from taskplan.models.plan import PlanSource
from taskplan.names import SearchAttributes, new_plan_id, plan_workflow_id
from taskplan.workflows.models import PlanInput
from taskplan.workflows.task_plan import TaskPlanWorkflow
from tests.api.test_tables_and_triggers_api import COUNTING, new_name
from tests.support.engine import TEST_OPTIONS, eventually

SCHEMA_FIELDS = [{"name": "id", "dataType": "LONG"}, {"name": "country", "dataType": "STRING"}]


async def create_table(http: httpx.AsyncClient, raw: str, table_type: str, *, schema: bool = True) -> str:
    if schema:
        body = {"schemaName": raw, "dimensionFieldSpecs": SCHEMA_FIELDS}
        assert (await http.post("/schemas", json=body)).status_code == 200
    config = {
        "tableName": raw,
        "tableType": table_type,
        "tableIndexConfig": {"streamConfigs": {"realtime.segment.flush.threshold.rows": "3000"}},
    }
    response = await http.post("/tables", json=config)
    assert response.status_code == 200, response.text
    return f"{raw}_{table_type}"


def json_lines(start: int, count: int) -> bytes:
    return b"".join(
        json.dumps({"id": i, "country": "US"}).encode() + b"\n" for i in range(start, start + count)
    )


async def ingest(http: httpx.AsyncClient, table: str, content: bytes) -> httpx.Response:
    return await http.post(
        "/ingestFromFile",
        params={"tableNameWithType": table, "batchConfigMapStr": json.dumps({"inputFormat": "json"})},
        files={"file": ("rows.json", content, "application/octet-stream")},
    )


@pytest.mark.parametrize("table_type", ["REALTIME", "OFFLINE"])
async def test_ingests_racing_a_drop_answer_200_or_404_and_leave_nothing_behind(
    http: httpx.AsyncClient, data_dir: Path, table_type: str
) -> None:
    for delay_s in (0.0, 0.05, 0.15, 0.3):
        raw = new_name()
        table = await create_table(http, raw, table_type)
        assert (await ingest(http, table, json_lines(0, 10))).status_code == 200

        async def drop_later(name: str = table, delay: float = delay_s) -> httpx.Response:
            await asyncio.sleep(delay)
            return await http.delete(f"/tables/{name}")

        *answers, dropped = await asyncio.gather(
            *(ingest(http, table, json_lines(1000 * (i + 1), 1000)) for i in range(6)), drop_later()
        )
        assert dropped.status_code == 200, dropped.text
        for answer in answers:
            assert answer.status_code in (200, 404), answer.text
            if answer.status_code == 404:
                assert table in answer.json()["error"], answer.text
        # Created again under the name, the table has none of the old one's rows or files.
        await create_table(http, raw, table_type, schema=False)
        listed = (await http.get(f"/segments/{table}")).json()
        assert listed == [{table_type: []}], (delay_s, listed)
        directory = data_dir / "deepstore" / table
        leftovers = list(directory.iterdir()) if directory.exists() else []
        assert leftovers == [], (delay_s, leftovers)
        assert (await http.delete(f"/tables/{table}")).status_code == 200


async def test_a_plan_started_during_a_drop_ends_and_is_not_listed(
    http: httpx.AsyncClient, engine: Client
) -> None:
    for _ in range(2):
        raw = new_name()
        table = await create_table(http, raw, "OFFLINE")
        # Plans that ended: the drop deletes each from Temporal after listing them, which leaves a while
        # for a trigger to start a plan that the listing did not show, before the table's config goes.
        quick = {
            "taskType": COUNTING,
            "tableName": table,
            "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "0"},
        }
        for _ in range(20):
            plan_id = (await http.post("/tasks/execute", json=quick)).json()["taskPlanId"]
            await http.get(f"/tasks/taskPlans/{plan_id}", params={"waitForTerminalSeconds": 30})
        body = {
            "taskType": COUNTING,
            "tableName": table,
            "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "3", "sleepMs": "10000"},
        }
        assert (await http.post("/tasks/execute", json=body)).status_code == 200
        dropping = asyncio.create_task(http.delete(f"/tables/{table}"))
        triggers = []
        while not dropping.done():  # a trigger every few ms all through the drop
            triggers.append(asyncio.create_task(http.post("/tasks/execute", json=body)))
            await asyncio.sleep(0.02)
        assert (await dropping).status_code == 200
        started = []
        for answer in await asyncio.gather(*triggers):
            print("EXEC", answer.status_code, answer.text[:120], flush=True)
            if answer.status_code == 200:
                started.append(answer.json()["taskPlanId"])
        await create_table(http, raw, "OFFLINE", schema=False)  # the same name again: a new table

        async def ended(name: str = table, plans: tuple[str, ...] = tuple(started)) -> None:
            query = f"TaskPlanTable = '{name}' AND ExecutionStatus = 'Running'"
            assert [e.id async for e in engine.list_workflows(query)] == []
            for plan_id in plans:
                status = (await http.get(f"/tasks/taskPlans/isActive/{plan_id}")).json()
                assert status.get("active") is not True, (plan_id, status)
            listed = await http.get("/tasks/taskPlans/active/ids", params={"tableNameWithType": name})
            assert not set(listed.json()) & set(plans), listed.json()

        await eventually(ended, timeout=15)
        assert (await http.delete(f"/tables/{table}")).status_code == 200


async def test_a_plan_terminated_before_its_first_step_reads_as_ended(
    http: httpx.AsyncClient, engine: Client
) -> None:
    """What a drop leaves of a plan it stopped at once: its workflow never ran a step (no state to read)."""
    table = await create_table(http, new_name(), "OFFLINE")
    plan_id = new_plan_id(table, COUNTING)
    handle = await engine.start_workflow(
        TaskPlanWorkflow.run,
        PlanInput(
            plan_id=plan_id,
            table_name_with_type=table,
            task_type=COUNTING,
            source=PlanSource.ADHOC_CONFIG,
            properties={},
            options=TEST_OPTIONS,
        ),
        id=plan_workflow_id(table, COUNTING),
        task_queue=f"no-worker-{uuid.uuid4()}",  # nothing runs it: it is terminated before a first step
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SearchAttributes.PLAN_ID, plan_id),
                SearchAttributePair(SearchAttributes.TABLE, table),
                SearchAttributePair(SearchAttributes.TASK_TYPE, COUNTING),
                SearchAttributePair(SearchAttributes.SOURCE, PlanSource.ADHOC_CONFIG.value),
            ]
        ),
    )
    await handle.terminate(reason="table dropped")
    answer = await http.get(f"/tasks/taskPlans/isActive/{plan_id}")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"planId": plan_id, "active": False, "status": "FAILED"}
    plan = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    assert plan["status"] == "FAILED" and plan["statusMessage"] == "plan workflow terminated", plan
