"""Reading parent tasks (Pinot's task endpoints): a plan's batches are task records in the catalog (the
running one's live subtasks are asked of its plan); a legacy task is a TaskBatch workflow."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from taskplan.catalog.tasks import StoredTask, TaskStore
from taskplan.models.errors import TaskNotFoundError
from taskplan.models.plan import PlanStatus
from taskplan.models.task import (
    BatchDetails,
    PinotTaskCount,
    SubtaskConfig,
    SubtaskCounts,
    SubtaskOptions,
    SubtaskQuery,
    SubtaskRecord,
    SubtaskState,
    TaskState,
)
from taskplan.names import SearchAttributes, parse_plan_id, plan_workflow_id, subtask_name
from taskplan.plans.visibility import BATCH_WORKFLOW_TYPE, memo_tables, quote, task_state_of
from taskplan.workflows.batch import BatchWorkflow
from taskplan.workflows.models import BatchPageQuery
from taskplan.workflows.task_plan import TaskPlanWorkflow

# A finished batch is replayed to answer a query: allow time for a large one (10,000 subtasks).
QUERY_TIMEOUT = timedelta(seconds=90)
PAGE = 1000


@dataclass(frozen=True)
class PendingSubtask:
    """A subtask's activity as Temporal has it pending: scheduled (waiting for a minion: Pinot's unassigned,
    null) or started (running on ``worker``), with the latest heartbeat the executor reported."""

    started: bool
    worker: str | None
    attempt: int
    heartbeat: list[Any]


class TaskReader:
    def __init__(self, client: Client, store: TaskStore) -> None:
        self.client = client
        self.store = store  # the task records of plan batches

    async def list_tasks(
        self, task_type: str, limit: int = 100_000, table: str | None = None
    ) -> dict[str, tuple[TaskState, list[str]]]:
        """Parent tasks (plan batches, legacy tasks) of a task type: name -> (state, every table it works
        on; empty when not known), newest first; with ``table``, only the tasks working on it."""
        query = f"WorkflowType = '{BATCH_WORKFLOW_TYPE}' AND TaskPlanType = {quote(task_type)}"
        found: list[tuple[str, TaskState, list[str], int]] = []
        deleted = await asyncio.to_thread(self.store.deleted)
        async for execution in self.client.list_workflows(query, limit=limit):
            if execution.id in deleted:
                continue
            tables = await memo_tables(execution)
            if table is not None and table not in tables:
                continue
            state = task_state_of(execution.typed_search_attributes.get(SearchAttributes.TASK_STATE))
            found.append((execution.id, state, tables, int(execution.start_time.timestamp() * 1000)))
        rows = await asyncio.to_thread(self.store.list_task_rows, task_type, limit, table)
        stopping = await self._aborting_plans({plan for _, state, _, plan, _ in rows if not state.is_final})
        for name, state, table_name, plan_id, submitted_ms in rows:
            found.append((name, _pinot_state(state, plan_id in stopping), [table_name], submitted_ms))
        found.sort(key=lambda item: item[3], reverse=True)
        return {name: (state, tables) for name, state, tables, _ in found[:limit]}

    async def _aborting_plans(self, plan_ids: set[str]) -> set[str]:
        """Those of these plans whose snapshot says ABORTING: their running batch is STOPPING."""
        if not plan_ids:
            return set()
        states = await asyncio.to_thread(self.store.snapshot_states, sorted(plan_ids))
        return {plan for plan, (status, _) in states.items() if status is PlanStatus.ABORTING}

    async def _stored_task(self, name: str) -> StoredTask | None:
        return await asyncio.to_thread(self.store.get, name)

    async def _describe_task(self, name: str) -> WorkflowExecutionDescription:
        if await asyncio.to_thread(self.store.deleted, [name]):
            raise TaskNotFoundError(name)  # deleted; Temporal removes the execution a little later
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
            if stored.state.is_final:
                return stored.state
            return _pinot_state(stored.state, bool(await self._aborting_plans({stored.plan_id})))
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

    async def pending_subtasks(self, name: str) -> dict[str, PendingSubtask]:
        """The running subtasks of a parent task as Temporal sees them (empty once it ended): a plan's
        batch runs in its plan's workflow, a legacy task in its own. Keyed by subtask name (the activity id
        without its ``.<handBacks>`` suffix)."""
        stored = await self._stored_task(name)
        if stored is not None:
            if stored.state.is_final:
                return {}
            table, task_type = parse_plan_id(stored.plan_id)
            workflow_id = plan_workflow_id(table, task_type)
        else:
            workflow_id = name
        try:
            desc = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return {}
            raise
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return {}
        prefix = f"{name}_"
        pending: dict[str, PendingSubtask] = {}
        for activity in desc.raw_description.pending_activities:
            subtask, _, _ = activity.activity_id.rpartition(".")
            if not subtask.startswith(prefix):
                continue
            details: list[Any] = []
            if activity.HasField("heartbeat_details"):
                details = await self.client.data_converter.decode(activity.heartbeat_details.payloads)
            pending[subtask] = PendingSubtask(
                started=activity.state
                in (
                    PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
                    PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED,
                ),
                worker=activity.last_worker_identity or None,
                attempt=activity.attempt,
                heartbeat=details,
            )
        return pending

    async def runtime_options(self, name: str) -> SubtaskOptions | None:
        """The options a parent task's subtasks run with (None: not generated yet)."""
        stored = await self._stored_task(name)
        if stored is not None:
            return stored.batch().options
        await self._describe_task(name)
        handle = self.client.get_workflow_handle_for(BatchWorkflow.run, name)
        return await handle.query(BatchWorkflow.runtime_options, rpc_timeout=QUERY_TIMEOUT)

    async def subtask_states(self, name: str) -> list[tuple[str, SubtaskState]]:
        """Every subtask's state; a running one whose activity no minion has started yet is INIT."""
        records = await self.all_subtasks(name)
        if not any(r.state is SubtaskState.RUNNING for r in records):
            return [(r.subtask_name, r.state) for r in records]
        pending = await self.pending_subtasks(name)
        return [(r.subtask_name, _assigned(r.state, pending.get(r.subtask_name))) for r in records]

    async def pinot_task_count(self, name: str) -> PinotTaskCount:
        """Pinot's TaskCount of a parent task, from its subtasks' states."""
        if await self._stored_task(name) is None:
            desc = await self._describe_task(name)
            if desc.status == WorkflowExecutionStatus.COMPLETED:
                # A finished legacy task with no failed subtask answers from its result (no replay); one
                # with failures is asked for its subtasks (an error, an abort and a timeout count apart).
                handle = self.client.get_workflow_handle_for(BatchWorkflow.run, name, run_id=desc.run_id)
                result = await handle.result(follow_runs=False)
                if result.num_failed == 0:
                    return PinotTaskCount(
                        total=result.num_subtasks,
                        completed=result.num_completed,
                        unknown=result.num_subtasks - result.num_completed,
                    )
        return PinotTaskCount.of([state for _, state in await self.subtask_states(name)])

    async def all_subtasks(self, name: str) -> list[SubtaskRecord]:
        """Every subtask record of a parent task (10 pages at most: a batch holds up to 10,000)."""
        records: list[SubtaskRecord] = []
        while True:
            page = (await self.batch_details(name, SubtaskQuery(offset=len(records), limit=PAGE))).subtasks
            records.extend(page)
            if len(page) < PAGE:
                return records

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


def _assigned(state: SubtaskState, pending: PendingSubtask | None) -> SubtaskState:
    """A RUNNING record whose activity is still only scheduled (no minion took it) is INIT (Pinot: null)."""
    if state is SubtaskState.RUNNING and pending is not None and not pending.started:
        return SubtaskState.INIT
    return state


def _pinot_state(state: TaskState, plan_aborting: bool) -> TaskState:
    """A running batch of a plan that is aborting is STOPPING, as Pinot calls a job being stopped."""
    return TaskState.STOPPING if plan_aborting and not state.is_final else state


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
