"""Reading plans: one plan (asked of its workflow, or read from its result), a table's plans, the active
ones (the catalog's snapshots; see snapshots.py for how those are kept true)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

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
from taskplan.models.task import TaskState
from taskplan.names import SearchAttributes, parse_plan_id
from taskplan.plans.visibility import (
    PLAN_WORKFLOW_TYPE,
    PlanHandle,
    PlanRun,
    find_plan_run,
    quote,
    running_plans,
)
from taskplan.workflows.task_plan import TaskPlanWorkflow

_ACTIVE_NAMES = {status.value for status in PlanStatus if status.is_active}


@dataclass
class _Lookup:
    """What reading a plan from Temporal found so far: its latest run (once described)."""

    run: PlanRun | None = None


class PlanReader:
    def __init__(self, client: Client, store: TaskStore, *, live_query_timeout_s: float = 0.0) -> None:
        self.client = client
        self.store = store  # the plans' snapshots: the active listing, and a busy plan's stand-in
        # How long a read waits for a running plan's own answer before its snapshot answers (0: no limit).
        self.live_query_timeout_s = live_query_timeout_s

    async def get_plan(self, plan_id: str, query: PlanQuery | None = None, *, live: bool = False) -> TaskPlan:
        """The plan. A running plan's own answer if it comes within ``live_query_timeout_s`` of the call
        (its run looked up included); else its catalog snapshot brought up to its last batch record (see
        _first_answer). With ``live``, no budget set, or a page by offset: the plan's own answer, however long
        that takes. Raises PlanNotFoundError."""
        page = query or PlanQuery()
        if live or not self.live_query_timeout_s or page.batch_offset is not None:
            await self._not_deleted(plan_id)
            return await self._from_temporal(plan_id, page, _Lookup())
        return await self._first_answer(plan_id, page)

    async def _first_answer(self, plan_id: str, page: PlanQuery) -> TaskPlan:
        """The plan read from Temporal and from the catalog at once. Temporal's answer wins if it comes
        within the budget (a running plan answers a query through its controller, which is slow while it
        starts hundreds of plans, and absent while it is down). Past the budget the snapshot answers, with
        the batch records the plan writes at each step, so it is never older than the last recorded batch;
        unless there is none yet, or Temporal said by then that the plan's workflow is closed while the
        snapshot says it runs (terminated: only Temporal knows), then Temporal's answer it is."""
        clock = asyncio.get_running_loop().time
        deadline = clock() + self.live_query_timeout_s
        lookup = _Lookup()
        asking = asyncio.ensure_future(self._from_temporal(plan_id, page, lookup))
        asking.add_done_callback(_retrieved)  # an answer not waited for is dropped, its error too
        try:
            deleted, snapshot = await asyncio.to_thread(self._catalog_view, plan_id, max(page.batch_limit, 1))
            if deleted:
                raise PlanNotFoundError(plan_id)
            done, _ = await asyncio.wait({asking}, timeout=max(0.0, deadline - clock()))
            if done:
                return asking.result()
            closed = lookup.run is not None and not lookup.run.running
            if snapshot is None or (closed and snapshot.status.is_active):
                return await asking
        finally:
            asking.cancel()
        status = None if lookup.run is None else lookup.run.status
        if snapshot.status.is_active and status in _ACTIVE_NAMES:
            snapshot.status = PlanStatus(status)  # an abort sent through Temporal shows there first
        return as_of_last_batch(snapshot, page)

    def _catalog_view(self, plan_id: str, batch_limit: int) -> tuple[bool, TaskPlan | None]:
        """Whether the plan was deleted, and its snapshot with its most recent batch records (one thread)."""
        if self.store.deleted([plan_id]):
            return True, None
        return False, self.store.plan_snapshots([plan_id], batch_limit).get(plan_id)

    async def _from_temporal(self, plan_id: str, page: PlanQuery, lookup: _Lookup) -> TaskPlan:
        """The plan as Temporal has it: a running plan's own answer (however long it takes), an ended one's
        result, failure details or final snapshot, a terminated one's last state."""
        run = await find_plan_run(self.client, plan_id)
        lookup.run = run
        handle = run.handle
        if run.running:
            try:
                return await handle.query(TaskPlanWorkflow.details, page)
            except RPCError:
                # Closed between describe and query: fall through to the result.
                pass
        desc = await handle.describe()
        if desc.status == WorkflowExecutionStatus.RUNNING:
            # The query failed while the plan runs (its query task expired: a controller stopped or too busy
            # to answer); it is not ended, so ask it once more rather than mark it failed.
            return await handle.query(TaskPlanWorkflow.details, page)
        if desc.status == WorkflowExecutionStatus.COMPLETED:
            plan = await handle.result(follow_runs=False)
            return plan.with_batch_page(page)
        if desc.status in (WorkflowExecutionStatus.FAILED, WorkflowExecutionStatus.CANCELED):
            closed = await self._ended_plan(handle, plan_id, desc.status, page)
            if closed is not None:
                return closed
        # Terminated, timed out or failed at the Temporal level: replay its last state, mark it ended.
        try:
            plan = await handle.query(TaskPlanWorkflow.details, page)
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


def _retrieved(task: asyncio.Future[TaskPlan]) -> None:
    if not task.cancelled():
        task.exception()


def as_of_last_batch(snapshot: TaskPlan, page: PlanQuery) -> TaskPlan:
    """A plan's snapshot with its batch records (``page`` of them), brought up to the last one. The step
    between batches records the next batch as running, and the snapshot follows only at that batch's end:
    the running batch counts as the plan counts it (numBatches, inputsBeingProcessed, statusMessage). An
    ended plan is not paused and processes nothing."""
    plan = snapshot
    last = plan.batches[-1] if plan.batches else None
    update: dict[str, object] = {}
    if last is not None and last.batch_sequence >= plan.num_batches:
        update["num_batches"] = last.batch_sequence + 1
        if last.task_state is TaskState.IN_PROGRESS and plan.status.is_active:
            update["inputs_being_processed"] = last.inputs_in_batch
            if plan.status is PlanStatus.ACTIVE and not plan.paused:
                update["status_message"] = (
                    f"batch {last.batch_sequence} ({last.submitted_task_name}) running: "
                    f"{last.num_subtasks} subtasks"
                )
    if not plan.status.is_active:
        update.update(inputs_being_processed=0, paused=False, pause_reason=None)
    return plan.model_copy(update=update).with_batch_page(page)
