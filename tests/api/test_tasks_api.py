"""Pinot's task read endpoints over batches and legacy tasks."""

from __future__ import annotations

import httpx

from tests.api.test_tables_and_triggers_api import COUNTING, create_table, new_name, wait_inactive
from tests.support.engine import eventually


async def test_task_endpoints_describe_batches(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    plan_id = (
        await http.post(
            "/tasks/execute",
            json={
                "taskType": COUNTING,
                "tableName": table,
                "taskConfigs": {
                    "enableTaskOrchestration": "true",
                    "numBatches": "2",
                    "subtasksPerBatch": "3",
                    "failingBatch": "1",
                },
            },
        )
    ).json()["taskPlanId"]
    await wait_inactive(http, plan_id)
    batches = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()["batches"]
    ok, failed = batches[0]["submittedTaskName"], batches[1]["submittedTaskName"]

    async def listed() -> None:
        states = (await http.get(f"/tasks/{COUNTING}/taskstates")).json()
        assert states[ok] == "COMPLETED" and states[failed] == "FAILED"

    await eventually(listed)
    assert ok in (await http.get(f"/tasks/{COUNTING}/tasks")).json()
    assert (await http.get(f"/tasks/task/{ok}/state")).json() == "COMPLETED"
    counts = (await http.get(f"/tasks/{COUNTING}/taskcounts")).json()
    assert counts[ok] == {
        "total": 3,
        "completed": 3,
        "running": 0,
        "waiting": 0,
        "error": 0,
        "unknown": 0,
        "dropped": 0,
        "timedOut": 0,
        "aborted": 0,
    }
    assert counts[failed]["aborted"] == 3 and counts[failed]["total"] == 3  # all three were in flight

    configs = (await http.get(f"/tasks/task/{ok}/config")).json()
    assert len(configs) == 3 and configs[0]["taskType"] == COUNTING and configs[0]["tableName"] == table
    assert configs[0]["taskId"] == configs[0]["configs"]["TASK_ID"] == f"{ok}_0"
    assert configs[0]["configs"]["tableName"] == table and configs[2]["configs"]["index"] == "2"
    by_name = (await http.get(f"/tasks/subtask/{ok}/config")).json()
    assert sorted(by_name) == [f"{ok}_{i}" for i in range(3)]
    assert (await http.get(f"/tasks/subtask/{ok}/state")).json() == {
        f"{ok}_{i}": "COMPLETED" for i in range(3)
    }

    report = (await http.get(f"/tasks/task/{failed}/subtasks", params={"limit": 1})).json()
    assert report["numSubtasks"] == 3 and len(report["subtasks"]) == 1
    first = report["subtasks"][0]
    assert first["state"] == "TASK_ABORTED" and first["attempts"] == 1
    assert "fatal failure injected" in first["error"]
    assert first["startedAtMs"] <= first["finishedAtMs"]
    ok_report = (await http.get(f"/tasks/task/{ok}/subtasks")).json()
    assert ok_report["totals"]["items"] == 3 and ok_report["subtasks"][0]["result"]["items"] == 1


async def test_task_endpoint_errors(http: httpx.AsyncClient) -> None:
    missing = "Task_TestCountingTask_1"
    for path in (
        f"/tasks/task/{missing}/state",
        f"/tasks/task/{missing}/config",
        f"/tasks/subtask/{missing}/state",
        f"/tasks/task/{missing}/subtasks",
    ):
        response = await http.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == f"task {missing} not found"
    bad = await http.get("/tasks/task/not-a-task/state")
    assert bad.status_code == 400 and "invalid task name" in bad.json()["error"]
    assert (await http.get("/tasks/Bad__Type/tasks")).status_code == 400
    types = (await http.get("/tasks/tasktypes")).json()
    assert COUNTING in types and "TestLegacyTask" in types
