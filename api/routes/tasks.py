"""Pinot's task triggers (execute, schedule) and task queues (stop, resume, state), Pinot's wire format."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Query

from taskplan.api.auth import Permission, Principal, PrincipalDep, require, require_permission
from taskplan.api.deps import CatalogDep, ClientDep, OneShotDep, StackDep, StarterDep
from taskplan.api.errors import ERROR_RESPONSES, ApiError
from taskplan.api.models import AdhocTaskConfig, StatusResponse
from taskplan.api.table_access import resolve_tables
from taskplan.api.task_access import TaskTypePath, known_task_type
from taskplan.bootstrap import Stack
from taskplan.catalog import Catalog
from taskplan.cycle import run_trigger_cycle
from taskplan.gate import QueueState, queue_state, set_queue_state
from taskplan.models import errors
from taskplan.models.errors import TaskAlreadyExistsError, TaskGenerationError
from taskplan.models.plan import CycleResult, PlanSource
from taskplan.models.table import TableTaskConfig
from taskplan.names import adhoc_task_name, parse_table_name, validate_minion_tag, validate_task_type
from taskplan.plan_configs import credential_problems
from taskplan.plans.validation import validate_table_config
from taskplan.triggers import Flow, decide_flow, legacy_refusal, orchestration_switch

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=ERROR_RESPONSES)

GENERATION_STATUS = {
    errors.TASK_CONFIG_ERROR: 400,
    errors.TABLE_NOT_FOUND: 404,
    errors.UNKNOWN_TASK_TYPE: 404,
    errors.BATCH_TOO_LARGE: 400,
}
GENERATION_ERRORS_KEY = "generationErrors"
SCHEDULING_ERRORS_KEY = "schedulingErrors"
CYCLE_RESULTS_KEY = "cycleResults"  # taskplan's own: the cycle per task type, as a JSON string
MINION_INSTANCE_TAG_KEY = "minionInstanceTag"
FIRST_BATCH_WAIT_S = 1.6  # how long an orchestrated execute waits to name its plan's first batch


@router.get("/tasktypes", response_model=list[str], summary="Task types this cluster can run")
async def task_types(stack: StackDep, principal: PrincipalDep) -> list[str]:
    require_permission(principal, Permission.READ)
    return stack.registry.task_types()


def _stopped(catalog: Catalog, task_type: str) -> bool:
    return queue_state(catalog, task_type) is QueueState.STOPPED


async def _first_batch(catalog: Catalog, plan_id: str) -> tuple[str, str] | None:
    """(task name, table) of the plan's first batch once it is recorded, within FIRST_BATCH_WAIT_S (the
    catalog is asked again after 25 ms, doubling)."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + FIRST_BATCH_WAIT_S, 0.025
    while True:
        first = await asyncio.to_thread(catalog.tasks.first_task_of_plan, plan_id)
        if first is not None or loop.time() + pause > deadline:
            return first
        await asyncio.sleep(pause)
        pause *= 2


@router.post(
    "/execute",
    response_model=dict[str, object],
    summary="Ad hoc trigger: {tableNameWithType: taskName} (Pinot); a plan adds taskPlanId when orchestrated",
)
async def execute(
    request: AdhocTaskConfig,
    stack: StackDep,
    catalog: CatalogDep,
    client: ClientDep,
    starter: StarterDep,
    one_shot: OneShotDep,
    principal: PrincipalDep,
) -> dict[str, object]:
    """Pinot's ``executeAdhocTask``. A raw table name whose table has both types generates for both; a
    stopped task queue, or nothing to generate, answers ``{}``."""
    registered = stack.registry.get(validate_task_type(request.taskType))
    task_type = registered.task_type
    tables = await asyncio.to_thread(
        resolve_tables, catalog, principal, Permission.UPDATE, parse_table_name(request.tableName)
    )
    name = adhoc_task_name(task_type, request.taskName) if request.taskName else None
    if MINION_INSTANCE_TAG_KEY in request.taskConfigs:
        validate_minion_tag(request.taskConfigs[MINION_INSTANCE_TAG_KEY])
    # Pinot's order: a stopped queue answers {} before a taken name is a 409.
    if await asyncio.to_thread(_stopped, catalog, task_type):
        return {}
    if name is not None and await asyncio.to_thread(catalog.tasks.get, name) is not None:
        raise TaskAlreadyExistsError(name, request.taskName)
    cluster = await asyncio.to_thread(catalog.cluster_configs)
    decision = decide_flow(
        registered,
        request.taskConfigs,
        tables,
        switch_on=orchestration_switch(cluster, stack.settings.enable_task_orchestration),
    )
    # Refuse bad task configs (a predicate that is not one expression, a path outside the allowed roots)
    # now, with a 400, rather than as a failed plan.
    # A password in them is refused before anything reaches Temporal (the check below is an Update).
    secret_problems = credential_problems({task_type: request.taskConfigs})
    if secret_problems:
        raise ApiError(400, "invalid task configs: " + "; ".join(secret_problems))
    for table in tables:
        trial = table.model_copy(
            update={"task": TableTaskConfig(taskTypeConfigsMap={task_type: dict(request.taskConfigs)})}
        )
        problems = await validate_table_config(client, trial)
        if problems:
            raise ApiError(400, "invalid task configs: " + "; ".join(problems))
    if decision.flow is Flow.ORCHESTRATED:
        answer: dict[str, object] = {}
        plan_ids: dict[str, str] = {}
        for table in tables:
            plan_ids[table.tableName] = await starter.start_plan(
                table.tableName, task_type, PlanSource.ADHOC_CONFIG, dict(request.taskConfigs)
            )
        first_table = tables[0].tableName
        answer.update(taskPlanId=plan_ids[first_table], tableNameWithType=first_table, taskType=task_type)
        if len(plan_ids) > 1:
            answer["taskPlanIds"] = plan_ids
        for plan_id in plan_ids.values():
            first = await _first_batch(catalog, plan_id)
            if first is not None:
                answer[first[1]] = first[0]
        return answer
    refusal = legacy_refusal(registered, decision)
    if refusal:
        raise ApiError(400, refusal)
    try:
        started = await one_shot.start(
            task_type, [t.tableName for t in tables], dict(request.taskConfigs), name=name
        )
    except TaskGenerationError as exc:
        raise ApiError(
            GENERATION_STATUS.get(exc.error_type or "", 400), f"task generation failed: {exc}"
        ) from exc
    except TaskAlreadyExistsError as exc:
        raise TaskAlreadyExistsError(exc.task_name, request.taskName) from None
    if name is not None:
        await asyncio.to_thread(catalog.tasks.undelete, name)
    if started.num_subtasks == 0:
        return {}
    return {t.tableName: started.name for t in tables}


