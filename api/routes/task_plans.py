"""The documented task plan endpoints, under /tasks/taskPlans."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import ServiceDep
from api.errors import ERROR_RESPONSES
from taskplan.models.base import WireModel
from taskplan.names import parse_plan_id, split_table_name_with_type, validate_task_type
from workflows.models import PlanQuery, PlanStatus, TaskPlan

router = APIRouter(prefix="/tasks/taskPlans", tags=["task plans"], responses=ERROR_RESPONSES)

PLAN_ID_EXAMPLE = "myTable_OFFLINE__SegmentPurgeTask__0b1c5a0e-5d2a-4a4e-9d1e-2b7c1f0a9e11"
PlanIdPath = Annotated[
    str,
    Path(max_length=400, examples=[PLAN_ID_EXAMPLE], description="<tableNameWithType>__<taskType>__<uuid>"),
]
TableQuery = Annotated[str | None, Query(max_length=200, examples=["myTable_OFFLINE"])]
TaskTypeQuery = Annotated[str | None, Query(max_length=100, examples=["SegmentPurgeTask"])]
BatchOffset = Annotated[
    int | None, Query(ge=0, le=10_000_000, description="first retained batch record to return")
]
BatchLimit = Annotated[
    int, Query(ge=0, le=1000, description="batch records to return (the most recent by default)")
]


class PlanActivity(WireModel):
    plan_id: str
    active: bool
    status: PlanStatus


def _filters(table: str | None, task_type: str | None) -> tuple[str | None, str | None]:
    if table is not None:
        split_table_name_with_type(table)
    if task_type is not None:
        validate_task_type(task_type)
    return table, task_type


@router.get("/isActive/{taskPlanId}", response_model=PlanActivity, summary="Is a task plan active?")
async def is_active(taskPlanId: PlanIdPath, service: ServiceDep) -> PlanActivity:  # noqa: N803 - documented name
    parse_plan_id(taskPlanId)
    plan = await service.get_plan(taskPlanId, PlanQuery(batch_limit=0))
    return PlanActivity(plan_id=taskPlanId, active=plan.status.is_active, status=plan.status)


@router.get("/active", response_model=list[TaskPlan], summary="All active task plans, optionally filtered")
async def active_plans(
    service: ServiceDep,
    tableNameWithType: TableQuery = None,
    taskType: TaskTypeQuery = None,  # noqa: N803
    batchLimit: BatchLimit = 100,  # noqa: N803
) -> list[TaskPlan]:
    table, task_type = _filters(tableNameWithType, taskType)
    return await service.list_active_plans(table, task_type, PlanQuery(batch_limit=batchLimit))


@router.get("/active/ids", response_model=list[str], summary="Ids of the active task plans")
async def active_plan_ids(
    service: ServiceDep,
    tableNameWithType: TableQuery = None,
    taskType: TaskTypeQuery = None,  # noqa: N803
) -> list[str]:
    table, task_type = _filters(tableNameWithType, taskType)
    return await service.list_active_plan_ids(table, task_type)


@router.get("", response_model=list[str], summary="Every task plan id of a table and task type")
async def plan_ids(
    service: ServiceDep,
    tableNameWithType: Annotated[str, Query(max_length=200)],  # noqa: N803
    taskType: Annotated[str, Query(max_length=100)],  # noqa: N803
) -> list[str]:
    table, task_type = _filters(tableNameWithType, taskType)
    assert table is not None and task_type is not None
    return await service.list_plan_ids(table, task_type)


@router.get("/{planId}", response_model=TaskPlan, summary="The full details of a task plan")
async def get_plan(
    planId: PlanIdPath,
    service: ServiceDep,
    batchOffset: BatchOffset = None,  # noqa: N803
    batchLimit: BatchLimit = 1000,  # noqa: N803
) -> TaskPlan:
    parse_plan_id(planId)
    return await service.get_plan(planId, PlanQuery(batch_offset=batchOffset, batch_limit=batchLimit))


@router.delete(
    "/{planId}",
    response_model=TaskPlan,
    summary="Abort a task plan: ABORTING, no new batch; poll isActive until it stops",
)
async def abort_plan(planId: PlanIdPath, service: ServiceDep) -> TaskPlan:  # noqa: N803
    parse_plan_id(planId)
    return await service.abort_plan(planId)
