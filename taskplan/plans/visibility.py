"""What the client side asks of Temporal's visibility, in one place: the query strings, the latest run of a
plan, the running plans, and what a legacy task carries (its state search attribute, its tables memo)."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.client import WorkflowExecution as Execution
from temporalio.service import RPCError, RPCStatusCode

from taskplan.models.errors import PlanNotFoundError
from taskplan.models.plan import TaskPlan
from taskplan.models.task import TaskState
from taskplan.names import SearchAttributes, parse_plan_id, plan_workflow_id
from taskplan.workflows.task_plan import TaskPlanWorkflow

PLAN_WORKFLOW_TYPE = "TaskPlan"
BATCH_WORKFLOW_TYPE = "TaskBatch"
TASK_TABLES_MEMO = "tables"  # a legacy task's memo: every table it works on

PlanHandle = WorkflowHandle[TaskPlanWorkflow, TaskPlan]


def quote(value: str) -> str:
    """A string literal for a visibility query."""
    # Values reaching a visibility query are validated names; quoting still guards against quotes.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class PlanRun:
    """The latest run of a plan: its handle, whether it runs and its TaskPlanStatus search attribute."""

    handle: PlanHandle
    running: bool
    status: str | None


async def find_plan_run(client: Client, plan_id: str) -> PlanRun:
    """The latest run of a plan (a later plan of the same table and task type reuses its workflow id).
    Raises PlanNotFoundError."""
    table, task_type = parse_plan_id(plan_id)
    workflow_id = plan_workflow_id(table, task_type)
    handle: PlanHandle = client.get_workflow_handle_for(TaskPlanWorkflow.run, workflow_id)
    try:
        desc = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise PlanNotFoundError(plan_id) from None
        raise
    if desc.typed_search_attributes.get(SearchAttributes.PLAN_ID) == plan_id:
        return PlanRun(
            client.get_workflow_handle_for(TaskPlanWorkflow.run, workflow_id, run_id=desc.run_id),
            desc.status == WorkflowExecutionStatus.RUNNING,
            desc.typed_search_attributes.get(SearchAttributes.STATUS),
        )
    query = (
        f"WorkflowId = {quote(workflow_id)} AND TaskPlanId = {quote(plan_id)} "
        f"AND ExecutionStatus != 'ContinuedAsNew'"
    )
    async for execution in client.list_workflows(query, limit=1):
        return PlanRun(
            client.get_workflow_handle_for(TaskPlanWorkflow.run, workflow_id, run_id=execution.run_id),
            execution.status == WorkflowExecutionStatus.RUNNING,
            execution.typed_search_attributes.get(SearchAttributes.STATUS),
        )
    raise PlanNotFoundError(plan_id)


@dataclass(frozen=True)
class RunningPlan:
    workflow_id: str
    run_id: str
    status: str | None  # the TaskPlanStatus search attribute
    started_ms: int  # when this run started


async def running_plans(
    client: Client, table_name_with_type: str | None = None, task_type: str | None = None
) -> dict[str, RunningPlan]:
    """Running plans by plan id, from one visibility listing."""
    query = f"WorkflowType = '{PLAN_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"
    if table_name_with_type:
        query += f" AND TaskPlanTable = {quote(table_name_with_type)}"
    if task_type:
        query += f" AND TaskPlanType = {quote(task_type)}"
    running: dict[str, RunningPlan] = {}
    async for execution in client.list_workflows(query):
        attributes = execution.typed_search_attributes
        plan_id = attributes.get(SearchAttributes.PLAN_ID)
        if plan_id:
            running[plan_id] = RunningPlan(
                workflow_id=execution.id,
                run_id=execution.run_id,
                status=attributes.get(SearchAttributes.STATUS),
                started_ms=int(execution.start_time.timestamp() * 1000),
            )
    return running


def task_state_of(value: str | None) -> TaskState:
    """A legacy task's state from its TaskPlanTaskState search attribute (NOT_STARTED until it has one)."""
    return TaskState(value) if value is not None and value in TaskState.__members__ else TaskState.NOT_STARTED


async def memo_tables(execution: Execution) -> list[str]:
    tables: list[str] = await execution.memo_value(TASK_TABLES_MEMO, [], type_hint=list[str])
    return tables