@router.post(
    "/schedule",
    response_model=dict[str, str],
    summary="One trigger cycle now: {taskType: 'names,...', generationErrors, schedulingErrors}",
)
async def schedule(
    stack: StackDep,
    catalog: CatalogDep,
    starter: StarterDep,
    one_shot: OneShotDep,
    principal: PrincipalDep,
    task_type: Annotated[str | None, Query(alias="taskType", max_length=100)] = None,
    table_name: Annotated[str | None, Query(alias="tableName", max_length=200)] = None,
    minion_instance_tag: Annotated[str | None, Query(alias="minionInstanceTag", max_length=128)] = None,
) -> dict[str, str]:
    """Pinot's ``scheduleTasks``: per task type, the comma-separated names of what was scheduled (legacy
    task names, and the ids of the plans created), and every generation and scheduling error. taskplan
    adds ``cycleResults``: the cycle of each task type as a JSON string (plans created, tables skipped
    for an active plan, legacy tasks, errors)."""
    if minion_instance_tag is not None:
        validate_minion_tag(minion_instance_tag)
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
    answer: dict[str, str] = {}
    cycles: dict[str, CycleResult] = {}
    generation_errors: list[str] = []
    scheduling_errors: list[str] = []
    for t in types:
        cycle = await run_trigger_cycle(
            starter,
            one_shot,
            t,
            tables,
            switch_on=switch_on,
            queue_stopped=await asyncio.to_thread(_stopped, catalog, t.task_type),
            minion_instance_tag=minion_instance_tag,
        )
        cycles[t.task_type] = cycle
        scheduled = list(dict.fromkeys([*cycle.legacy_tasks.values(), *cycle.task_plans.values()]))
        if scheduled:
            answer[t.task_type] = ",".join(scheduled)
        generation_errors.extend(f"{table}: {error}" for table, error in cycle.errors.items())
        scheduling_errors.extend(cycle.scheduling_errors)
    answer[GENERATION_ERRORS_KEY] = ",".join(generation_errors)
    answer[SCHEDULING_ERRORS_KEY] = ",".join(scheduling_errors)
    answer[CYCLE_RESULTS_KEY] = json.dumps(
        {name: cycle.model_dump(mode="json", by_alias=True) for name, cycle in cycles.items()}
    )
    return answer


# ------------------------------------------------------------------ task queues


async def _set_queue(
    stack: Stack, catalog: Catalog, principal: Principal, task_type: str, state: QueueState
) -> str:
    require(principal, Permission.UPDATE)
    name = known_task_type(stack, task_type)
    await asyncio.to_thread(set_queue_state, catalog, name, state)
    return name


@router.put("/{taskType}/stop", response_model=StatusResponse, summary="Stop a task type's queue")
async def stop_queue(
    taskType: TaskTypePath, stack: StackDep, catalog: CatalogDep, principal: PrincipalDep
) -> StatusResponse:
    """No plan of the task type starts a new batch, and no legacy task starts, until it is resumed (running
    batches finish)."""
    name = await _set_queue(stack, catalog, principal, taskType, QueueState.STOPPED)
    return StatusResponse(status=f"Successfully stopped tasks for task type: {name}")


@router.put("/{taskType}/resume", response_model=StatusResponse, summary="Resume a task type's queue")
async def resume_queue(
    taskType: TaskTypePath, stack: StackDep, catalog: CatalogDep, principal: PrincipalDep
) -> StatusResponse:
    name = await _set_queue(stack, catalog, principal, taskType, QueueState.IN_PROGRESS)
    return StatusResponse(status=f"Successfully resumed tasks for task type: {name}")


@router.get("/{taskType}/state", response_model=QueueState, summary="State of a task type's queue")
async def queue_state_of(
    taskType: TaskTypePath, stack: StackDep, catalog: CatalogDep, principal: PrincipalDep
) -> QueueState:
    require_permission(principal, Permission.READ)
    return await asyncio.to_thread(queue_state, catalog, known_task_type(stack, taskType))
