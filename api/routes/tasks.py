"""Pinot's task endpoints: triggers (execute) and task types."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from taskplan.api.auth import Permission, Principal, PrincipalDep, may_read_all, require, require_permission
from taskplan.api.deps import CatalogDep, ClientDep, OneShotDep, StackDep, StarterDep, TaskReaderDep
from taskplan.api.errors import ERROR_RESPONSES, ApiError
from taskplan.api.models import AdhocTaskConfig, PlanCreated, StatusResponse
from taskplan.api.table_access import resolve_tables
from taskplan.bootstrap import Stack
from taskplan.catalog import Catalog
from taskplan.cycle import run_trigger_cycle
from taskplan.gate import QueueState, queue_state, set_queue_state
from taskplan.models import errors
from taskplan.models.errors import TaskGenerationError, TaskNotFoundError
from taskplan.models.plan import CycleResult, PlanSource
from taskplan.models.table import TableTaskConfig
from taskplan.models.task import (
    BatchDetails,
    SubtaskConfig,
    SubtaskCounts,
    SubtaskQuery,
    SubtaskRecord,
    SubtaskState,
    TaskState,
)
from taskplan.names import InvalidNameError, parse_table_name, parse_task_name, validate_task_type
from taskplan.plans import TaskReader
from taskplan.plans.validation import validate_table_config
from taskplan.triggers import Flow, decide_flow, legacy_refusal, orchestration_switch

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=ERROR_RESPONSES)

GENERATION_STATUS = {
    errors.TASK_CONFIG_ERROR: 400,
    errors.TABLE_NOT_FOUND: 404,
    errors.UNKNOWN_TASK_TYPE: 404,
    errors.BATCH_TOO_LARGE: 400,
}


@router.get("/tasktypes", response_model=list[str], summary="Task types this cluster can run")
async def task_types(stack: StackDep, principal: PrincipalDep) -> list[str]:
    require_permission(principal, Permission.READ)
    return stack.registry.task_types()


@router.post(
    "/execute",
    response_model=PlanCreated | dict[str, str],
    summary="Ad hoc trigger: a plan if orchestrated, else a legacy batch ({tableNameWithType: taskName})",
)
async def execute(
    request: AdhocTaskConfig,
    stack: StackDep,
    catalog: CatalogDep,
    client: ClientDep,
    starter: StarterDep,
    one_shot: OneShotDep,
    principal: PrincipalDep,
) -> PlanCreated | dict[str, str]:
    registered = stack.registry.get(validate_task_type(request.taskType))
    named = parse_table_name(request.tableName)
    tables = await asyncio.to_thread(resolve_tables, catalog, principal, Permission.UPDATE, named)
    if len(tables) > 1:
        raise ApiError(
            400, f"table {request.tableName} exists as OFFLINE and REALTIME: name it with its type"
        )
    table = tables[0]
    cluster = await asyncio.to_thread(catalog.cluster_configs)
    decision = decide_flow(
        registered,
        request.taskConfigs,
        tables,
        switch_on=orchestration_switch(cluster, stack.settings.enable_task_orchestration),
    )
    # Refuse bad task configs (a predicate that is not one expression, a path outside the allowed roots)
    # now, with a 400, rather than as a failed plan.
    trial = table.model_copy(
        update={"task": TableTaskConfig(taskTypeConfigsMap={registered.task_type: dict(request.taskConfigs)})}
    )
    problems = await validate_table_config(client, trial)
    if problems:
        raise ApiError(400, "invalid task configs: " + "; ".join(problems))
    if decision.flow is Flow.ORCHESTRATED:
        plan_id = await starter.start_plan(
            table.tableName, registered.task_type, PlanSource.ADHOC_CONFIG, dict(request.taskConfigs)
        )
        return PlanCreated(
            taskPlanId=plan_id, tableNameWithType=table.tableName, taskType=registered.task_type
        )
    refusal = legacy_refusal(registered, decision)
    if refusal:
        raise ApiError(400, refusal)
    try:
        name = await one_shot.run_one_shot(registered.task_type, [table.tableName], dict(request.taskConfigs))
    except TaskGenerationError as exc:
        raise ApiError(
            GENERATION_STATUS.get(exc.error_type or "", 400), f"task generation failed: {exc}"
        ) from exc
    return {table.tableName: name}


# ------------------------------------------------------------------ Pinot's task read endpoints

TaskTypePath = Annotated[str, Path(max_length=100, examples=["SegmentPurgeTask"])]
TaskNamePath = Annotated[str, Path(max_length=150, examples=["Task_SegmentPurgeTask_1700000000000"])]
SUBTASK_PAGE = 1000
T = TypeVar("T")


class PinotTaskConfigOut(BaseModel):
    taskType: str
    configs: dict[str, str]


def _known(stack: Stack, task_type: str) -> str:
    """The task type's registered name; 404 naming it when no plugin registers it."""
    return stack.registry.get(validate_task_type(task_type)).task_type


