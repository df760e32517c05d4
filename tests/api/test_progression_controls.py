"""Queue stop/resume, in-flight subtask limits and waitForTerminalSeconds, through the REST API."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.api.test_metrics import scrape, start
from tests.api.test_tables_and_triggers_api import COUNTING, create_table, new_name, wait_inactive
from tests.support.engine import eventually

SINGLE = "TestSingleAttemptTask"
PER_TABLE_LIMIT = "taskplan.limits.maxInFlightSubtasksPerTable"


async def plan(http: httpx.AsyncClient, plan_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    return body


async def test_a_stopped_queue_holds_plans_until_resumed(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    plan_id = await start(http, table, numBatches="4", sleepMs="300")
    stopped = await http.put(f"/tasks/{COUNTING}/stop")
    assert stopped.status_code == 200, stopped.text
    try:
        assert (await http.get(f"/tasks/{COUNTING}/state")).json() == "STOPPED"

        async def blocked() -> dict[str, Any]:
            current = await plan(http, plan_id)
            assert f"the task queue of {COUNTING} is stopped" in current["statusMessage"]
            assert await scrape(http, "taskPlanProgressionBlocked", table) == 1
            return current

        held = await eventually(blocked)
        await asyncio.sleep(2)
        assert (await plan(http, plan_id))["numBatches"] == held["numBatches"] < 4
        # A pause while the gate holds the plan: once the queue resumes, the plan still waits.
        assert (await http.put(f"/tasks/taskPlans/{plan_id}/pause")).status_code == 200
    finally:
        assert (await http.put(f"/tasks/{COUNTING}/resume")).status_code == 200
    assert (await http.get(f"/tasks/{COUNTING}/state")).json() == "IN_PROGRESS"

    async def paused() -> None:
        assert (await plan(http, plan_id))["statusMessage"] == "paused: paused through the API"

    await eventually(paused)
    await asyncio.sleep(1.5)
    assert (await plan(http, plan_id))["numBatches"] == held["numBatches"]
    assert (await http.put(f"/tasks/taskPlans/{plan_id}/resume")).status_code == 200
    await wait_inactive(http, plan_id)
    done = await plan(http, plan_id)
    assert done["status"] == "COMPLETED" and done["numBatches"] == 4
    assert await scrape(http, "taskPlanProgressionBlocked", table) == 0
    unknown = await http.put("/tasks/NoSuchTask/stop")
    assert unknown.status_code == 404 and "NoSuchTask" in unknown.json()["error"]


async def test_in_flight_subtasks_per_table_are_limited(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    assert (await http.post("/cluster/configs", json={PER_TABLE_LIMIT: "2"})).status_code == 200
    try:
        first = await start(http, table, numBatches="1", subtasksPerBatch="2", sleepMs="4000")

        async def running() -> None:
            current = await plan(http, first)
            assert current["batches"] and current["batches"][-1]["taskState"] == "IN_PROGRESS"

        await eventually(running)
        await asyncio.sleep(1.5)  # visibility catches up with the running batch's size
        body = {
            "taskType": SINGLE,
            "tableName": table,
            "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "1"},
        }
        second = (await http.post("/tasks/execute", json=body)).json()["taskPlanId"]

        async def held() -> None:
            current = await plan(http, second)
            assert (
                "subtasks of" in current["statusMessage"]
                and "limit per table is 2" in current["statusMessage"]
            )
            assert current["numBatches"] == 0

        await eventually(held)
        await wait_inactive(http, first)
        await wait_inactive(http, second)
        assert (await plan(http, second))["status"] == "COMPLETED"
    finally:
        await http.delete(f"/cluster/configs/{PER_TABLE_LIMIT}")


async def test_wait_for_terminal_seconds(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    quick = await start(http, table, numBatches="1")
    done = await http.get(f"/tasks/taskPlans/{quick}", params={"waitForTerminalSeconds": 60})
    assert done.status_code == 200 and done.json()["status"] == "COMPLETED"

    other = await create_table(http, new_name())
    slow = await start(http, other, numBatches="3", sleepMs="2000")
    timed_out = await http.get(f"/tasks/taskPlans/{slow}", params={"waitForTerminalSeconds": 0.5})
    assert timed_out.status_code == 408 and "still ACTIVE after 0.5 s" in timed_out.json()["error"]
    bad = await http.get(f"/tasks/taskPlans/{slow}", params={"waitForTerminalSeconds": -1})
    assert bad.status_code == 400
    await http.delete(f"/tasks/taskPlans/{slow}")
    ended = await http.get(f"/tasks/taskPlans/{slow}", params={"waitForTerminalSeconds": 60})
    assert ended.status_code == 200 and ended.json()["status"] == "CANCELLED"
