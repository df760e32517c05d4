"""Races an operator will cause: abort against the last batch, a table dropped mid-batch, a cron firing
against an ad hoc trigger. Each must end in one consistent state."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from taskplan.catalog import Catalog
from taskplan.schedules import schedule_id
from tests.api.test_metrics import scrape, start
from tests.api.test_tables_and_triggers_api import COUNTING, create_table, new_name, wait_inactive
from tests.support.engine import eventually


async def plan(http: httpx.AsyncClient, plan_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    return body


@pytest.mark.parametrize("delay_ms", [0, 150, 400])
async def test_abort_racing_the_last_batch(http: httpx.AsyncClient, delay_ms: int) -> None:
    table = await create_table(http, new_name())
    plan_id = await start(http, table, numBatches="2", subtasksPerBatch="2", sleepMs="400")

    async def on_last_batch() -> None:
        assert (await plan(http, plan_id))["numBatches"] == 2

    await eventually(on_last_batch)
    await asyncio.sleep(delay_ms / 1000)
    aborted = await http.delete(f"/tasks/taskPlans/{plan_id}")
    await wait_inactive(http, plan_id)
    final = await plan(http, plan_id)
    assert aborted.status_code == 200, aborted.text
    if aborted.json()["status"] in ("ABORTING", "CANCELLED"):
        # Accepted while active: the plan stops, never starts a third batch, says why.
        assert final["status"] == "CANCELLED" and final["numBatches"] == 2, final
        assert final["statusMessage"].startswith("aborted:")
    else:  # the plan had completed first: the answer says so, and it stays COMPLETED
        assert aborted.json()["status"] == final["status"] == "COMPLETED", final


async def test_a_table_dropped_while_a_batch_runs(
    http: httpx.AsyncClient, engine: Client, tables: Catalog
) -> None:
    table = await create_table(http, new_name())
    plan_id = await start(http, table, numBatches="5", subtasksPerBatch="2", sleepMs="2000")

    async def running() -> None:
        assert (await plan(http, plan_id))["batches"]

    await eventually(running)
    assert (await http.delete(f"/tables/{table}")).status_code == 200
    assert tables.get_table_config(table) is None
    # Nothing of the table keeps running: the plan and its batch were stopped before the drop.
    still = [
        e async for e in engine.list_workflows(f"TaskPlanTable = '{table}' AND ExecutionStatus = 'Running'")
    ]
    assert still == []
    assert (await http.get(f"/tasks/taskPlans/{plan_id}")).status_code == 404


async def test_a_cron_firing_racing_an_ad_hoc_trigger_makes_one_plan(
    http: httpx.AsyncClient, engine: Client
) -> None:
    configs = {
        "schedule": "0 0 4 * * ?",
        "enableTaskOrchestration": "true",
        "numBatches": "2",
        "sleepMs": "1000",
    }
    table = await create_table(http, new_name(), {COUNTING: configs})
    body = {
        "taskType": COUNTING,
        "tableName": table,
        "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "2", "sleepMs": "1000"},
    }
    _, adhoc = await asyncio.gather(
        engine.get_schedule_handle(schedule_id(table, COUNTING)).trigger(),
        http.post("/tasks/execute", json=body),
    )

    async def settled() -> list[Any]:
        runs = [
            e
            async for e in engine.list_workflows(
                f"WorkflowType = 'CronTrigger' AND TaskPlanTable = '{table}'"
            )
        ]
        assert runs and all(r.status == WorkflowExecutionStatus.COMPLETED for r in runs)
        return runs

    await eventually(settled, timeout=30)
    ids = (
        await http.get("/tasks/taskPlans", params={"tableNameWithType": table, "taskType": COUNTING})
    ).json()
    assert isinstance(ids, list) and len(ids) == 1, ids  # exactly one plan, whoever won
    if adhoc.status_code == 409:  # the firing won: the ad hoc trigger is rejected, naming the plan
        assert ids[0] in adhoc.json()["error"]
    else:  # the ad hoc trigger won: the firing skipped and counted it
        assert adhoc.status_code == 200 and adhoc.json()["taskPlanId"] == ids[0]
        assert await scrape(http, "scheduledTriggerActivePlanConflict", table) == 1
    await wait_inactive(http, ids[0])
