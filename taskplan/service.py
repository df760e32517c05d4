"""Client-side operations on plans and tasks, shared by the REST API, the CLI and the tests.

Plans live in Temporal only: a running plan answers the ``details`` query; a finished one is read from its
workflow result, so reading it needs no worker. The batches of plans are task records in the catalog (the
running one's subtasks are asked of its plan); legacy tasks are TaskBatch workflows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus, WorkflowHandle
from temporalio.client import WorkflowExecution as Execution
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from taskplan.catalog.tasks import StoredTask, TaskStore
from taskplan.models.errors import (
    PlanAlreadyActiveError,
    PlanNotFoundError,
    TaskGenerationError,
    TaskNotFoundError,
)
from taskplan.models.plan import AbortRequest, PlanOptions, PlanQuery, PlanSource, PlanStatus, TaskPlan
from taskplan.models.table import TableConfig
from taskplan.models.task import (
    BatchDetails,
    SubtaskConfig,
    SubtaskCounts,
    SubtaskQuery,
    SubtaskRecord,
    SubtaskState,
    TaskState,
)
from taskplan.names import (
    CONTROLLER_TASK_QUEUE,
    SearchAttributes,
    new_plan_id,
    parse_plan_id,
    parse_task_name,
    plan_workflow_id,
    subtask_name,
    task_name,
)
from taskplan.plan_configs import with_thresholds
from workflows import signals
from workflows.batch import BatchWorkflow
from workflows.models import BatchInput, BatchPageQuery, OneShotRequest, PlanInput
from workflows.task_plan import TaskPlanWorkflow
from workflows.validation import ValidateTableConfigWorkflow

log = logging.getLogger(__name__)

PLAN_WORKFLOW_TYPE = "TaskPlan"
QUERY_TIMEOUT = timedelta(seconds=90)
BATCH_WORKFLOW_TYPE = "TaskBatch"
TASK_TABLES_MEMO = "tables"  # a legacy task's memo: every table it works on


def quote_value(value: str) -> str:
    """A string literal for a visibility query."""
    return _quote(value)


def _quote(value: str) -> str:
    # Values reaching a visibility query are validated names; quoting still guards against quotes.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class TaskPlanService:
    def __init__(
        self,
        client: Client,
        options: PlanOptions | None = None,
        tasks: TaskStore | None = None,
        *,
        live_query_timeout_s: float = 0.0,
        reconcile_grace_s: float = 10.0,
    ) -> None:
        self.client = client
        self.options = options or PlanOptions()
        self.tasks = tasks  # task records of plan batches (catalog); None: only legacy tasks are found
        # How long a running plan gets to answer a read before its last snapshot answers (0: no limit).
        self.live_query_timeout_s = live_query_timeout_s
        # A snapshot saved this recently is not corrected from a visibility listing (which may lag behind).
        self.reconcile_grace_ms = int(reconcile_grace_s * 1000)

    # ---------------------------------------------------------------- plans

    async def start_plan(
        self,
        table_name_with_type: str,
        task_type: str,
        source: PlanSource,
        properties: dict[str, str],
        options: PlanOptions | None = None,
    ) -> str:
        # The failure thresholds come from the task configs (checked already, as the API triggers a plan),
        # else from the defaults; the plan's properties show them. Raises PlanConfigError.
        properties, options = with_thresholds(properties, options or self.options)
        plan_id = new_plan_id(table_name_with_type, task_type)
        workflow_id = plan_workflow_id(table_name_with_type, task_type)
        try:
            await self.client.start_workflow(
                TaskPlanWorkflow.run,
                PlanInput(
                    plan_id=plan_id,
                    table_name_with_type=table_name_with_type,
                    task_type=task_type,
                    source=source,
                    properties=properties,
                    options=options,
                ),
                id=workflow_id,
                task_queue=CONTROLLER_TASK_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SearchAttributes.PLAN_ID, plan_id),
                        SearchAttributePair(SearchAttributes.TABLE, table_name_with_type),
                        SearchAttributePair(SearchAttributes.TASK_TYPE, task_type),
                        SearchAttributePair(SearchAttributes.STATUS, PlanStatus.ACTIVE.value),
                        SearchAttributePair(SearchAttributes.SOURCE, source.value),
                    ]
                ),
                static_summary=f"{task_type} plan for {table_name_with_type}",
            )
        except WorkflowAlreadyStartedError:
            active = await self.active_plan_id(table_name_with_type, task_type)
            raise PlanAlreadyActiveError(table_name_with_type, task_type, active) from None
        if self.tasks is not None:
            # Listed from the start (the plan saves its own snapshots as its batches end).
            created = TaskPlan(
                plan_id=plan_id,
                table_name_with_type=table_name_with_type,
                task_type=task_type,
                status=PlanStatus.ACTIVE,
                source=source,
                properties=dict(properties),
                status_message="plan created",
                created_at_ms=int(time.time() * 1000),
            )
            await asyncio.to_thread(self.tasks.record_plan_started, created)
        return plan_id

    async def active_plan_id(self, table_name_with_type: str, task_type: str) -> str | None:
        handle = self.client.get_workflow_handle(plan_workflow_id(table_name_with_type, task_type))
        try:
            desc = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return None
        return desc.typed_search_attributes.get(SearchAttributes.PLAN_ID)

    async def _plan_handle(self, plan_id: str) -> tuple[WorkflowHandle[TaskPlanWorkflow, TaskPlan], bool]:
        """The latest run of a plan and whether it is running. Raises PlanNotFoundError."""
        handle, running, _ = await self._plan_run(plan_id)
        return handle, running

    async def _plan_run(
        self, plan_id: str
    ) -> tuple[WorkflowHandle[TaskPlanWorkflow, TaskPlan], bool, str | None]:
        """The latest run of a plan, whether it is running and its status search attribute."""
        table, task_type = parse_plan_id(plan_id)
        workflow_id = plan_workflow_id(table, task_type)
        handle = self.client.get_workflow_handle_for(TaskPlanWorkflow.run, workflow_id)
        try:
            desc = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise PlanNotFoundError(plan_id) from None
            raise
        if desc.typed_search_attributes.get(SearchAttributes.PLAN_ID) == plan_id:
            run_handle = self.client.get_workflow_handle_for(
                TaskPlanWorkflow.run, workflow_id, run_id=desc.run_id
            )
            status = desc.typed_search_attributes.get(SearchAttributes.STATUS)
            return run_handle, desc.status == WorkflowExecutionStatus.RUNNING, status
        query = (
            f"WorkflowId = {_quote(workflow_id)} AND TaskPlanId = {_quote(plan_id)} "
            f"AND ExecutionStatus != 'ContinuedAsNew'"
        )
        async for execution in self.client.list_workflows(query, limit=1):
            run_handle = self.client.get_workflow_handle_for(
                TaskPlanWorkflow.run, workflow_id, run_id=execution.run_id
            )
            status = execution.typed_search_attributes.get(SearchAttributes.STATUS)
            return run_handle, execution.status == WorkflowExecutionStatus.RUNNING, status
        raise PlanNotFoundError(plan_id)

    async def get_plan(self, plan_id: str, query: PlanQuery | None = None, *, live: bool = False) -> TaskPlan:
        """The plan; a running one answers itself (with ``live``, however long that takes; else its last
        snapshot answers after ``live_query_timeout_s``)."""
        handle, running, status = await self._plan_run(plan_id)
        if running:
            try:
                return await self._ask_running_plan(handle, plan_id, status, query or PlanQuery(), live)
            except RPCError:
                # Closed between describe and query: fall through to the result.
                pass
        desc = await handle.describe()
        if desc.status == WorkflowExecutionStatus.COMPLETED:
            plan = await handle.result(follow_runs=False)
            return plan.with_batch_page(query)
        # Terminated, timed out or failed at the Temporal level: replay its last state, mark it ended.
        try:
            plan = await handle.query(TaskPlanWorkflow.details, query or PlanQuery())
        except RPCError as err:
            if err.status != RPCStatusCode.FAILED_PRECONDITION:
                raise
            plan = _unstarted_plan(plan_id, desc)  # ended before its first step (a table drop): no state
        if plan.status.is_active:
            ended = desc.status.name.lower() if desc.status else "closed"
            plan = plan.model_copy(
                update={
                    "status": PlanStatus.FAILED,
                    "status_message": f"plan workflow {ended}",
                }
            )
        return plan

    async def _ask_running_plan(
        self,
        handle: WorkflowHandle[TaskPlanWorkflow, TaskPlan],
        plan_id: str,
        status: str | None,
        page: PlanQuery,
        live: bool,
    ) -> TaskPlan:
        """The plan's own answer; when it does not come within ``live_query_timeout_s`` (its controller is
        busy, say starting hundreds of plans, or down), its snapshot, as the active-plans listing answers,
        with its status from visibility (an abort sent through Temporal shows there first)."""
        asking = asyncio.ensure_future(handle.query(TaskPlanWorkflow.details, page))
        if live or not self.live_query_timeout_s or self.tasks is None or page.batch_offset is not None:
            return await asking
        done, _ = await asyncio.wait({asking}, timeout=self.live_query_timeout_s)
        if done:
            return asking.result()
        try:
            snapshots = await asyncio.to_thread(self.tasks.plan_snapshots, [plan_id], page.batch_limit)
        except BaseException:
            asking.cancel()
            raise
        if asking.done() or plan_id not in snapshots:
            return await asking  # answered meanwhile, or nothing saved yet: the plan's answer it is
        asking.cancel()
        snapshot = snapshots[plan_id]
        if status is not None and status in PlanStatus.__members__:
            snapshot.status = PlanStatus(status)
        return snapshot

    async def is_active(self, plan_id: str) -> bool:
        _, running = await self._plan_handle(plan_id)
        return running

    async def abort_plan(self, plan_id: str, reason: str = "") -> TaskPlan:
        handle, running = await self._plan_handle(plan_id)
        if running:
            try:
                await handle.signal(signals.ABORT, AbortRequest(reason=reason or "aborted through the API"))
            except RPCError as err:
                # The plan ended between the check and the signal: its final state is the answer.
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
        plan = await self.get_plan(plan_id, live=True)  # ABORTING, never an older snapshot
        if self.tasks is not None:
            # The active listing reads snapshots: it shows ABORTING from now on (unless the plan ended).
            await asyncio.to_thread(self.tasks.save_snapshot, plan, _now_ms(), unless_ended=True)
        return plan

    async def list_plan_ids(self, table_name_with_type: str, task_type: str) -> list[str]:
        query = (
            f"WorkflowType = '{PLAN_WORKFLOW_TYPE}' AND TaskPlanTable = {_quote(table_name_with_type)} "
            f"AND TaskPlanType = {_quote(task_type)}"
        )
        seen: dict[str, float] = {}
        async for execution in self.client.list_workflows(query):
            plan_id = execution.typed_search_attributes.get(SearchAttributes.PLAN_ID)
            if plan_id and plan_id not in seen:
                seen[plan_id] = execution.start_time.timestamp()
            elif plan_id:
                seen[plan_id] = min(seen[plan_id], execution.start_time.timestamp())
        return sorted(seen, key=lambda p: seen[p])

    async def list_active_plan_ids(
        self, table_name_with_type: str | None = None, task_type: str | None = None
    ) -> list[str]:
        if self.tasks is not None:
            return await asyncio.to_thread(self.tasks.active_plan_ids, table_name_with_type, task_type)
        return sorted(await self._running_plans(table_name_with_type, task_type))

    async def _running_plans(
        self, table_name_with_type: str | None, task_type: str | None
    ) -> dict[str, _RunningPlan]:
        """Running plans by plan id, from one visibility listing."""
        query = f"WorkflowType = '{PLAN_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"
        if table_name_with_type:
            query += f" AND TaskPlanTable = {_quote(table_name_with_type)}"
        if task_type:
            query += f" AND TaskPlanType = {_quote(task_type)}"
        running: dict[str, _RunningPlan] = {}
        async for execution in self.client.list_workflows(query):
            attributes = execution.typed_search_attributes
            plan_id = attributes.get(SearchAttributes.PLAN_ID)
            if plan_id:
                running[plan_id] = _RunningPlan(
                    workflow_id=execution.id,
                    run_id=execution.run_id,
                    status=attributes.get(SearchAttributes.STATUS),
                    started_ms=int(execution.start_time.timestamp() * 1000),
                )
        return running

    async def list_active_plans(
        self,
        table_name_with_type: str | None = None,
        task_type: str | None = None,
        query: PlanQuery | None = None,
    ) -> list[TaskPlan]:
        """Every active plan. With the catalog: its snapshots of active plans, with their batch records, in
        two SQL statements (a plan saves its snapshot as it starts, as each batch ends and as it ends, before
        its workflow closes; see reconcile_plan_snapshots for the rest). Without it, or for a page of
        batches further back: the running plans in Temporal's visibility, each asked for its state."""
        page = query or PlanQuery()
        if self.tasks is not None and page.batch_offset is None:
            snapshots = await asyncio.to_thread(
                self.tasks.active_plan_snapshots, table_name_with_type, task_type, page.batch_limit
            )
            return [snapshots[p] for p in sorted(snapshots)]
        running = await self._running_plans(table_name_with_type, task_type)
        limit = asyncio.Semaphore(64)

        async def one(plan_id: str, workflow_id: str, run_id: str) -> TaskPlan | None:
            async with limit:
                # The listing named the run: ask it directly (one call); a plan that ended meanwhile
                # (or continued as new) is read the long way.
                handle = self.client.get_workflow_handle_for(TaskPlanWorkflow.run, workflow_id, run_id=run_id)
                try:
                    return await handle.query(TaskPlanWorkflow.details, query or PlanQuery())
                except RPCError:
                    pass
                try:
                    return await self.get_plan(plan_id, query)
                except PlanNotFoundError:
                    return None

        asked = await asyncio.gather(*(one(p, r.workflow_id, r.run_id) for p, r in sorted(running.items())))
        return [plan for plan in asked if plan is not None]

    async def reconcile_plan_snapshots(self) -> int:
        """Correct the catalog's plan snapshots from Temporal, for what a plan cannot record itself: an end
        at the Temporal level (terminated, timed out, deleted) or while the catalog was out of reach, an
        abort sent through Temporal (the CLI's signal or cancel), a plan started without a snapshot. Then end
        the batch records that ended plans left running (end_orphaned_batches). Run by the controller's
        orchestration poll. Returns how many snapshots changed."""
        if self.tasks is None:
            return 0
        listed_at_ms = _now_ms()
        running = await self._running_plans(None, None)
        saved = await asyncio.to_thread(self.tasks.snapshot_states, list(running))
        active = await asyncio.to_thread(self.tasks.snapshot_states)
        settled_ms = listed_at_ms - self.reconcile_grace_ms  # older than this: not a race with a start
        stale = [
            plan_id
            for plan_id, (status, _) in saved.items()
            if status is PlanStatus.ACTIVE and running[plan_id].status == PlanStatus.ABORTING.value
        ]
        unknown = [p for p, run in running.items() if p not in saved and run.started_ms < settled_ms]
        gone = [p for p, (_, updated_ms) in active.items() if p not in running and updated_ms < settled_ms]
        corrected = 0
        for plan_id in stale + unknown + gone:
            plan = await self._ended_or_latest(plan_id)
            if plan is None or (plan_id in gone and plan.status.is_active):
                continue  # running after all (the listing lagged)
            if await asyncio.to_thread(self.tasks.save_snapshot, plan, _now_ms(), unless_ended=True):
                corrected += 1
        await self.end_orphaned_batches(set(running), settled_ms)
        return corrected

    async def end_orphaned_batches(self, running: set[str], settled_ms: int) -> int:
        """End the batch records (ABORTED) of plans that ended without recording them: terminated or deleted
        in Temporal, or whose end missed the catalog. Until then they show IN_PROGRESS in the task listings
        and count against the in-flight limits of every other plan. ``running``: the plans the visibility
        listing has running; a batch submitted after ``settled_ms`` may be a plan's that it has not listed
        yet. Returns how many records ended."""
        assert self.tasks is not None
        ended = 0
        for plan_id in await asyncio.to_thread(self.tasks.plans_with_open_batches, settled_ms):
            if plan_id in running:
                continue
            try:
                plan = await self._ended_or_latest(plan_id)
            except RPCError as err:  # this plan cannot be read now: the others still can
                log.warning("plan %s: not read, its running batch records stay so: %s", plan_id, err)
                continue
            if plan is not None and plan.status.is_active:
                continue  # running after all (the listing lagged)
            why = (
                "its plan is not in Temporal"
                if plan is None
                else f"its plan ended {plan.status.value}: {plan.status_message}"
            )
            count = await asyncio.to_thread(self.tasks.end_open_batches, plan_id, _now_ms(), why)
            if count:
                log.info("plan %s: %d running batch record(s) ended ABORTED (%s)", plan_id, count, why)
            ended += count
        return ended

    async def _ended_or_latest(self, plan_id: str) -> TaskPlan | None:
        """The plan as Temporal has it (ended, if it ended at the Temporal level), or as its snapshot has it
        if Temporal no longer has it; None when neither has it."""
        try:
            return await self.get_plan(plan_id, PlanQuery(batch_limit=0), live=True)
        except PlanNotFoundError:
            return await self._vanished(plan_id)

    async def _vanished(self, plan_id: str) -> TaskPlan | None:
        """A plan the catalog lists as active that Temporal no longer has (deleted, or past retention)."""
        assert self.tasks is not None
        snapshot = (await asyncio.to_thread(self.tasks.plan_snapshots, [plan_id], 0)).get(plan_id)
        if snapshot is None:
            return None
        return snapshot.model_copy(
            update={
                "status": PlanStatus.FAILED,
                "status_message": "plan workflow not found in Temporal",
                "finished_at_ms": snapshot.finished_at_ms or _now_ms(),
                "inputs_being_processed": 0,
            }
        )

    # ---------------------------------------------------------------- legacy flow and batches

    async def run_one_shot(
        self,
        task_type: str,
        tables: Sequence[str],
        task_configs: dict[str, str] | None,
        options: PlanOptions | None = None,
    ) -> str:
        """Legacy flow: one generated batch, no plan. Returns its task name once the subtasks exist."""
        request = OneShotRequest(
            task_type=task_type, table_names_with_type=list(tables), task_configs=task_configs
        )
        now_ms = int(time.time() * 1000)
        for offset in range(1000):
            name = task_name(task_type, now_ms + offset)
            try:
                handle = await self.client.start_workflow(
                    BatchWorkflow.run,
                    BatchInput(
                        task_name=name,
                        task_type=task_type,
                        table_names_with_type=list(tables),
                        one_shot=request,
                        options=options or self.options,
                    ),
                    id=name,
                    task_queue=CONTROLLER_TASK_QUEUE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    # Every table, for access checks (the search attribute holds the first one only).
                    memo={TASK_TABLES_MEMO: list(tables)},
                    search_attributes=TypedSearchAttributes(
                        [
                            SearchAttributePair(SearchAttributes.TABLE, tables[0]),
                            SearchAttributePair(SearchAttributes.TASK_TYPE, task_type),
                            SearchAttributePair(SearchAttributes.TASK_STATE, TaskState.NOT_STARTED.value),
                        ]
                    ),
                )
            except WorkflowAlreadyStartedError:
                continue
            outcome = await handle.execute_update(BatchWorkflow.generated)
            if outcome.error:
                raise TaskGenerationError(outcome.error, outcome.error_type)
            return name
        raise RuntimeError("could not find a free task name")  # pragma: no cover - 1000 names in the same ms

    async def validate_table_config(self, config: TableConfig) -> list[str]:
        """Run every configured task type's validate_task_configs (in a controller activity)."""
        return await self.client.execute_workflow(
            ValidateTableConfigWorkflow.run,
            config,
            id=f"validate-{config.tableName}-{uuid.uuid4()}",
            task_queue=CONTROLLER_TASK_QUEUE,
            execution_timeout=timedelta(minutes=2),
        )

    async def remove_table_plans(self, table_name_with_type: str) -> int:
        """Stop and delete every plan (all task types, all runs) and batch of a table. Returns how many."""
        removed = await self.delete_executions(
            f"TaskPlanTable = {_quote(table_name_with_type)}", reason=f"table {table_name_with_type} dropped"
        )
        if self.tasks is not None:
            records = await asyncio.to_thread(self.tasks.delete_tables, [table_name_with_type])
            removed += records.get(table_name_with_type, 0)
        return removed

    async def stop_table_plans(self, table_name_with_type: str, task_types: Sequence[str]) -> int:
        """Terminate the table's running plan of each task type by its workflow id, then remove the table's
        plans again: for a plan started while a drop ran, which a visibility listing may not show yet."""
        for task_type in task_types:
            handle = self.client.get_workflow_handle(plan_workflow_id(table_name_with_type, task_type))
            with contextlib.suppress(RPCError):  # none running: nothing to stop
                await handle.terminate(reason=f"table {table_name_with_type} dropped")
        return await self.remove_table_plans(table_name_with_type)

    async def delete_executions(self, query: str, reason: str = "cleanup") -> int:
        """Terminate (if running) and delete every workflow execution the visibility query finds."""
        return sum((await self.delete_executions_by_table(query, reason)).values())

    async def delete_executions_by_table(self, query: str, reason: str = "cleanup") -> dict[str, int]:
        executions = [
            (e.id, e.run_id, e.status, e.typed_search_attributes.get(SearchAttributes.TABLE) or "")
            async for e in self.client.list_workflows(query)
        ]
        for workflow_id, run_id, status, _ in executions:
            if status == WorkflowExecutionStatus.RUNNING:
                with contextlib.suppress(RPCError):
                    await self.client.get_workflow_handle(workflow_id, run_id=run_id).terminate(reason=reason)
        removed: dict[str, int] = {}
        for workflow_id, run_id, _, table in executions:
            with contextlib.suppress(RPCError):
                await self.client.workflow_service.delete_workflow_execution(
                    DeleteWorkflowExecutionRequest(
                        namespace=self.client.namespace,
                        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id or ""),
                    )
                )
                removed[table] = removed.get(table, 0) + 1
        return removed

    async def list_tasks(self, task_type: str, limit: int = 10_000) -> dict[str, tuple[TaskState, list[str]]]:
        """Parent tasks (plan batches, legacy tasks) of a task type: name -> (state, every table it works
        on; empty when not known), newest first."""
        query = f"WorkflowType = '{BATCH_WORKFLOW_TYPE}' AND TaskPlanType = {_quote(task_type)}"
        found: list[tuple[str, TaskState, list[str]]] = []
        async for execution in self.client.list_workflows(query, limit=limit):
            state = _task_state(execution.typed_search_attributes.get(SearchAttributes.TASK_STATE))
            found.append((execution.id, state, await _memo_tables(execution)))
        if self.tasks is not None:
            stored = await asyncio.to_thread(self.tasks.list_tasks, task_type, limit)
            found.extend((name, state, [table]) for name, (state, table) in stored.items())
        # Newest first: a task name ends with its submission time in milliseconds.
        found.sort(key=lambda item: parse_task_name(item[0])[1], reverse=True)
        return {name: (state, tables) for name, state, tables in found[:limit]}

    async def _stored_task(self, name: str) -> StoredTask | None:
        return None if self.tasks is None else await asyncio.to_thread(self.tasks.get, name)

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
        return await _memo_tables(await self._describe_task(name))

    async def task_state(self, name: str) -> TaskState:
        stored = await self._stored_task(name)
        if stored is not None:
            return stored.state
        desc = await self._describe_task(name)
        return _task_state(desc.typed_search_attributes.get(SearchAttributes.TASK_STATE))

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
            # A finished batch is replayed to answer: allow time for a large one (10,000 subtasks).
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


