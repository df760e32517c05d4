"""The workflow list an operator reads: table creates, updates and triggers validate their task configs
(plugin code, in a controller activity) as Updates of long-lived validator workflows (a small fixed pool),
adding no execution per call."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from taskplan.names import plan_workflow_id
from taskplan.schedules import schedule_id, trigger_workflow_id
from taskplan.workflows.validation import VALIDATOR_ID_PREFIX, VALIDATOR_POOL
from tests.api.test_tables_and_triggers_api import COUNTING, create_table, new_name, wait_inactive
from tests.support.engine import eventually

OPERATORS_VIEW = "plans, legacy tasks and cron firings (no housekeeping)"
BAD_FILTER = {"SegmentPurgeTask": {"purgeFilter": "country = 'US'; DROP TABLE x"}}


async def executions(engine: Client, query: str) -> list[str]:
    return [f"{e.id}/{e.status.name if e.status else ''}" async for e in engine.list_workflows(query)]


async def test_table_configs_are_validated_without_a_workflow_per_call(
    http: httpx.AsyncClient, engine: Client
) -> None:
    before = await executions(
        engine, "WorkflowType = 'ValidateTableConfig' OR WorkflowType = 'TableConfigValidator'"
    )
    name = new_name()
    table = await create_table(http, name, {"SegmentPurgeTask": {"purgeFilter": "country = 'US'"}})
    config = {"tableName": name, "tableType": "OFFLINE", "task": {"taskTypeConfigsMap": BAD_FILTER}}
    refused = await http.put(f"/tables/{name}", json=config)
    # Plugin code still checks the configs: the purge filter's second statement is refused.
    assert refused.status_code == 400 and "invalid task configs" in refused.json()["error"], refused.text
    for _ in range(3):
        config["task"] = {"taskTypeConfigsMap": {"SegmentPurgeTask": {"purgeFilter": "country = 'FR'"}}}
        assert (await http.put(f"/tables/{name}", json=config)).status_code == 200
    execute = await http.post(
        "/tasks/execute",
        json={"taskType": "SegmentPurgeTask", "tableName": table, "taskConfigs": {"purgeFilter": "nope("}},
    )
    assert execute.status_code == 400 and "invalid task configs" in execute.json()["error"]

    after = await executions(
        engine, "WorkflowType = 'ValidateTableConfig' OR WorkflowType = 'TableConfigValidator'"
    )
    assert not [e for e in after if e.startswith("validate-")], after
    new = set(after) - set(before)
    # At most the validators' first starts in this session (a fixed pool), and they run on.
    pool = {f"{VALIDATOR_ID_PREFIX}{n}/{WorkflowExecutionStatus.RUNNING.name}" for n in range(VALIDATOR_POOL)}
    assert new <= pool, after
    running = await executions(
        engine, "WorkflowType = 'TableConfigValidator' AND ExecutionStatus = 'Running'"
    )
    assert 1 <= len(running) <= VALIDATOR_POOL


def documented_views() -> dict[str, str]:
    """The README's saved queries (Temporal Web UI and CLI), by view name, as written there."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = readme.split("| view | query |\n| --- | --- |\n", 1)[1].split("\n\n", 1)[0]
    rows = (re.fullmatch(r"\| (.+?) \| `(.+)` \|", line) for line in table.splitlines())
    return {row[1]: row[2] for row in rows if row}


async def test_the_documented_views_show_plans_tasks_and_firings_with_their_search_attributes(
    http: httpx.AsyncClient, engine: Client
) -> None:
    views = documented_views()
    operators = views[OPERATORS_VIEW]
    since = (datetime.now(UTC) - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    configs = {"schedule": "0 0 4 * * ?", "enableTaskOrchestration": "true", "numBatches": "1"}
    table = await create_table(http, new_name(), {COUNTING: configs})
    plan = await http.post(
        "/tasks/execute",
        json={
            "taskType": COUNTING,
            "tableName": table,
            "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "1"},
        },
    )
    assert plan.status_code == 200, plan.text
    legacy = await http.post("/tasks/execute", json={"taskType": "TestLegacyTask", "tableName": table})
    assert legacy.status_code == 200, legacy.text
    await engine.get_schedule_handle(schedule_id(table, COUNTING)).trigger()  # a cron firing, now
    # Housekeeping as the cluster has it (its types; on a queue nobody polls: the views pick by type).
    idle = f"nobody-{uuid.uuid4()}"
    housekeeping = [
        await engine.start_workflow(name, id=f"{name}-{uuid.uuid4()}", task_queue=idle)
        for name in ("ClusterJobs", "TableConfigValidator")
    ]
    try:
        expected = {
            plan_workflow_id(table, COUNTING): "TaskPlan",
            legacy.json()[table]: "TaskBatch",
            trigger_workflow_id(table, COUNTING): "CronTrigger",
        }

        async def listed() -> None:
            shown = [e async for e in engine.list_workflows(f"({operators}) AND StartTime > '{since}'")]
            firing = trigger_workflow_id(table, COUNTING)  # Temporal appends each firing's time
            kinds = {firing if e.id.startswith(firing) else e.id: e.workflow_type for e in shown}
            assert {k: v for k, v in kinds.items() if k in expected} == expected, kinds
            assert not {h.id for h in housekeeping} & {e.id for e in shown}
            for e in shown:  # every one (this test's and any other) carries what an operator filters by
                table_attr, type_attr = (
                    e.search_attributes.get(k) for k in ("TaskPlanTable", "TaskPlanType")
                )
                assert table_attr and type_attr, (e.id, e.search_attributes)
                if e.id in expected or e.id.startswith(firing):
                    assert table_attr == [table] and type_attr[0] in (COUNTING, "TestLegacyTask"), e.id

        await eventually(listed, timeout=30)
        shown = {
            e.id async for e in engine.list_workflows(f"({views['housekeeping']}) AND StartTime > '{since}'")
        }
        assert {h.id for h in housekeeping} <= shown
        for query in views.values():  # each view is a query Temporal takes as written
            await engine.count_workflows(query.replace("myTable_OFFLINE", table))
    finally:
        for handle in housekeeping:
            await handle.terminate("test over")
        await wait_inactive(http, plan.json()["taskPlanId"])
        assert (await http.delete(f"/tables/{table}")).status_code == 200
