"""The workflow list an operator reads: table creates, updates and triggers validate their task configs
(plugin code, in a controller activity) as Updates of long-lived validator workflows (a small fixed pool),
adding no execution per call."""

from __future__ import annotations

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from taskplan.workflows.validation import VALIDATOR_ID_PREFIX, VALIDATOR_POOL
from tests.api.test_tables_and_triggers_api import create_table, new_name

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
