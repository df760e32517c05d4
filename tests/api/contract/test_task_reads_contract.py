"""Pinot's wire format of the task read endpoints: taskcounts (TaskCount), task and subtask configs
(PinotTaskConfig), subtask states (null until assigned), task states and task name forms."""

from __future__ import annotations

import uuid

import httpx
from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.models.task import GeneratedBatch
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


async def test_taskcounts_counts_every_task_not_the_latest_hundred(
    api: httpx.AsyncClient, tables: Catalog
) -> None:
    """Pinot's getTaskCounts lists every task of the type. 130 batches of a plan, recorded in the catalog
    as a plan records them, are all counted."""
    table = await make_table(api)
    plan_id = f"{table}__{CONTRACT}__{uuid.uuid4()}"
    batch = GeneratedBatch(subtasks=[{"tableName": table}, {"tableName": table}])
    start = 1_600_000_000_000 + uuid.uuid4().int % 1_000_000_000
    names = [
        tables.tasks.record_started(
            f"Task_{CONTRACT}_{start + i}",
            table_name=table,
            plan_id=plan_id,
            batch_sequence=i,
            submitted_ms=start + i,
            batch=batch,
        )
        for i in range(130)
    ]
    # As the controller's poll ends the batches of a plan gone from Temporal: ABORTED, nothing in flight.
    assert tables.tasks.end_open_batches(plan_id, start + 200, "contract test: its plan is gone") == 130
    counts = (await api.get(f"/tasks/{CONTRACT}/taskcounts", params={"table": table})).json()
    assert sorted(counts) == sorted(names)
    # Pinot's mapping: subtasks in no state it names (taskplan's STOPPED) are unknown.
    assert all(c == dict.fromkeys(TASK_COUNT_FIELDS, 0) | {"total": 2, "unknown": 2} for c in counts.values())
    aborted = (await api.get(f"/tasks/{CONTRACT}/taskcounts", params={"state": "aborted"})).json()
    assert set(names) <= set(aborted)
    assert (await api.get(f"/tasks/{CONTRACT}/tasks/count")).json() >= 130
    states = (await api.get(f"/tasks/{CONTRACT}/{table}/state")).json()
    assert len(states) == 130 and set(states.values()) == {"ABORTED"}
    assert tables.tasks.delete_plans([plan_id]) == 130  # the other tests' listings stay small


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
        assert (
            config["configs"]["triggeredBy"] == "ADHOC_TRIGGER"
        )  # Pinot's TaskTriggers of POST /tasks/execute
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


async def test_a_legacy_task_past_its_failure_tolerance_is_failing_while_subtasks_run(
    api: httpx.AsyncClient,
) -> None:
    """Helix's FAILING: one subtask failed (the batch tolerates none) while the other still runs."""
    table = await make_table(api)
    name = await _legacy(api, table, subtasksPerBatch="2", fatalIndex="0", sleepMs="4000")

    async def failing() -> None:
        assert (await api.get(f"/tasks/task/{name}/state")).json() == "FAILING"

    await eventually(failing)
    assert (await api.get(f"/tasks/{CONTRACT}/taskstates")).json()[name] == "FAILING"
    assert name in (await api.get(f"/tasks/{CONTRACT}/taskcounts", params={"state": "failing"})).json()
    states = (await api.get(f"/tasks/subtask/{name}/state")).json()
    assert states[f"{name}_0"] == "TASK_ABORTED" and states[f"{name}_1"] in ("RUNNING", None)

    async def failed() -> None:
        assert (await api.get(f"/tasks/task/{name}/state")).json() == "FAILED"

    await eventually(failed, timeout=30)
    count = (await api.get(f"/tasks/{CONTRACT}/taskcounts", params={"state": "FAILED"})).json()[name]
    assert count["aborted"] == 1 and count["completed"] == 1 and count["total"] == 2


async def test_pinot_task_name_forms_are_accepted(api: httpx.AsyncClient) -> None:
    """Every /tasks/task/* and /tasks/subtask/* path (all of them, read from the OpenAPI schema) takes
    Pinot's task name forms: a missing task is a 404 naming it, never a 400 for its name."""
    spec = (await api.get("/openapi.json")).json()
    paths = [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if path.startswith(("/tasks/task/{taskName}", "/tasks/subtask/{taskName}"))
        for method in operations
    ]
    assert len(paths) >= 9, paths  # state, config, runtime/config, debug, subtasks, DELETE; subtask ones
    for name in (
        f"Task_{CONTRACT}_1700000000000",
        f"Task_{CONTRACT}_{uuid.uuid4()}_1700000000000",  # Pinot's scheduled form
        f"Task_{CONTRACT}_{unique('adhoc')}",  # Pinot's ad hoc form
        f"Task_{CONTRACT}_my.adhoc-task_2",  # an ad hoc taskName with Pinot's other characters
    ):
        for method, path in paths:
            answer = await api.request(method, path.replace("{taskName}", name))
            assert_error(answer, 404, f"task {name} not found")
    assert_error(await api.get("/tasks/task/not-a-task/state"), 400, "invalid task name")
