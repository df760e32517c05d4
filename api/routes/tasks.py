"""Pinot's task endpoints: triggers (execute) and task types."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from api.deps import CatalogDep, ServiceDep, StackDep
from api.errors import ERROR_RESPONSES, ApiError
from api.models import AdhocTaskConfig, PlanCreated
from api.routes.tables import resolve_tables
from taskplan.names import validate_task_type
from taskplan.service import TaskGenerationError
from taskplan.triggers import Flow, decide_flow, legacy_refusal, orchestration_switch
from workflows.models import PlanSource

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=ERROR_RESPONSES)

GENERATION_STATUS = {
    "TaskConfigError": 400,
    "TableNotFound": 404,
    "UnknownTaskType": 404,
    "BatchTooLarge": 400,
}


@router.get("/tasktypes", response_model=list[str], summary="Task types this cluster can run")
async def task_types(stack: StackDep) -> list[str]:
    return stack.registry.task_types()


@router.post(
    "/execute",
    response_model=PlanCreated | dict[str, str],
    summary="Ad hoc trigger: a plan if orchestrated, else a legacy batch ({tableNameWithType: taskName})",
)
async def execute(
    request: AdhocTaskConfig, stack: StackDep, catalog: CatalogDep, service: ServiceDep
) -> PlanCreated | dict[str, str]:
    registered = stack.registry.get(validate_task_type(request.taskType))
    tables = await asyncio.to_thread(resolve_tables, catalog, request.tableName)
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
    if decision.flow is Flow.ORCHESTRATED:
        plan_id = await service.start_plan(
            table.tableName, registered.task_type, PlanSource.ADHOC_CONFIG, dict(request.taskConfigs)
        )
        return PlanCreated(
            taskPlanId=plan_id, tableNameWithType=table.tableName, taskType=registered.task_type
        )
    refusal = legacy_refusal(registered, decision)
    if refusal:
        raise ApiError(400, refusal)
    try:
        name = await service.run_one_shot(registered.task_type, [table.tableName], dict(request.taskConfigs))
    except TaskGenerationError as exc:
        raise ApiError(
            GENERATION_STATUS.get(exc.error_type or "", 400), f"task generation failed: {exc}"
        ) from exc
    return {table.tableName: name}
