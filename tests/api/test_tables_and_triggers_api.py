"""Schemas, tables, cluster configs and ad hoc triggers through HTTP, with the documented trigger rules."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.support.engine import cycle_of, eventually

COUNTING = "TestCountingTask"
SWITCH = "controller.startree.task.manager.enableTaskOrchestration"


def new_name() -> str:
    return f"tbl{uuid.uuid4().hex[:10]}"


async def create_table(
    http: httpx.AsyncClient,
    name: str,
    task_configs: dict[str, dict[str, str]] | None = None,
    table_type: str = "OFFLINE",
) -> str:
    schema = {"schemaName": name, "dimensionFieldSpecs": [{"name": "country", "dataType": "STRING"}]}
    assert (await http.post("/schemas", json=schema)).status_code == 200
    config = {"tableName": name, "tableType": table_type, "task": {"taskTypeConfigsMap": task_configs or {}}}
    response = await http.post("/tables", json=config)
    assert response.status_code == 200, response.text
    return f"{name}_{table_type}"


async def wait_inactive(http: httpx.AsyncClient, plan_id: str) -> None:
    async def inactive() -> None:
        assert (await http.get(f"/tasks/taskPlans/isActive/{plan_id}")).json()["active"] is False

    await eventually(inactive, timeout=60)


async def test_table_and_schema_endpoints(http: httpx.AsyncClient) -> None:
    name = new_name()
    table = await create_table(http, name, {COUNTING: {"numBatches": "1"}})
    assert name in (await http.get("/tables")).json()["tables"]
    got = (await http.get(f"/tables/{name}")).json()
    assert list(got) == ["OFFLINE"] and got["OFFLINE"]["tableName"] == table
    assert (await http.get(f"/tables/{table}")).status_code == 200
    assert (await http.get(f"/schemas/{name}")).json()["schemaName"] == name

    again = await http.post("/tables", json={"tableName": name, "tableType": "OFFLINE"})
    assert again.status_code == 409 and "already exists" in again.json()["error"]

    update = {
        "tableName": name,
        "tableType": "OFFLINE",
        "task": {"taskTypeConfigsMap": {COUNTING: {"numBatches": "2"}}},
    }
    assert (await http.put(f"/tables/{name}", json=update)).status_code == 200
    got = (await http.get(f"/tables/{name}", params={"type": "OFFLINE"})).json()
    assert got["OFFLINE"]["task"]["taskTypeConfigsMap"][COUNTING] == {"numBatches": "2"}
    mismatch = await http.put(f"/tables/{name}", json={**update, "tableName": "other"})
    assert mismatch.status_code == 400 and "does not match" in mismatch.json()["error"]

    assert (await http.delete(f"/tables/{name}", params={"type": "OFFLINE"})).status_code == 200
    missing = await http.get(f"/tables/{name}")
    assert missing.status_code == 404 and missing.json() == {
        "code": 404,
        "error": f"table {name} does not exist",
    }


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"tableName": "x", "tableType": "OFFLINE"}, 400, "schema x does not exist"),
        ({"tableName": "x", "tableType": "HYBRID"}, 400, "tableType"),
        ({"tableName": "../etc", "tableType": "OFFLINE"}, 400, "invalid table name"),
        ({"tableType": "OFFLINE"}, 400, "tableName"),
    ],
)
async def test_bad_table_configs_are_refused(
    http: httpx.AsyncClient, body: dict[str, str], status: int, fragment: str
) -> None:
    response = await http.post("/tables", json=body)
    assert response.status_code == status
    assert fragment in response.json()["error"]


async def test_unknown_task_type_in_table_config_is_refused(http: httpx.AsyncClient) -> None:
    name = new_name()
    await http.post(
        "/schemas", json={"schemaName": name, "metricFieldSpecs": [{"name": "n", "dataType": "LONG"}]}
    )
    config = {"tableName": name, "tableType": "OFFLINE", "task": {"taskTypeConfigsMap": {"NoSuchTask": {}}}}
    response = await http.post("/tables", json=config)
    assert response.status_code == 400 and "unknown task types: NoSuchTask" in response.json()["error"]


async def test_execute_creates_a_plan_and_rejects_a_second_with_409(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    body = {
        "taskType": COUNTING,
        "tableName": table,
        "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "20", "sleepMs": "300"},
    }
    first = await http.post("/tasks/execute", json=body)
    assert first.status_code == 200, first.text
    plan_id = first.json()["taskPlanId"]
    assert plan_id.startswith(f"{table}__{COUNTING}__")
    second = await http.post("/tasks/execute", json=body)
    assert second.status_code == 409 and plan_id in second.json()["error"]
    plan = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    assert plan["source"] == "ADHOC_CONFIG" and plan["properties"]["numBatches"] == "20"
    await http.delete(f"/tasks/taskPlans/{plan_id}")
    await wait_inactive(http, plan_id)


async def test_fifty_concurrent_executes_make_one_plan(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    body = {
        "taskType": COUNTING,
        "tableName": table,
        "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "2", "sleepMs": "200"},
    }
    responses = await asyncio.gather(*(http.post("/tasks/execute", json=body) for _ in range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 49
    plan_id = next(r.json()["taskPlanId"] for r in responses if r.status_code == 200)
    assert all(plan_id in r.json()["error"] for r in responses if r.status_code == 409)
    await wait_inactive(http, plan_id)


async def test_legacy_flow_when_not_orchestrated(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    plain = await http.post(
        "/tasks/execute", json={"taskType": COUNTING, "tableName": table, "taskConfigs": {}}
    )
    assert plain.status_code == 200
    assert list(plain.json()) == [table] and plain.json()[table].startswith(f"Task_{COUNTING}_")
    # A task type without orchestration support ignores the flag and runs as before.
    legacy = await http.post(
        "/tasks/execute",
        json={
            "taskType": "TestLegacyTask",
            "tableName": table,
            "taskConfigs": {"enableTaskOrchestration": "true"},
        },
    )
    assert legacy.status_code == 200 and legacy.json()[table].startswith("Task_TestLegacyTask_")
    assert (await http.get("/tasks/taskPlans/active/ids", params={"tableNameWithType": table})).json() == []


async def test_force_legacy_wins_and_orchestration_only_refuses_it(http: httpx.AsyncClient) -> None:
    table = await create_table(
        http,
        new_name(),
        {
            COUNTING: {"forceLegacyTaskFlow": "true"},
            "TestOrchestratedOnlyTask": {"forceLegacyTaskFlow": "true"},
        },
    )
    orchestrate = {"enableTaskOrchestration": "true"}
    forced = await http.post(
        "/tasks/execute", json={"taskType": COUNTING, "tableName": table, "taskConfigs": orchestrate}
    )
    assert forced.status_code == 200 and list(forced.json()) == [table]  # legacy answer, no plan
    refused = await http.post(
        "/tasks/execute",
        json={"taskType": "TestOrchestratedOnlyTask", "tableName": table, "taskConfigs": orchestrate},
    )
    assert refused.status_code == 400
    assert "only runs as an orchestrated task plan" in refused.json()["error"]
    assert "forceLegacyTaskFlow" in refused.json()["error"]
    # Drop it: scheduled cycles span every table, and this one would make them all legacy.
    assert (await http.delete(f"/tables/{table}")).status_code == 200


async def test_cluster_switch_off_routes_triggers_to_legacy(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    assert (await http.post("/cluster/configs", json={SWITCH: "false"})).status_code == 200
    try:
        assert (await http.get("/cluster/configs")).json()[SWITCH] == "false"
        response = await http.post(
            "/tasks/execute",
            json={
                "taskType": COUNTING,
                "tableName": table,
                "taskConfigs": {"enableTaskOrchestration": "true"},
            },
        )
        assert response.status_code == 200 and list(response.json()) == [table]
    finally:
        assert (await http.delete(f"/cluster/configs/{SWITCH}")).status_code == 200
    assert (await http.get("/cluster/configs")).json()[SWITCH] == "true"
    bad = await http.post("/cluster/configs", json={SWITCH: "maybe"})
    assert bad.status_code == 400 and "true or false" in bad.json()["error"]
    assert (await http.delete("/cluster/configs/not.set")).status_code == 200  # Pinot: unset is fine


async def test_execute_errors(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    unknown_type = await http.post("/tasks/execute", json={"taskType": "NoSuchTask", "tableName": table})
    assert unknown_type.status_code == 404 and "NoSuchTask" in unknown_type.json()["error"]
    unknown_table = await http.post(
        "/tasks/execute", json={"taskType": COUNTING, "tableName": "nope_OFFLINE"}
    )
    assert unknown_table.status_code == 404 and "nope_OFFLINE" in unknown_table.json()["error"]
    bad_config = await http.post(
        "/tasks/execute",
        json={"taskType": COUNTING, "tableName": table, "taskConfigs": {"enableTaskOrchestration": 1}},
    )
    assert bad_config.status_code == 400
    malformed = await http.post(
        "/tasks/execute", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400


async def test_dropping_a_table_removes_its_plans(http: httpx.AsyncClient) -> None:
    name = new_name()
    table = await create_table(http, name)
    done = (
        await http.post(
            "/tasks/execute",
            json={
                "taskType": COUNTING,
                "tableName": table,
                "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "1"},
            },
        )
    ).json()["taskPlanId"]
    await wait_inactive(http, done)
    running = await http.post(
        "/tasks/execute",
        json={
            "taskType": "TestSingleAttemptTask",
            "tableName": table,
            "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "50", "sleepMs": "500"},
        },
    )
    running_id = running.json()["taskPlanId"]
    assert (await http.delete(f"/tables/{name}")).status_code == 200
    for plan_id in (done, running_id):
        assert (await http.get(f"/tasks/taskPlans/{plan_id}")).status_code == 404
        assert (await http.get(f"/tasks/taskPlans/isActive/{plan_id}")).status_code == 404
    assert (await http.get("/tasks/taskPlans/active/ids", params={"tableNameWithType": table})).json() == []
    listed = await http.get("/tasks/taskPlans", params={"tableNameWithType": table, "taskType": COUNTING})
    assert listed.json() == []


async def test_switch_off_holds_active_plans_until_it_is_on_again(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    plan_id = (
        await http.post(
            "/tasks/execute",
            json={
                "taskType": COUNTING,
                "tableName": table,
                "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "4", "sleepMs": "300"},
            },
        )
    ).json()["taskPlanId"]
    await http.post("/cluster/configs", json={SWITCH: "false"})
    try:

        async def blocked() -> dict[str, Any]:
            plan: dict[str, Any] = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
            assert "progression blocked" in plan["statusMessage"] and plan["status"] == "ACTIVE"
            return plan

        held = await eventually(blocked)
        await asyncio.sleep(2)
        still = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
        assert still["numBatches"] == held["numBatches"] < 4  # no new batch while switched off
    finally:
        await http.delete(f"/cluster/configs/{SWITCH}")
    await wait_inactive(http, plan_id)
    done = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    assert done["status"] == "COMPLETED" and done["numBatches"] == 4


async def test_schedule_runs_one_cycle_with_the_documented_rules(http: httpx.AsyncClient) -> None:
    orchestrated = await create_table(
        http,
        new_name(),
        {COUNTING: {"enableTaskOrchestration": "true", "numBatches": "30", "sleepMs": "300"}},
    )
    plain = await create_table(http, new_name(), {COUNTING: {"subtasksPerBatch": "1"}})
    first = await http.post("/tasks/schedule", params={"taskType": COUNTING})
    assert first.status_code == 200, first.text
    cycle = cycle_of(first.json(), COUNTING)
    plan_id = cycle["taskPlans"][orchestrated]
    assert cycle["legacyTasks"][plain].startswith(f"Task_{COUNTING}_")
    assert set(first.json()[COUNTING].split(",")) >= {plan_id, cycle["legacyTasks"][plain]}
    plan = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    assert plan["source"] == "TABLE_CONFIG" and plan["properties"]["numBatches"] == "30"
    # A second cycle while the plan is active skips that table instead of failing.
    second = (
        await http.post("/tasks/schedule", params={"taskType": COUNTING, "tableName": orchestrated})
    ).json()
    assert cycle_of(second, COUNTING)["skipped"] == {orchestrated: plan_id}
    assert cycle_of(second, COUNTING)["taskPlans"] == {} and COUNTING not in second
    await http.delete(f"/tasks/taskPlans/{plan_id}")
    await wait_inactive(http, plan_id)


async def test_force_legacy_on_one_table_makes_the_whole_cycle_legacy(http: httpx.AsyncClient) -> None:
    task = "TestSingleAttemptTask"
    one = await create_table(http, new_name(), {task: {"enableTaskOrchestration": "true", "numBatches": "1"}})
    two = await create_table(
        http, new_name(), {task: {"enableTaskOrchestration": "true", "forceLegacyTaskFlow": "true"}}
    )
    cycle = cycle_of((await http.post("/tasks/schedule", params={"taskType": task})).json(), task)
    assert cycle["taskPlans"] == {}
    assert "forceLegacyTaskFlow" in cycle["legacyReason"]
    assert one in cycle["legacyTasks"] and two in cycle["legacyTasks"]
    assert cycle["legacyTasks"][one] == cycle["legacyTasks"][two]  # one batch for the whole cycle
    only = await create_table(http, new_name(), {"TestOrchestratedOnlyTask": {"forceLegacyTaskFlow": "true"}})
    failed = (
        await http.post("/tasks/schedule", params={"taskType": "TestOrchestratedOnlyTask", "tableName": only})
    ).json()
    assert "only runs orchestrated" in cycle_of(failed, "TestOrchestratedOnlyTask")["errors"][only]
    assert "only runs orchestrated" in failed["generationErrors"]
    for table in (one, two, only):  # later cycles span every table: leave no forced-legacy table behind
        assert (await http.delete(f"/tables/{table}")).status_code == 200
