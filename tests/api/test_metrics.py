"""The documented orchestration meters, scraped from /metrics as plans fail, abort, skip and block."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from taskplan.plans import PlanServices
from taskplan.progress import ProgressPoller
from tests.api.test_tables_and_triggers_api import COUNTING, SWITCH, create_table, new_name, wait_inactive
from tests.support.engine import cycle_of, eventually


async def scrape(http: httpx.AsyncClient, name: str, table: str) -> float:
    response = await http.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name in (name, f"{name}_total") and sample.labels.get("tableNameWithType", "") == table:
                return float(sample.value)
    return 0.0


async def start(http: httpx.AsyncClient, table: str, **configs: str) -> str:
    body = {
        "taskType": COUNTING,
        "tableName": table,
        "taskConfigs": {"enableTaskOrchestration": "true", **configs},
    }
    response = await http.post("/tasks/execute", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["taskPlanId"])


async def test_generation_failure_and_threshold_abort_are_counted(http: httpx.AsyncClient) -> None:
    bad = await create_table(http, new_name())
    await wait_inactive(http, await start(http, bad, badConfig="x"))
    assert await scrape(http, "taskGenerationFailureCount", bad) == 1
    assert await scrape(http, "orchestrationCycleFailure", bad) == 1
    assert await scrape(http, "taskPlanAborted", bad) == 0  # a config error is not an abort

    failing = await create_table(http, new_name())
    await wait_inactive(http, await start(http, failing, numBatches="10", fatal="true"))
    assert await scrape(http, "taskPlanAborted", failing) == 1


async def test_skipped_scheduled_trigger_is_counted(http: httpx.AsyncClient) -> None:
    table = await create_table(
        http,
        new_name(),
        {COUNTING: {"enableTaskOrchestration": "true", "numBatches": "30", "sleepMs": "300"}},
    )
    first = (await http.post("/tasks/schedule", params={"taskType": COUNTING, "tableName": table})).json()
    plan_id = cycle_of(first, COUNTING)["taskPlans"][table]
    await http.post("/tasks/schedule", params={"taskType": COUNTING, "tableName": table})
    assert await scrape(http, "scheduledTriggerActivePlanConflict", table) == 1
    await http.delete(f"/tasks/taskPlans/{plan_id}")
    await wait_inactive(http, plan_id)


async def test_progression_blocked_is_set_then_cleared(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    plan_id = await start(http, table, numBatches="6", sleepMs="300")
    await http.post("/cluster/configs", json={SWITCH: "false"})
    try:

        async def blocked() -> None:
            assert await scrape(http, "taskPlanProgressionBlocked", table) == 1

        await eventually(blocked)
    finally:
        await http.delete(f"/cluster/configs/{SWITCH}")

    async def cleared() -> None:
        assert await scrape(http, "taskPlanProgressionBlocked", table) == 0

    await eventually(cleared)
    await wait_inactive(http, plan_id)


async def test_orchestration_poll_sets_the_plan_gauges(http: httpx.AsyncClient, plans: PlanServices) -> None:
    table = await create_table(http, new_name())
    plan_id = await start(http, table, numBatches="30", subtasksPerBatch="2", sleepMs="300")
    poller = ProgressPoller(plans.reconciler, plans.reader)

    async def progressing() -> None:
        await poller.poll_once()
        assert await scrape(http, "activeTaskPlansCount", table) == 1
        assert await scrape(http, "taskPlanInputsToProcess", table) == 60
        assert await scrape(http, "taskPlanInputsProcessed", table) >= 2

    await eventually(progressing)
    assert await scrape(http, "orchestrationTimeSinceLastPollMs", "") < 60_000
    await http.delete(f"/tasks/taskPlans/{plan_id}")
    await poller.poll_once()
    assert await scrape(http, "activeTaskPlansCount", table) == 0
    assert await scrape(http, "taskPlansAbortingCount", table) in (0, 1)  # ABORTING until its batch ends
    await wait_inactive(http, plan_id)
    await poller.poll_once()
    assert await scrape(http, "taskPlansAbortingCount", table) == 0
