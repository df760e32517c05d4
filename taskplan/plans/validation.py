"""Checking a table config's task configs: every configured task type's validate_task_configs, run in a
controller activity (the API has no generators), as an Update of the one long-lived validator workflow
(started with the first check), so no check adds a workflow execution."""

from __future__ import annotations

import asyncio

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from taskplan.models.table import TableConfig
from taskplan.names import CONTROLLER_TASK_QUEUE
from taskplan.workflows.validation import VALIDATOR_WORKFLOW_ID, TableConfigValidatorWorkflow

CHECK_TIMEOUT_S = 120.0  # no controller worker answering: the check fails rather than hang
ATTEMPTS = 5  # an Update that met the validator continuing as new is sent again


async def validate_table_config(client: Client, config: TableConfig) -> list[str]:
    """The problems found (empty: valid)."""
    async with asyncio.timeout(CHECK_TIMEOUT_S):
        for attempt in range(1, ATTEMPTS + 1):
            start = WithStartWorkflowOperation(
                TableConfigValidatorWorkflow.run,
                id=VALIDATOR_WORKFLOW_ID,
                task_queue=CONTROLLER_TASK_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                static_summary="validates table configs' task configs (one Update per check)",
            )
            try:
                return await client.execute_update_with_start_workflow(
                    TableConfigValidatorWorkflow.validate, config, start_workflow_operation=start
                )
            except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError):
                if attempt == ATTEMPTS:
                    raise
                await asyncio.sleep(0.1 * attempt)
    raise AssertionError("unreachable")
