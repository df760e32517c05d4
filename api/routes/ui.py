"""The plan page: GET /ui (every active and recently ended plan the principal may read), GET /ui?plan=<id>
(one plan: batches, subtask failures with their samples, row counters). HTML from api/ui_pages.py. The page
stays at /ui whatever it shows, so the browser's Basic credentials for it cover the API's paths it calls."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from taskplan.api.auth import Permission, Principal, current_principal
from taskplan.api.deps import CatalogDep, ReaderDep, StackDep, TaskReaderDep
from taskplan.api.errors import ApiError
from taskplan.api.plan_access import may_steer, require_plan_table
from taskplan.api.ui_pages import Console, PlanView, Steering, error_page, plan_page, plans_page
from taskplan.clock import now_ms
from taskplan.models.errors import PlanNotFoundError, TaskNotFoundError
from taskplan.models.plan import PlanQuery, TaskPlan
from taskplan.models.task import BatchDetails, SubtaskQuery, TaskState
from taskplan.names import InvalidNameError, parse_plan_id, parse_table_name
from taskplan.plans import PlanReader, TaskReader

router = APIRouter(tags=["plan page"])

RECENT_PLANS = 50
PAGE_BATCHES = 100  # batch records shown on a plan's page
READ_BATCHES = 20  # the most recent batches read in full (failures, row counters)
NO_STORE = {"cache-control": "no-store"}
PlanParam = Annotated[str | None, Query(max_length=400, description="a plan id: that plan's page")]


async def _principal(request: Request) -> Principal | HTMLResponse:
    """The principal, or a 401 that makes a browser ask for the API's Basic credentials. In a thread, as
    FastAPI runs the other routes' dependency: checking an argon2 hash takes tens of milliseconds."""
    try:
        return await asyncio.to_thread(current_principal, request)
    except ApiError as err:
        return HTMLResponse(
            error_page(err.status, err.message, now_ms()),
            status_code=err.status,
            headers={"www-authenticate": 'Basic realm="taskplan", charset="UTF-8"', **NO_STORE},
        )


def _steering(principal: Principal, plan_id: str) -> Steering:
    return Steering(
        abort=may_steer(principal, plan_id, Permission.DELETE),
        stop_batch=may_steer(principal, plan_id, Permission.UPDATE),
    )


@router.get("/ui", response_class=HTMLResponse, include_in_schema=False)
async def ui(
    request: Request,
    stack: StackDep,
    catalog: CatalogDep,
    reader: ReaderDep,
    task_reader: TaskReaderDep,
    plan: PlanParam = None,
) -> HTMLResponse:
    principal = await _principal(request)
    if isinstance(principal, HTMLResponse):
        return principal
    settings = stack.settings
    console = Console(settings.temporal_web_url, settings.temporal_namespace)
    if plan is not None:
        try:
            await require_plan_table(catalog, plan, principal)
            view = await _plan_view(reader, task_reader, plan, _steering(principal, plan))
        except (PlanNotFoundError, InvalidNameError) as err:
            status = 404 if isinstance(err, PlanNotFoundError) else 400
            message = f"task plan {plan} not found" if status == 404 else str(err)
            return HTMLResponse(error_page(status, message, now_ms()), status_code=status, headers=NO_STORE)
        except ApiError as err:
            return HTMLResponse(error_page(err.status, err.message, now_ms()), err.status, headers=NO_STORE)
        return HTMLResponse(plan_page(view, console, now_ms()), headers=NO_STORE)
    active = await reader.list_active_plans(query=PlanQuery(batch_limit=0))
    recent = await asyncio.to_thread(reader.store.recent_ended_plan_snapshots, RECENT_PLANS * 4)
    names = await asyncio.to_thread(catalog.table_names)
    readable = {n for n in names if principal.may(Permission.READ, parse_table_name(n, typed=True))}

    def mine(plans: list[TaskPlan]) -> list[TaskPlan]:
        return [p for p in plans if parse_plan_id(p.plan_id)[0] in readable]

    shown_active, shown_recent = mine(active), mine(recent)[:RECENT_PLANS]
    steer = {p.plan_id: _steering(principal, p.plan_id) for p in shown_active}
    return HTMLResponse(plans_page(shown_active, shown_recent, console, steer, now_ms()), headers=NO_STORE)


async def _plan_view(
    reader: PlanReader, task_reader: TaskReader, plan_id: str, steering: Steering
) -> PlanView:
    plan = await reader.get_plan(plan_id, PlanQuery(batch_limit=PAGE_BATCHES))
    recent = list(reversed(plan.batches))[:READ_BATCHES]

    async def details(name: str, state: TaskState, failed: int) -> BatchDetails | None:
        # Only a batch with failures is read subtask by subtask; the others for their row counters.
        limit = 1000 if failed or state is TaskState.FAILED else 0
        try:
            return await task_reader.batch_details(name, SubtaskQuery(limit=limit))
        except TaskNotFoundError:
            return None

    read = await asyncio.gather(
        *(details(b.submitted_task_name, b.task_state, b.num_failed_subtasks) for b in recent)
    )
    return PlanView(plan=plan, steering=steering, batches=[b for b in read if b is not None])
