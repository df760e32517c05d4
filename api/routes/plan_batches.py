"""Steering one batch of a plan: PUT /tasks/taskPlans/{planId}/batches/{taskName}/stop (Pinot's style: a
resource path and a verb, as `PUT /tasks/{taskType}/stop`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from taskplan.api.auth import Permission, PrincipalDep
from taskplan.api.deps import AborterDep, CatalogDep
from taskplan.api.errors import ERROR_RESPONSES, ApiError
from taskplan.api.plan_access import require_plan_table
from taskplan.models.base import WireModel
from taskplan.models.plan import PlanStatus
from taskplan.models.task import TaskState
from taskplan.names import parse_task_name

router = APIRouter(prefix="/tasks/taskPlans", tags=["task plans"], responses=ERROR_RESPONSES)

PlanIdPath = Annotated[
    str,
    Path(
        max_length=400,
        examples=["myTable_OFFLINE__SegmentPurgeTask__0b1c5a0e-5d2a-4a4e-9d1e-2b7c1f0a9e11"],
        description="<tableNameWithType>__<taskType>__<uuid>",
    ),
]
TaskNamePath = Annotated[
    str,
    Path(
        max_length=200, examples=["Task_SegmentPurgeTask_1700000000000"], description="the batch's task name"
    ),
]


class BatchStopAnswer(WireModel):
    plan_id: str
    task_name: str
    status: str  # STOPPING: the batch's subtasks are being cancelled; it ends STOPPED
    plan_status: PlanStatus


@router.put(
    "/{planId}/batches/{taskName}/stop",
    response_model=BatchStopAnswer,
    summary="Stop a plan's running batch: its subtasks are cancelled, it ends STOPPED; the plan goes on",
)
async def stop_batch(
    planId: PlanIdPath,
    taskName: TaskNamePath,
    aborter: AborterDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> BatchStopAnswer:
    await require_plan_table(catalog, planId, principal, Permission.UPDATE)
    parse_task_name(taskName)  # 400 for what cannot be a task name
    found = await aborter.stop_batch(planId, taskName)
    if found.batch_state is None:
        raise ApiError(404, f"plan {planId} has no batch {taskName} (among its retained batch records)")
    if not found.plan_status.is_active:
        raise ApiError(
            409, f"plan {planId} has ended ({found.plan_status.value}): batch {taskName} is not running"
        )
    if found.batch_state is not TaskState.IN_PROGRESS:
        raise ApiError(
            409, f"batch {taskName} of plan {planId} is not running: it is {found.batch_state.value}"
        )
    return BatchStopAnswer(
        plan_id=planId, task_name=taskName, status="STOPPING", plan_status=found.plan_status
    )
