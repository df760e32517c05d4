"""The documented /tasks/taskPlans endpoints, through HTTP, against a real dev server and workers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from taskplan.models.plan import PlanSource
from taskplan.plans import PlanServices
from tests.api.test_tables_and_triggers_api import create_table, new_name
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.engine import eventually

DOCUMENTED_FIELDS = {
    "planId",
    "tableNameWithType",
    "taskType",
    "status",
    "source",
    "properties",
    "batches",
    "inputsToProcess",
    "inputsBeingProcessed",
    "inputUnit",
    "statusMessage",
    "customStats",
}
BATCH_FIELDS = {"batchSequence", "submittedAtMs", "submittedTaskName", "taskState"}


async def test_plan_lifecycle_through_the_documented_endpoints(
    http: httpx.AsyncClient, plans: PlanServices, table: str
) -> None:
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "40", "sleepMs": "400"}
    )

    async def listed_active() -> None:
        ids = (await http.get("/tasks/taskPlans/active/ids", params={"tableNameWithType": table})).json()
        assert ids == [plan_id]

    await eventually(listed_active)
    active = (await http.get("/tasks/taskPlans/active", params={"taskType": COUNTING})).json()
    mine = [p for p in active if p["planId"] == plan_id]
    assert len(mine) == 1 and set(mine[0]) >= DOCUMENTED_FIELDS
    assert mine[0]["status"] == "ACTIVE" and mine[0]["source"] == "ADHOC_CONFIG"

    response = await http.get(f"/tasks/taskPlans/isActive/{plan_id}")
    assert response.status_code == 200 and response.json()["active"] is True

    response = await http.delete(f"/tasks/taskPlans/{plan_id}")
    assert response.status_code == 200
    assert response.json()["status"] == "ABORTING"

    async def stopped() -> None:
        assert (await http.get(f"/tasks/taskPlans/isActive/{plan_id}")).json()["active"] is False

    await eventually(stopped, timeout=60)
    plan = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    assert plan["status"] == "CANCELLED"
    assert plan["batches"] and set(plan["batches"][0]) >= BATCH_FIELDS
    assert (await http.get("/tasks/taskPlans/active/ids", params={"tableNameWithType": table})).json() == []
    ids = await http.get("/tasks/taskPlans", params={"tableNameWithType": table, "taskType": COUNTING})
    assert ids.json() == [plan_id]


async def test_batch_records_are_paged(http: httpx.AsyncClient, plans: PlanServices, table: str) -> None:
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "5"})
    await wait_for_end(plans.reader, plan_id)
    last_two = (await http.get(f"/tasks/taskPlans/{plan_id}", params={"batchLimit": 2})).json()
    assert [b["batchSequence"] for b in last_two["batches"]] == [3, 4]
    assert last_two["numBatches"] == 5
    page = (await http.get(f"/tasks/taskPlans/{plan_id}", params={"batchOffset": 1, "batchLimit": 2})).json()
    assert [b["batchSequence"] for b in page["batches"]] == [1, 2]


async def test_errors_are_pinot_shaped(http: httpx.AsyncClient, table: str) -> None:
    unknown = f"{table}__{COUNTING}__00000000-0000-0000-0000-000000000000"
    for method, path in (
        ("GET", f"/tasks/taskPlans/{unknown}"),
        ("GET", f"/tasks/taskPlans/isActive/{unknown}"),
        ("DELETE", f"/tasks/taskPlans/{unknown}"),
    ):
        response = await http.request(method, path)
        assert response.status_code == 404, path
        assert response.json() == {"code": 404, "error": f"task plan {unknown} not found"}
    bad = await http.get("/tasks/taskPlans/not-a-plan-id")
    assert bad.status_code == 400 and "invalid task plan id" in bad.json()["error"]
    missing = await http.get("/tasks/taskPlans", params={"tableNameWithType": table})
    assert missing.status_code == 400 and "taskType" in missing.json()["error"]
    wrong = await http.get("/tasks/taskPlans/active", params={"tableNameWithType": "no_type_suffix"})
    assert wrong.status_code == 400 and "_OFFLINE or _REALTIME" in wrong.json()["error"]
    limit = await http.get(f"/tasks/taskPlans/{unknown}", params={"batchLimit": -1})
    assert limit.status_code == 400


async def test_active_listing_reads_snapshots_that_keep_up_with_the_plan(
    http: httpx.AsyncClient, plans: PlanServices, table: str
) -> None:
    """The listing reads each plan's snapshot (saved at every batch's end) and its task records instead of
    asking every plan: it is at most the running batch behind the plan itself, and shows an abort at once."""
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "40", "sleepMs": "300"}
    )

    async def three_batches_listed() -> dict[str, Any]:
        active = (await http.get("/tasks/taskPlans/active", params={"tableNameWithType": table})).json()
        assert [p["planId"] for p in active] == [plan_id]
        assert len(active[0]["batches"]) >= 3
        return dict(active[0])

    listed = await eventually(three_batches_listed, timeout=30)
    live = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    listed_names = [b["submittedTaskName"] for b in listed["batches"]]
    live_names = [b["submittedTaskName"] for b in live["batches"]]
    assert live_names[: len(listed_names)] == listed_names
    assert len(live_names) - len(listed_names) <= 1
    assert listed["batches"][0] == live["batches"][0]
    assert 0 <= live["inputsProcessed"] - listed["inputsProcessed"] <= 1
    params: dict[str, str | int] = {"tableNameWithType": table, "batchLimit": 2}
    limited = (await http.get("/tasks/taskPlans/active", params=params)).json()
    sequences = [b["batchSequence"] for b in limited[0]["batches"]]
    assert len(sequences) == 2 and sequences[1] == sequences[0] + 1  # the two most recent
    assert sequences[1] >= listed["batches"][-1]["batchSequence"]

    assert (await http.delete(f"/tasks/taskPlans/{plan_id}")).status_code == 200

    async def aborting_listed() -> None:
        active = (await http.get("/tasks/taskPlans/active", params={"tableNameWithType": table})).json()
        assert active == [] or active[0]["status"] == "ABORTING"

    await eventually(aborting_listed, timeout=30)


# ---------------------------------------------------------------- failure thresholds, as task configs


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("maxFailedBatches", "-1"),
        ("maxFailedBatches", "2.5"),
        ("maxFailedSubtasksPerBatch", "-3"),
        ("maxFailedSubtasksPerBatch", "some"),
    ],
)
async def test_a_trigger_with_a_bad_failure_threshold_is_refused(
    http: httpx.AsyncClient, key: str, value: str
) -> None:
    table = await create_table(http, new_name())
    configs = {"enableTaskOrchestration": "true", key: value}
    response = await http.post(
        "/tasks/execute", json={"taskType": COUNTING, "tableName": table, "taskConfigs": configs}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert f"{key} must be an integer from 0 to 2147483647, not {value!r}" in error
    ids = await http.get("/tasks/taskPlans", params={"tableNameWithType": table, "taskType": COUNTING})
    assert ids.json() == []  # nothing started
    # A table config that schedules such a plan is refused too.
    name = new_name()
    schema = {"schemaName": name, "dimensionFieldSpecs": [{"name": "country", "dataType": "STRING"}]}
    assert (await http.post("/schemas", json=schema)).status_code == 200
    task = {"taskTypeConfigsMap": {COUNTING: {key: value}}}
    config = {"tableName": name, "tableType": "OFFLINE", "task": task}
    response = await http.post("/tables", json=config)
    assert response.status_code == 400 and key in response.json()["error"]


async def test_a_plans_properties_show_its_failure_thresholds(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    configs = {"enableTaskOrchestration": "true", "numBatches": "1", "maxFailedBatches": " 7 "}
    response = await http.post(
        "/tasks/execute", json={"taskType": COUNTING, "tableName": table, "taskConfigs": configs}
    )
    assert response.status_code == 200, response.text
    plan_id = response.json()["taskPlanId"]
    plan = (await http.get(f"/tasks/taskPlans/{plan_id}", params={"waitForTerminalSeconds": 60})).json()
    assert plan["status"] == "COMPLETED"
    assert plan["properties"]["maxFailedBatches"] == "7"  # as the plan runs with it
    assert plan["properties"]["maxFailedSubtasksPerBatch"] == "0"  # the default
