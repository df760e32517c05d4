"""Reading plans: one plan (asked of its workflow, or read from its result), a table's plans, the active
ones (the catalog's snapshots; see snapshots.py for how those are kept true)."""

from __future__ import annotations

import asyncio

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from taskplan.catalog.tasks import TaskStore
from taskplan.models.errors import PlanNotFoundError
from taskplan.models.plan import PlanQuery, PlanSource, PlanStatus, TaskPlan
from taskplan.names import SearchAttributes, parse_plan_id
from taskplan.plans.visibility import PLAN_WORKFLOW_TYPE, PlanHandle, find_plan_run, quote, running_plans
from taskplan.workflows.task_plan import TaskPlanWorkflow


class PlanReader:
    def __init__(self, client: Client, store: TaskStore, *, live_query_timeout_s: float = 0.0) -> None:
        self.client = client
        self.store = store  # the plans' snapshots: the active listing, and a busy plan's stand-in
        # How long a running plan gets to answer a read before its last snapshot answers (0: no limit).
        self.live_query_timeout_s = live_query_timeout_s

    async def get_plan(self, plan_id: str, query: PlanQuery | None = None, *, live: bool = False) -> TaskPlan:
        """The plan; a running one answers itself (with ``live``, however long that takes; else its last
        snapshot answers after ``live_query_timeout_s``). Raises PlanNotFoundError."""
        await self._not_deleted(plan_id)
        run = await find_plan_run(self.client, plan_id)
        handle = run.handle
        if run.running:
            try:
                return await self._ask_running_plan(handle, plan_id, run.status, query or PlanQuery(), live)
            except RPCError:
                # Closed between describe and query: fall through to the result.
                pass
        desc = await handle.describe()
        if desc.status == WorkflowExecutionStatus.RUNNING:
            # The query failed while the plan runs (its query task expired: a controller stopped or too busy
            # to answer); it is not ended, so ask it once more rather than mark it failed.
            return await self._ask_running_plan(handle, plan_id, run.status, query or PlanQuery(), live)
        if desc.status == WorkflowExecutionStatus.COMPLETED:
            plan = await handle.result(follow_runs=False)
            return plan.with_batch_page(query)
        if desc.status in (WorkflowExecutionStatus.FAILED, WorkflowExecutionStatus.CANCELED):
            closed = await self._ended_plan(handle, plan_id, desc.status, query or PlanQuery())
            if closed is not None:
                return closed
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

    async def _ended_plan(
        self, handle: PlanHandle, plan_id: str, status: WorkflowExecutionStatus, page: PlanQuery
    ) -> TaskPlan | None:
        """A plan whose workflow closed as the plan ended, read without a worker: a FAILED plan from its
        failure's details (the plan), else (Canceled, or details missing) its final snapshot in the catalog.
        None when neither has it ended (then the caller asks the closed workflow, as for a terminated one)."""
        if status == WorkflowExecutionStatus.FAILED:
            try:
                await handle.result(follow_runs=False)
            except WorkflowFailureError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.details:
                    try:
                        plan = TaskPlan.model_validate(cause.details[0])
                    except ValueError:
                        plan = None
                    if plan is not None and plan.plan_id == plan_id and not plan.status.is_active:
                        return plan.with_batch_page(page)
        limit = page.batch_limit if page.batch_offset is None else page.batch_offset + page.batch_limit
        snapshots = await asyncio.to_thread(self.store.plan_snapshots, [plan_id], max(limit, 1))
        snapshot = snapshots.get(plan_id)
        if snapshot is None or snapshot.status.is_active:
            return None
        return snapshot if page.batch_offset is None else snapshot.with_batch_page(page)

    async def _ask_running_plan(
        self, handle: PlanHandle, plan_id: str, status: str | None, page: PlanQuery, live: bool
    ) -> TaskPlan:
        """The plan's own answer; when it does not come within ``live_query_timeout_s`` (its controller is
        busy, say starting hundreds of plans, or down), its snapshot, as the active-plans listing answers,
        with its status from visibility (an abort sent through Temporal shows there first)."""
        asking = asyncio.ensure_future(handle.query(TaskPlanWorkflow.details, page))
        if live or not self.live_query_timeout_s or page.batch_offset is not None:
            return await asking
        done, _ = await asyncio.wait({asking}, timeout=self.live_query_timeout_s)
        if done:
            return asking.result()
        try:
            snapshots = await asyncio.to_thread(self.store.plan_snapshots, [plan_id], page.batch_limit)
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

    async def _not_deleted(self, plan_id: str) -> None:
        """A plan deleted through the task endpoints is gone at once (Temporal deletes it ~30 s later)."""
        if await asyncio.to_thread(self.store.deleted, [plan_id]):
            raise PlanNotFoundError(plan_id)

    async def is_active(self, plan_id: str) -> bool:
        await self._not_deleted(plan_id)
        return (await find_plan_run(self.client, plan_id)).running

    async def list_plan_ids(self, table_name_with_type: str, task_type: str) -> list[str]:
        """Every plan of the table and task type that Temporal still has, oldest first."""
        query = (
            f"WorkflowType = '{PLAN_WORKFLOW_TYPE}' AND TaskPlanTable = {quote(table_name_with_type)} "
            f"AND TaskPlanType = {quote(task_type)}"
        )
        seen: dict[str, float] = {}
        async for execution in self.client.list_workflows(query):
            plan_id = execution.typed_search_attributes.get(SearchAttributes.PLAN_ID)
            if plan_id and plan_id not in seen:
                seen[plan_id] = execution.start_time.timestamp()
            elif plan_id:
                seen[plan_id] = min(seen[plan_id], execution.start_time.timestamp())
        deleted = await asyncio.to_thread(self.store.deleted, list(seen)) if seen else set()
        return sorted((p for p in seen if p not in deleted), key=lambda p: seen[p])

    async def list_active_plan_ids(
        self, table_name_with_type: str | None = None, task_type: str | None = None
    ) -> list[str]:
        return await asyncio.to_thread(self.store.active_plan_ids, table_name_with_type, task_type)

    async def list_active_plans(
        self,
        table_name_with_type: str | None = None,
        task_type: str | None = None,
        query: PlanQuery | None = None,
    ) -> list[TaskPlan]:
        """Every active plan: the catalog's snapshots of active plans, with their batch records, in two SQL
        statements (a plan saves its snapshot as it starts, as each batch ends and as it ends, before its
        workflow closes; see SnapshotReconciler for the rest). For a page of batches further back: the
        running plans in Temporal's visibility, each asked for its state."""
        page = query or PlanQuery()
        if page.batch_offset is None:
            snapshots = await asyncio.to_thread(
                self.store.active_plan_snapshots, table_name_with_type, task_type, page.batch_limit
            )
            return [snapshots[p] for p in sorted(snapshots)]
        running = await running_plans(self.client, table_name_with_type, task_type)
        limit = asyncio.Semaphore(64)

        async def one(plan_id: str, workflow_id: str, run_id: str) -> TaskPlan | None:
            async with limit:
                # The listing named the run: ask it directly (one call); a plan that ended meanwhile
                # (or continued as new) is read the long way.
                handle: PlanHandle = self.client.get_workflow_handle_for(
                    TaskPlanWorkflow.run, workflow_id, run_id=run_id
                )
                try:
                    return await handle.query(TaskPlanWorkflow.details, page)
                except RPCError:
                    pass
                try:
                    return await self.get_plan(plan_id, page)
                except PlanNotFoundError:
                    return None

        asked = await asyncio.gather(*(one(p, r.workflow_id, r.run_id) for p, r in sorted(running.items())))
        return [plan for plan in asked if plan is not None]


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