def _may_read_task(principal: Principal, tables: list[str]) -> bool:
    """A parent task (and every subtask of it) is the principal's only if every table it works on is: a
    legacy task over several tables shows them all (configs, subtasks, counts)."""
    try:
        refs = [parse_table_name(t, typed=True) for t in tables]
    except InvalidNameError:
        refs = []  # not known: only for a principal that sees every table
    return may_read_all(principal, refs)


async def _readable_task(tasks: TaskReader, principal: Principal, name: str) -> str:
    """The task's name if the principal may read it; a task it may not read answers as a missing one."""
    parse_task_name(name)
    require_permission(principal, Permission.READ)
    if not _may_read_task(principal, await tasks.task_tables(name)):
        raise TaskNotFoundError(name)
    return name


async def _readable_tasks(
    tasks: TaskReader, principal: Principal, task_type: str, limit: int = 10_000
) -> dict[str, TaskState]:
    listed = await tasks.list_tasks(validate_task_type(task_type), limit=limit)
    return {name: state for name, (state, tables) in listed.items() if _may_read_task(principal, tables)}


async def _all_pages(fetch: Callable[[SubtaskQuery], Awaitable[Sequence[T]]]) -> list[T]:
    """Every item of a paged query on a batch (10 pages at most: a batch holds up to 10,000 subtasks)."""
    items: list[T] = []
    while True:
        page = await fetch(SubtaskQuery(offset=len(items), limit=SUBTASK_PAGE))
        items.extend(page)
        if len(page) < SUBTASK_PAGE:
            return items


async def _all_subtasks(tasks: TaskReader, name: str) -> list[SubtaskRecord]:
    async def fetch(query: SubtaskQuery) -> list[SubtaskRecord]:
        return (await tasks.batch_details(name, query)).subtasks

    return await _all_pages(fetch)


async def _all_configs(tasks: TaskReader, name: str) -> list[SubtaskConfig]:
    return await _all_pages(lambda query: tasks.subtask_configs(name, query))


async def _set_queue(
    stack: Stack, catalog: Catalog, principal: Principal, task_type: str, state: QueueState
) -> str:
    require(principal, Permission.UPDATE)
    name = _known(stack, task_type)
    await asyncio.to_thread(set_queue_state, catalog, name, state)
    return name


@router.put("/{taskType}/stop", response_model=StatusResponse, summary="Stop a task type's queue")
async def stop_queue(
    taskType: TaskTypePath, stack: StackDep, catalog: CatalogDep, principal: PrincipalDep
) -> StatusResponse:
    """No plan of the task type starts a new batch until it is resumed (running batches finish)."""
    name = await _set_queue(stack, catalog, principal, taskType, QueueState.STOPPED)
    return StatusResponse(status=f"Successfully stopped task queue for task type: {name}")


@router.put("/{taskType}/resume", response_model=StatusResponse, summary="Resume a task type's queue")
async def resume_queue(
    taskType: TaskTypePath, stack: StackDep, catalog: CatalogDep, principal: PrincipalDep
) -> StatusResponse:
    name = await _set_queue(stack, catalog, principal, taskType, QueueState.IN_PROGRESS)
    return StatusResponse(status=f"Successfully resumed task queue for task type: {name}")


@router.get("/{taskType}/state", response_model=QueueState, summary="State of a task type's queue")
async def queue_state_of(
    taskType: TaskTypePath, stack: StackDep, catalog: CatalogDep, principal: PrincipalDep
) -> QueueState:
    require_permission(principal, Permission.READ)
    return await asyncio.to_thread(queue_state, catalog, _known(stack, taskType))


@router.get("/{taskType}/tasks", response_model=list[str], summary="Parent task names of a task type")
async def tasks_of_type(
    taskType: TaskTypePath, stack: StackDep, tasks: TaskReaderDep, principal: PrincipalDep
) -> list[str]:
    return sorted(await _readable_tasks(tasks, principal, _known(stack, taskType)))


