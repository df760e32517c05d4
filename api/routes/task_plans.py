"""The documented task plan endpoints, under /tasks/taskPlans."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Path, Query

from taskplan.api.auth import Permission, Principal, PrincipalDep, require_permission, require_table
from taskplan.api.deps import AborterDep, CatalogDep, ReaderDep
from taskplan.api.errors import ERROR_RESPONSES, ApiError
from taskplan.catalog import Catalog
from taskplan.models.base import WireModel
from taskplan.models.errors import PlanNotFoundError
from taskplan.models.plan import PlanQuery, PlanStatus, TaskPlan
from taskplan.names import parse_plan_id, parse_table_name, validate_task_type

# Path parameters keep the documented names ({taskPlanId}, {planId}) so the OpenAPI page shows them.
router = APIRouter(prefix="/tasks/taskPlans", tags=["task plans"], responses=ERROR_RESPONSES)

PLAN_ID_EXAMPLE = "myTable_OFFLINE__SegmentPurgeTask__0b1c5a0e-5d2a-4a4e-9d1e-2b7c1f0a9e11"
MAX_WAIT_S = 3600
PlanIdPath = Annotated[
    str,
    Path(max_length=400, examples=[PLAN_ID_EXAMPLE], description="<tableNameWithType>__<taskType>__<uuid>"),
]
TableQuery = Annotated[
    str | None, Query(alias="tableNameWithType", max_length=200, examples=["myTable_OFFLINE"])
]
TaskTypeQuery = Annotated[str | None, Query(alias="taskType", max_length=100, examples=["SegmentPurgeTask"])]
BatchOffset = Annotated[
    int | None,
    Query(alias="batchOffset", ge=0, le=10_000_000, description="first retained batch record to return"),
]
BatchLimit = Annotated[
    int,
    Query(
        alias="batchLimit", ge=0, le=1000, description="batch records to return (the most recent by default)"
    ),
]


class PlanActivity(WireModel):
    plan_id: str
    active: bool
    status: PlanStatus


async def _require_plan_table(
    catalog: Catalog, plan_id: str, principal: Principal, permission: Permission = Permission.READ
) -> None:
    """A plan of a dropped table is gone, even while Temporal is still deleting its history; a plan of a
    table that is not the principal's is as missing."""
    table, _ = parse_plan_id(plan_id)
    require_table(
        principal, permission, parse_table_name(table, typed=True), missing=PlanNotFoundError(plan_id)
    )
    if await asyncio.to_thread(catalog.get_table_config, table) is None:
        raise PlanNotFoundError(plan_id)


async def _existing(catalog: Catalog, plan_ids: list[str], principal: Principal) -> list[str]:
    """Plans of tables that exist and that the principal may read."""
    names = await asyncio.to_thread(catalog.table_names)
    readable = {n for n in names if principal.may(Permission.READ, parse_table_name(n, typed=True))}
    return [p for p in plan_ids if parse_plan_id(p)[0] in readable]


def _filters(table: str | None, task_type: str | None) -> None:
    """Validate optional filters before they reach a visibility query."""
    if table is not None:
        parse_table_name(table, typed=True)
    if task_type is not None:
        validate_task_type(task_type)


