"""Pinot's wire format of the task triggers and queues: POST /tasks/execute, POST /tasks/schedule,
PUT /tasks/{taskType}/stop|resume (PinotTaskRestletResource, PinotTaskManager.createTask)."""

from __future__ import annotations

import json

import httpx

from tests.api.contract.conftest import CONTRACT, assert_error, make_table, unique
from tests.support.engine import eventually

LEGACY = "TestLegacyTask"


async def test_execute_legacy_answers_table_to_task_name_and_uses_task_name(api: httpx.AsyncClient) -> None:
    table = await make_table(api)
    name = unique("adhoc")
    body = {
        "taskType": LEGACY,
        "tableName": table,
        "taskName": name,
        "taskConfigs": {"subtasksPerBatch": "2"},
        "someKeyPinotIgnores": {"nested": True},  # unknown keys are ignored, as Jackson's Pinot does
    }
    first = await api.post("/tasks/execute", json=body)
    assert first.status_code == 200, first.text
    assert first.json() == {table: f"Task_{LEGACY}_{name}"}
    again = await api.post("/tasks/execute", json=body)
    assert_error(again, 409)
    assert again.json()["error"] == f"Task already exists: {name}"  # Pinot names the request's taskName
    # The ad hoc name form is accepted on the task paths.
    state = await api.get(f"/tasks/task/Task_{LEGACY}_{name}/state")
    assert state.status_code == 200 and state.json() in ("IN_PROGRESS", "COMPLETED")


async def test_execute_on_a_raw_name_with_both_types_generates_for_both(api: httpx.AsyncClient) -> None:
    raw = unique()
    offline = await make_table(api, name=raw)
    realtime = await make_table(api, name=raw, table_type="REALTIME")
    answer = await api.post(
        "/tasks/execute",
        json={"taskType": LEGACY, "tableName": raw, "taskConfigs": {"subtasksPerBatch": "1"}},
    )
    assert answer.status_code == 200, answer.text
    names = answer.json()
    assert set(names) == {offline, realtime} and len(set(names.values())) == 1
    configs = (await api.get(f"/tasks/task/{names[offline]}/config")).json()
    assert sorted(c["tableName"] for c in configs) == sorted([offline, realtime])


async def test_execute_answers_empty_when_nothing_is_generated_or_the_queue_is_stopped(
    api: httpx.AsyncClient,
) -> None:
    table = await make_table(api)
    taken = unique("taken")
    named = await api.post(
        "/tasks/execute",
        json={
            "taskType": CONTRACT,
            "tableName": table,
            "taskName": taken,
            "taskConfigs": {"subtasksPerBatch": "1"},
        },
    )
    assert named.status_code == 200, named.text
    nothing = await api.post(
        "/tasks/execute",
        json={"taskType": CONTRACT, "tableName": table, "taskConfigs": {"subtasksPerBatch": "0"}},
    )
    assert nothing.status_code == 200 and nothing.json() == {}
    stopped = await api.put(f"/tasks/{CONTRACT}/stop")
    assert stopped.status_code == 200
    assert stopped.json() == {"status": f"Successfully stopped tasks for task type: {CONTRACT}"}
    try:
        held = await api.post("/tasks/execute", json={"taskType": CONTRACT, "tableName": table})
        assert held.status_code == 200 and held.json() == {}
        # Pinot asks whether the queue is stopped before whether the name is taken.
        again = await api.post(
            "/tasks/execute", json={"taskType": CONTRACT, "tableName": table, "taskName": taken}
        )
        assert again.status_code == 200 and again.json() == {}
        # A stopped queue stops the legacy flow of a scheduled cycle too: Pinot's scheduling error.
        legacy_table = await make_table(api, {CONTRACT: {"subtasksPerBatch": "1"}})
        cycle = await api.post("/tasks/schedule", params={"taskType": CONTRACT, "tableName": legacy_table})
        assert cycle.status_code == 200
        assert CONTRACT not in cycle.json()
        assert "task queue may be stopped" in cycle.json()["schedulingErrors"]
        assert (await api.get(f"/tasks/{CONTRACT}/state")).json() == "STOPPED"
    finally:
        resumed = await api.put(f"/tasks/{CONTRACT}/resume")
    assert resumed.json() == {"status": f"Successfully resumed tasks for task type: {CONTRACT}"}
    assert (await api.get(f"/tasks/{CONTRACT}/state")).json() == "IN_PROGRESS"


async def test_execute_orchestrated_keeps_the_plan_id_and_names_the_first_batch(
    api: httpx.AsyncClient,
) -> None:
    table = await make_table(api)
    answer = await api.post(
        "/tasks/execute",
        json={
            "taskType": CONTRACT,
            "tableName": table,
            "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "1", "subtasksPerBatch": "1"},
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["taskPlanId"].startswith(f"{table}__{CONTRACT}__")
    assert body["tableNameWithType"] == table and body["taskType"] == CONTRACT
    assert isinstance(body[table], str) and body[table].startswith(f"Task_{CONTRACT}_")

    async def ended() -> None:
        assert (await api.get(f"/tasks/taskPlans/isActive/{body['taskPlanId']}")).json()["active"] is False

    await eventually(ended)


async def test_execute_errors_keep_taskplan_404_and_400(api: httpx.AsyncClient) -> None:
    table = await make_table(api)
    assert_error(await api.post("/tasks/execute", json={"taskType": "NoSuchTask", "tableName": table}), 404)
    assert_error(
        await api.post("/tasks/execute", json={"taskType": LEGACY, "tableName": "nope_OFFLINE"}), 404
    )
    missing = await api.post("/tasks/execute", json={"taskType": LEGACY})
    assert_error(missing, 400, "tableName")
    bad_name = await api.post(
        "/tasks/execute", json={"taskType": LEGACY, "tableName": table, "taskName": "a/b"}
    )
    assert_error(bad_name, 400, "taskName")


async def test_schedule_answers_pinot_flat_map(api: httpx.AsyncClient) -> None:
    plain = await make_table(api, {CONTRACT: {"subtasksPerBatch": "1"}})
    answer = await api.post(
        "/tasks/schedule",
        params={"taskType": CONTRACT, "tableName": plain, "minionInstanceTag": "minion_untagged"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert all(isinstance(v, str) for v in body.values())
    assert set(body) == {CONTRACT, "generationErrors", "schedulingErrors", "cycleResults"}
    assert body["generationErrors"] == "" and body["schedulingErrors"] == ""
    (task_name,) = body[CONTRACT].split(",")
    assert task_name.startswith(f"Task_{CONTRACT}_")
    cycle = json.loads(body["cycleResults"])[CONTRACT]
    assert cycle["legacyTasks"] == {plain: task_name}
    configs = (await api.get(f"/tasks/task/{task_name}/config")).json()
    assert configs[0]["tableName"] == plain
    assert configs[0]["configs"]["triggeredBy"] == "MANUAL_TRIGGER"  # Pinot's, for POST /tasks/schedule
    assert_error(await api.post("/tasks/schedule", params={"minionInstanceTag": "bad tag!"}), 400)