@router.get("/{taskType}/taskstates", response_model=dict[str, TaskState], summary="Parent task states")
async def task_states(
    taskType: TaskTypePath, stack: StackDep, tasks: TaskReaderDep, principal: PrincipalDep
) -> dict[str, TaskState]:
    return await _readable_tasks(tasks, principal, _known(stack, taskType))


@router.get(
    "/{taskType}/taskcounts",
    response_model=dict[str, SubtaskCounts],
    summary="Subtask counts by state, per parent task (the 100 most recent)",
)
async def task_counts(
    taskType: TaskTypePath, stack: StackDep, tasks: TaskReaderDep, principal: PrincipalDep
) -> dict[str, SubtaskCounts]:
    names = list(await _readable_tasks(tasks, principal, _known(stack, taskType), limit=100))
    counts = await asyncio.gather(*(tasks.task_counts(n) for n in names))
    return dict(zip(names, counts, strict=True))


@router.get("/task/{taskName}/state", response_model=TaskState, summary="State of a parent task")
async def task_state(taskName: TaskNamePath, tasks: TaskReaderDep, principal: PrincipalDep) -> TaskState:
    return await tasks.task_state(await _readable_task(tasks, principal, taskName))


@router.get("/task/{taskName}/config", response_model=list[PinotTaskConfigOut], summary="Subtask configs")
async def task_config(
    taskName: TaskNamePath, tasks: TaskReaderDep, principal: PrincipalDep
) -> list[PinotTaskConfigOut]:
    configs = await _all_configs(tasks, await _readable_task(tasks, principal, taskName))
    return [PinotTaskConfigOut(taskType=c.task_type, configs=c.configs) for c in configs]


@router.get(
    "/task/{taskName}/subtasks",
    response_model=BatchDetails,
    summary="Subtask reports of a parent task: state, attempts, error, counts, durations (paged)",
)
async def task_subtasks(
    taskName: TaskNamePath,
    tasks: TaskReaderDep,
    principal: PrincipalDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=0, le=SUBTASK_PAGE)] = SUBTASK_PAGE,
) -> BatchDetails:
    return await tasks.batch_details(
        await _readable_task(tasks, principal, taskName), SubtaskQuery(offset=offset, limit=limit)
    )


@router.get("/subtask/{taskName}/state", response_model=dict[str, SubtaskState], summary="Subtask states")
async def subtask_states(
    taskName: TaskNamePath, tasks: TaskReaderDep, principal: PrincipalDep
) -> dict[str, SubtaskState]:
    return {
        r.subtask_name: r.state
        for r in await _all_subtasks(tasks, await _readable_task(tasks, principal, taskName))
    }


@router.get(
    "/subtask/{taskName}/config",
    response_model=dict[str, PinotTaskConfigOut],
    summary="Subtask configs by subtask name",
)
async def subtask_configs(
    taskName: TaskNamePath, tasks: TaskReaderDep, principal: PrincipalDep
) -> dict[str, PinotTaskConfigOut]:
    configs = await _all_configs(tasks, await _readable_task(tasks, principal, taskName))
    return {c.subtask_name: PinotTaskConfigOut(taskType=c.task_type, configs=c.configs) for c in configs}


@router.post(
    "/schedule",
    response_model=dict[str, CycleResult],
    summary="Run one trigger cycle now, for one table or every table with the task type(s) configured",
)
async def schedule(
    stack: StackDep,
    catalog: CatalogDep,
    starter: StarterDep,
    one_shot: OneShotDep,
    principal: PrincipalDep,
    task_type: Annotated[str | None, Query(alias="taskType", max_length=100)] = None,
    table_name: Annotated[str | None, Query(alias="tableName", max_length=200)] = None,
) -> dict[str, CycleResult]:
    if table_name is not None:
        named = parse_table_name(table_name)
        tables = await asyncio.to_thread(resolve_tables, catalog, principal, Permission.UPDATE, named)
    else:
        require(principal, Permission.UPDATE)
        tables = await asyncio.to_thread(catalog.list_tables)
    if task_type is not None:
        types = [stack.registry.get(validate_task_type(task_type))]
    else:
        names = {t for table in tables for t in (table.task.taskTypeConfigsMap if table.task else {})}
        types = [stack.registry.get(n) for n in sorted(names) if n in stack.registry]
    cluster = await asyncio.to_thread(catalog.cluster_configs)
    switch_on = orchestration_switch(cluster, stack.settings.enable_task_orchestration)
    return {
        t.task_type: await run_trigger_cycle(starter, one_shot, t, tables, switch_on=switch_on) for t in types
    }