@router.get("/isActive/{taskPlanId}", response_model=PlanActivity, summary="Is a task plan active?")
async def is_active(
    taskPlanId: Annotated[str, Path(max_length=400)],
    reader: ReaderDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> PlanActivity:
    await _require_plan_table(catalog, taskPlanId, principal)
    plan = await reader.get_plan(taskPlanId, PlanQuery(batch_limit=0))
    return PlanActivity(plan_id=taskPlanId, active=plan.status.is_active, status=plan.status)


@router.get("/active", response_model=list[TaskPlan], summary="All active task plans, optionally filtered")
async def active_plans(
    reader: ReaderDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
    table: TableQuery = None,
    task_type: TaskTypeQuery = None,
    batch_limit: BatchLimit = 100,
) -> list[TaskPlan]:
    _filters(table, task_type)
    plans = await reader.list_active_plans(table, task_type, PlanQuery(batch_limit=batch_limit))
    kept = set(await _existing(catalog, [p.plan_id for p in plans], principal))
    return [p for p in plans if p.plan_id in kept]


@router.get("/active/ids", response_model=list[str], summary="Ids of the active task plans")
async def active_plan_ids(
    reader: ReaderDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
    table: TableQuery = None,
    task_type: TaskTypeQuery = None,
) -> list[str]:
    _filters(table, task_type)
    return await _existing(catalog, await reader.list_active_plan_ids(table, task_type), principal)


@router.get("", response_model=list[str], summary="Every task plan id of a table and task type")
async def plan_ids(
    reader: ReaderDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
    table: Annotated[str, Query(alias="tableNameWithType", max_length=200)],
    task_type: Annotated[str, Query(alias="taskType", max_length=100)],
) -> list[str]:
    _filters(table, task_type)
    # A table that is not the principal's lists no plans, as a missing table does (_existing drops them).
    require_permission(principal, Permission.READ)
    return await _existing(catalog, await reader.list_plan_ids(table, task_type), principal)


@router.get("/{planId}", response_model=TaskPlan, summary="The full details of a task plan")
async def get_plan(
    planId: PlanIdPath,
    reader: ReaderDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
    batch_offset: BatchOffset = None,
    batch_limit: BatchLimit = 1000,
    wait_for_terminal_s: Annotated[
        float | None,
        Query(
            alias="waitForTerminalSeconds",
            ge=0,
            le=MAX_WAIT_S,
            description="wait up to this long for the plan to end; 408 if it is still active then",
        ),
    ] = None,
    live: Annotated[
        bool,
        Query(
            description="wait for the running plan's own answer (its controller may be busy), instead of its "
            "catalog snapshot after taskplan.api.planQueryTimeoutSeconds"
        ),
    ] = False,
) -> TaskPlan:
    await _require_plan_table(catalog, planId, principal)
    query = PlanQuery(batch_offset=batch_offset, batch_limit=batch_limit)
    plan = await reader.get_plan(planId, query, live=live)
    if wait_for_terminal_s is None:
        return plan
    deadline = time.monotonic() + wait_for_terminal_s
    interval = 0.1
    while plan.status.is_active:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ApiError(408, f"task plan {planId} is still {plan.status} after {wait_for_terminal_s:g} s")
        await asyncio.sleep(min(interval, remaining))
        interval = min(interval * 2, 1.0)
        plan = await reader.get_plan(planId, query, live=live)
    return plan


@router.delete(
    "/{planId}",
    response_model=TaskPlan,
    summary="Abort a task plan: ABORTING, no new batch; poll isActive until it stops",
)
async def abort_plan(
    planId: PlanIdPath, aborter: AborterDep, catalog: CatalogDep, principal: PrincipalDep
) -> TaskPlan:
    await _require_plan_table(catalog, planId, principal, Permission.DELETE)
    return await aborter.abort_plan(planId)


ReasonQuery = Annotated[
    str,
    Query(max_length=1000, description="why (shown in the plan's statusMessage)", examples=["maintenance"]),
]


@router.put(
    "/{planId}/pause",
    response_model=TaskPlan,
    summary="Pause a task plan: no new batch until resumed (the running batch finishes); 409 if it ended",
)
async def pause_plan(
    planId: PlanIdPath,
    aborter: AborterDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
    reason: ReasonQuery = "",
) -> TaskPlan:
    await _require_plan_table(catalog, planId, principal, Permission.UPDATE)
    return await aborter.pause_plan(planId, reason.strip())


@router.put(
    "/{planId}/resume",
    response_model=TaskPlan,
    summary="Resume a paused task plan: its next batch starts; 409 if it ended or is not paused",
)
async def resume_plan(
    planId: PlanIdPath,
    aborter: AborterDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
    reason: ReasonQuery = "",
) -> TaskPlan:
    await _require_plan_table(catalog, planId, principal, Permission.UPDATE)
    return await aborter.resume_plan(planId, reason.strip())
