"""Pinot's wire format of the task read endpoints: taskcounts (TaskCount), task and subtask configs
(PinotTaskConfig), subtask states (null until assigned), task states and task name forms."""

from __future__ import annotations

import uuid

import httpx
from temporalio.client import Client

from tests.api.contract.conftest import CONTRACT, assert_error, make_table, unique
from tests.support.engine import eventually

TASK_COUNT_FIELDS = [
    "total",
    "completed",
    "running",
    "waiting",
    "error",
    "unknown",
    "dropped",
    "timedOut",
    "aborted",
]


async def _legacy(api: httpx.AsyncClient, table: str, **configs: str) -> str:
    answer = await api.post(
        "/tasks/execute", json={"taskType": CONTRACT, "tableName": table, "taskConfigs": configs}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()[table])


async def _completed(api: httpx.AsyncClient, name: str) -> None:
    async def done() -> None:
        assert (await api.get(f"/tasks/task/{name}/state")).json() == "COMPLETED"

    await eventually(done)


async def test_taskcounts_is_pinot_task_count_with_state_and_table_filters(api: httpx.AsyncClient) -> None:
    table = await make_table(api)
    other = await make_table(api)
    done = await _legacy(api, table, subtasksPerBatch="2")
    failing = await _legacy(api, other, subtasksPerBatch="1", fatal="true")
    await _completed(api, done)

    async def failed() -> None:
        assert (await api.get(f"/tasks/task/{failing}/state")).json() == "FAILED"

    await eventually(failed)
    counts = (await api.get(f"/tasks/{CONTRACT}/taskcounts")).json()
    assert list(counts[done]) == TASK_COUNT_FIELDS  # Pinot's @JsonPropertyOrder
    assert counts[done] == dict.fromkeys(TASK_COUNT_FIELDS, 0) | {"total": 2, "completed": 2}
    assert counts[failing]["aborted"] == 1 and counts[failing]["total"] == 1  # TASK_ABORTED -> aborted
    assert all(isinstance(v, int) for c in counts.values() for v in c.values())
    assert list(counts) == sorted(counts)  # Pinot's TreeMap

    by_state = (await api.get(f"/tasks/{CONTRACT}/taskcounts", params={"state": "completed, Stopped"})).json()
    assert done in by_state and failing not in by_state
    by_states = (await api.get(f"/tasks/{CONTRACT}/taskcounts", params={"state": "FAILED,COMPLETED"})).json()
    assert {done, failing} <= set(by_states)
    by_table = (await api.get(f"/tasks/{CONTRACT}/taskcounts", params={"table": other})).json()
    assert set(by_table) == {failing}
    both = (await api.get(f"/tasks/{CONTRACT}/taskcounts", params={"table": table, "state": "FAILED"})).json()
    assert both == {}
    assert_error(
        await api.get(f"/tasks/{CONTRACT}/taskcounts", params={"state": "DONE"}),
        400,
        "Invalid state: DONE",
        "TIMING_OUT",
    )
    # Pinot's full task state set is accepted by the filter.
    for state in ("STOPPING", "FAILING", "TIMING_OUT", "TIMED_OUT", "NOT_STARTED", "ABORTED"):
        assert (await api.get(f"/tasks/{CONTRACT}/taskcounts", params={"state": state})).status_code == 200


async def test_task_and_subtask_configs_are_pinot_task_configs(api: httpx.AsyncClient) -> None:
    table = await make_table(api)
    name = await _legacy(api, table, subtasksPerBatch="3")
    configs = (await api.get(f"/tasks/task/{name}/config")).json()
    assert isinstance(configs, list) and len(configs) == 3
    for index, config in enumerate(configs):
        assert set(config) == {"taskType", "taskId", "tableName", "configs"}
        assert config["taskType"] == CONTRACT and config["tableName"] == table
        assert config["taskId"] == f"{name}_{index}" == config["configs"]["TASK_ID"]
        assert config["configs"]["tableName"] == table
        assert all(isinstance(v, str) for v in config["configs"].values())
    every = (await api.get(f"/tasks/subtask/{name}/config")).json()
    assert sorted(every) == [f"{name}_{i}" for i in range(3)]
    assert every[f"{name}_1"] == configs[1]
    picked = await api.get(
        f"/tasks/subtask/{name}/config", params={"subtaskNames": f"{name}_0,{name}_2,nope"}
    )
    assert sorted(picked.json()) == [f"{name}_0", f"{name}_2"]


async def test_subtask_state_is_null_until_a_minion_takes_it(api: httpx.AsyncClient, engine: Client) -> None:
    table = await make_table(api)
    # No minion polls this tag's queue: the subtasks stay scheduled, not assigned.
    name = await _legacy(api, table, subtasksPerBatch="2", minionInstanceTag=f"nobody{uuid.uuid4().hex[:6]}")
    try:

        async def scheduled() -> None:
            states = (await api.get(f"/tasks/subtask/{name}/state")).json()
            assert states == {f"{name}_0": None, f"{name}_1": None}

        await eventually(scheduled)
        counts = (await api.get(f"/tasks/{CONTRACT}/taskcounts")).json()[name]
        assert counts["waiting"] == 2 and counts["running"] == 0 and counts["total"] == 2
        assert (await api.get(f"/tasks/task/{name}/state")).json() == "IN_PROGRESS"
    finally:
        await engine.get_workflow_handle(name).terminate("contract test done")


async def test_a_running_batch_of_an_aborting_plan_is_stopping(api: httpx.AsyncClient) -> None:
    table = await make_table(api)
    plan = await api.post(
        "/tasks/execute",
        json={
            "taskType": CONTRACT,
            "tableName": table,
            "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "3", "sleepMs": "2000"},
        },
    )
    body = plan.json()
    batch = body[table]
    assert (await api.delete(f"/tasks/taskPlans/{body['taskPlanId']}")).status_code == 200
    assert (await api.get(f"/tasks/task/{batch}/state")).json() == "STOPPING"
    assert (await api.get(f"/tasks/{CONTRACT}/taskstates")).json()[batch] == "STOPPING"
    stopping = (await api.get(f"/tasks/{CONTRACT}/taskcounts", params={"state": "stopping"})).json()
    assert batch in stopping

    async def ended() -> None:
        assert (await api.get(f"/tasks/task/{batch}/state")).json() != "STOPPING"

    await eventually(ended, timeout=30)


async def test_pinot_task_name_forms_are_accepted(api: httpx.AsyncClient) -> None:
    for name in (
        f"Task_{CONTRACT}_1700000000000",
        f"Task_{CONTRACT}_{uuid.uuid4()}_1700000000000",  # Pinot's scheduled form
        f"Task_{CONTRACT}_{unique('adhoc')}",  # Pinot's ad hoc form
    ):
        for path in (
            f"/tasks/task/{name}/state",
            f"/tasks/task/{name}/config",
            f"/tasks/subtask/{name}/state",
        ):
            assert_error(await api.get(path), 404, f"task {name} not found")
    assert_error(await api.get("/tasks/task/not-a-task/state"), 400, "invalid task name")
