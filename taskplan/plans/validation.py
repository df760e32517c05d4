"""Checking a table config's task configs: every configured task type's validate_task_configs, run in a
controller activity (the API has no generators), as an Update of a long-lived validator workflow (started
with the first check), so no check adds a workflow execution.

Temporal holds at most 10 Updates in flight per workflow (the server's default) and aborts the ones in
flight when a workflow task is lost, so a burst of triggers (hundreds of plans started at once) is spread
over a small fixed pool of validators (``taskplan-validator-<n>``), and a check refused for load or aborted
is sent again, to another validator, after a short jittered wait."""

from __future__ import annotations

import asyncio
import random

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from taskplan.models.table import TableConfig
from taskplan.names import CONTROLLER_TASK_QUEUE
from taskplan.workflows.validation import VALIDATOR_POOL, TableConfigValidatorWorkflow, validator_id

CHECK_TIMEOUT_S = 120.0  # no controller worker answering: the check fails rather than hang
RETRIED = {RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.NOT_FOUND}


async def validate_table_config(client: Client, config: TableConfig) -> list[str]:
    """The problems found (empty: valid)."""
    async with asyncio.timeout(CHECK_TIMEOUT_S):
        attempt = 0
        while True:
            attempt += 1
            start = WithStartWorkflowOperation(
                TableConfigValidatorWorkflow.run,
                id=validator_id(random.randrange(VALIDATOR_POOL)),
                task_queue=CONTROLLER_TASK_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                static_summary="validates table configs' task configs (one Update per check)",
            )
            try:
                return await client.execute_update_with_start_workflow(
                    TableConfigValidatorWorkflow.validate, config, start_workflow_operation=start
                )
            except WorkflowUpdateRPCTimeoutOrCancelledError:
                pass
            except RPCError as err:
                if err.status not in RETRIED:
                    raise
            await asyncio.sleep(random.uniform(0.05, min(1.0, 0.05 * 2**attempt)))
