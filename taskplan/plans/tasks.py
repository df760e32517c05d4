"""Reading parent tasks (Pinot's task endpoints): a plan's batches are task records in the catalog (the
running one's live subtasks are asked of its plan); a legacy task is a TaskBatch workflow."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from taskplan.catalog.tasks import StoredTask, TaskStore
from taskplan.models.errors import TaskNotFoundError
from taskplan.models.task import (
    BatchDetails,
    SubtaskConfig,
    SubtaskCounts,
    SubtaskQuery,
    SubtaskRecord,
    SubtaskState,
    TaskState,
)
from taskplan.names import SearchAttributes, parse_plan_id, parse_task_name, plan_workflow_id, subtask_name
from taskplan.plans.visibility import BATCH_WORKFLOW_TYPE, memo_tables, quote, task_state_of
from taskplan.workflows.batch import BatchWorkflow
from taskplan.workflows.models import BatchPageQuery
from taskplan.workflows.task_plan import TaskPlanWorkflow

# A finished batch is replayed to answer a query: allow time for a large one (10,000 subtasks).
QUERY_TIMEOUT = timedelta(seconds=90)


class TaskReader:
    def __init__(self, client: Client, store: TaskStore) -> None:
        self.client = client
        self.store = store  # the task records of plan batches

    async def list_tasks(self, task_type: str, limit: int = 10_000) -> dict[str, tuple[TaskState, list[str]]]:
        """Parent tasks (plan batches, legacy tasks) of a task type: name -> (state, every table it works
        on; empty when not known), newest first."""
        query = f"WorkflowType = '{BATCH_WORKFLOW_TYPE}' AND TaskPlanType = {quote(task_type)}"
        found: list[tuple[str, TaskState, list[str]]] = []
        async for execution in self.client.list_workflows(query, limit=limit):
            state = task_state_of(execution.typed_search_attributes.get(SearchAttributes.TASK_STATE))
            found.append((execution.id, state, await memo_tables(execution)))
        stored = await asyncio.to_thread(self.store.list_tasks, task_type, limit)
        found.extend((name, state, [table]) for name, (state, table) in stored.items())
        # Newest first: a task name ends with its submission time in milliseconds.
        found.sort(key=lambda item: parse_task_name(item[0])[1], reverse=True)
        return {name: (state, tables) for name, state, tables in found[:limit]}

    async def _stored_task(self, name: str) -> StoredTask | None:
        return await asyncio.to_thread(self.store.get, name)

    async def _describe_task(self, name: str) -> WorkflowExecutionDescription:
        try:
            return await self.client.get_workflow_handle(name).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise TaskNotFoundError(name) from None
            raise

    async def task_tables(self, name: str) -> list[str]:
        """Every table a parent task works on (a plan's batch: one; a legacy task: one or more); empty
        when not known (a legacy task started before its tables were recorded)."""
        stored = await self._stored_task(name)
        if stored is not None:
            return [stored.table_name]
        return await memo_tables(await self._describe_task(name))

    async def task_state(self, name: str) -> TaskState:
        stored = await self._stored_task(name)
        if stored is not None:
            return stored.state
        desc = await self._describe_task(name)
        return task_state_of(desc.typed_search_attributes.get(SearchAttributes.TASK_STATE))

    async def task_counts(self, name: str) -> SubtaskCounts:
        if await self._stored_task(name) is not None:
            return (await self.batch_details(name, SubtaskQuery(limit=0))).counts
        desc = await self._describe_task(name)
        handle = self.client.get_workflow_handle_for(BatchWorkflow.run, name, run_id=desc.run_id)
        if desc.status == WorkflowExecutionStatus.COMPLETED:
            # A finished batch answers from its result: no replay needed.
            result = await handle.result(follow_runs=False)
            unknown = result.num_subtasks - result.num_completed - result.num_failed
            return SubtaskCounts(
                total=result.num_subtasks,
                completed=result.num_completed,
                failed=result.num_failed,
                unknown=unknown,
            )
        return (await self.batch_details(name, SubtaskQuery(limit=0))).counts

    async def subtask_configs(self, name: str, query: SubtaskQuery | None = None) -> list[SubtaskConfig]:
        page = query or SubtaskQuery()
        stored = await self._stored_task(name)
        if stored is not None:
            batch = stored.batch()
            end = min(len(batch.subtasks), page.offset + page.limit)
            return [
                SubtaskConfig(
                    subtask_name=subtask_name(name, i),
                    task_type=stored.task_type,
                    configs=batch.subtask_configs(i),
                )
                for i in range(page.offset, end)
            ]
        await self._describe_task(name)
        handle = self.client.get_workflow_handle_for(BatchWorkflow.run, name)
        return await handle.query(BatchWorkflow.subtask_configs, page, rpc_timeout=QUERY_TIMEOUT)

    async def batch_details(self, name: str, query: SubtaskQuery | None = None) -> BatchDetails:
        page = query or SubtaskQuery()
        stored = await self._stored_task(name)
        if stored is not None:
            if stored.state is TaskState.IN_PROGRESS:
                live = await self._live_batch_details(stored.plan_id, name, page)
                if live is not None:
                    return live
                # Ended this very moment (its record is being written) or its plan is gone: read again.
                stored = await self._stored_task(name) or stored
            return _stored_details(stored, page)
        handle = self.client.get_workflow_handle_for(BatchWorkflow.run, name)
        try:
            return await handle.query(BatchWorkflow.details, page, rpc_timeout=QUERY_TIMEOUT)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise TaskNotFoundError(name) from None
            raise

    async def _live_batch_details(self, plan_id: str, name: str, page: SubtaskQuery) -> BatchDetails | None:
        """A plan's running batch: its subtasks run in the plan, which answers for them."""
        table, task_type = parse_plan_id(plan_id)
        handle = self.client.get_workflow_handle_for(TaskPlanWorkflow.run, plan_workflow_id(table, task_type))
        try:
            return await handle.query(
                TaskPlanWorkflow.batch_details,
                BatchPageQuery(task_name=name, page=page),
                rpc_timeout=QUERY_TIMEOUT,
            )
        except RPCError:
            return None  # the plan is not running (any more)


def _stored_details(stored: StoredTask, page: SubtaskQuery) -> BatchDetails:
    """A plan batch's details from its task record (ended, or orphaned by a plan that stopped)."""
    ended = stored.ended()
    records = ended.subtasks if ended is not None else []
    if not records:
        # Not reported: waiting while the batch runs; once it ended (aborted before it started, or ended
        # without its plan reporting it), never started or their outcome unknown.
        state = SubtaskState.STOPPED if stored.state.is_final else SubtaskState.INIT
        records = [
            SubtaskRecord(subtask_name=subtask_name(stored.task_name, i), state=state)
            for i in range(stored.num_subtasks)
        ]
    totals = ended.result.totals if ended is not None else {}
    completed, failed = (ended.result.num_completed, ended.result.num_failed) if ended is not None else (0, 0)
    offset = max(0, page.offset)
    return BatchDetails(
        task_name=stored.task_name,
        task_type=stored.task_type,
        plan_id=stored.plan_id,
        batch_sequence=stored.batch_sequence,
        table_names_with_type=[stored.table_name],
        task_state=stored.state,
        submitted_at_ms=stored.submitted_ms,
        status_message=stored.message,
        num_subtasks=stored.num_subtasks,
        subtasks=records[offset : offset + max(0, page.limit)],
        totals=dict(totals),
        counts=SubtaskCounts.of(records, completed=completed, failed=failed),
    )