@dataclass(frozen=True)
class _RunningPlan:
    workflow_id: str
    run_id: str
    status: str | None  # the TaskPlanStatus search attribute
    started_ms: int  # when this run started


def _now_ms() -> int:
    return int(time.time() * 1000)


def _unstarted_plan(plan_id: str, desc: WorkflowExecutionDescription) -> TaskPlan:
    """A plan whose workflow closed before running a step: what its start and visibility say of it."""
    table, task_type = parse_plan_id(plan_id)
    source = desc.typed_search_attributes.get(SearchAttributes.SOURCE) or ""
    return TaskPlan(
        plan_id=plan_id,
        table_name_with_type=table,
        task_type=task_type,
        status=PlanStatus.ACTIVE,  # the caller marks it ended, with how its workflow closed
        source=PlanSource(source) if source in PlanSource.__members__ else PlanSource.ADHOC_CONFIG,
        created_at_ms=int(desc.start_time.timestamp() * 1000),
        finished_at_ms=None if desc.close_time is None else int(desc.close_time.timestamp() * 1000),
    )


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


def _task_state(value: str | None) -> TaskState:
    return TaskState(value) if value is not None and value in TaskState.__members__ else TaskState.NOT_STARTED


async def _memo_tables(execution: Execution) -> list[str]:
    tables: list[str] = await execution.memo_value(TASK_TABLES_MEMO, [], type_hint=list[str])
    return tables
