"""Checking a table config's task configs: every configured task type's validate_task_configs, run in a
controller activity (the API has no generators), as an Update of a long-lived validator workflow (started
with the first check), so no check adds a workflow execution.

Temporal holds at most 10 Updates in flight per workflow (the server's default), and Updates that pile up on
one workflow thrash it: each new one invalidates the workflow task carrying the others, which are aborted
(measured: 100 concurrent checks on one validator never finished). So a process sends at most
``PER_VALIDATOR`` checks at a time to each of a small fixed pool of validators (``taskplan-validator-<n>``)
and the others wait their turn; a check refused for load or aborted anyway is sent again after a short
jittered wait."""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from taskplan.models.table import TableConfig
from taskplan.names import CONTROLLER_TASK_QUEUE
from taskplan.workflows.validation import VALIDATOR_POOL, TableConfigValidatorWorkflow, validator_id

CHECK_TIMEOUT_S = 120.0  # no controller worker answering: the check fails rather than hang
RETRIED = {RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.NOT_FOUND}
PER_VALIDATOR = 2  # checks in flight per validator, per process

# Free turns (validator indexes), per event loop (asyncio queues belong to one).
_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Queue[int]] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def _turn() -> AsyncIterator[int]:
    """A validator with a free turn (waiting for one when all are busy)."""
    loop = asyncio.get_running_loop()
    turns = _turns.get(loop)
    if turns is None:
        turns = _turns[loop] = asyncio.Queue()
        for index in [i for i in range(VALIDATOR_POOL) for _ in range(PER_VALIDATOR)]:
            turns.put_nowait(index)
    index = await turns.get()
    try:
        yield index
    finally:
        turns.put_nowait(index)


async def validate_table_config(client: Client, config: TableConfig) -> list[str]:
    """The problems found (empty: valid)."""
    async with asyncio.timeout(CHECK_TIMEOUT_S):
        attempt = 0
        while True:
            attempt += 1
            async with _turn() as index:
                start = WithStartWorkflowOperation(
                    TableConfigValidatorWorkflow.run,
                    id=validator_id(index),
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
