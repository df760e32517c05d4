"""Health: ``GET /health`` (200 "OK" once the stack can take work, as Pinot's controller answers) and the
probes a container orchestrator needs, open without credentials like ``/health``:

- ``GET /health/liveness``: 200 while the process serves requests (restart it when this fails);
- ``GET /health/readiness``: 200 when Temporal answers, the catalog answers and a controller worker polls;
  503 with JSON naming each check that failed (send it no traffic meanwhile, but do not restart it).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from taskplan.api.deps import CatalogDep, ClientDep
from taskplan.names import CONTROLLER_TASK_QUEUE

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 5.0


@router.get(
    "/health",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"example": "OK"}}},
        503: {"content": {"text/plain": {"example": "Pinot controller status is STARTING (why)"}}},
    },
    summary="Liveness and readiness: Temporal reachable and a controller worker polling",
)
async def health(client: ClientDep) -> Response:
    problem = await _controller_problem(client)
    if problem is None:
        return PlainTextResponse("OK")
    return _unhealthy("BAD" if problem.startswith("Temporal") else "STARTING", problem)


def _unhealthy(status: str, why: str) -> Response:
    """Pinot's 503: a text body ``Pinot controller status is <STATUS>``, and why."""
    return PlainTextResponse(f"Pinot controller status is {status} ({why})", status_code=503)


async def _controller_problem(client: Client) -> str | None:
    """None when a controller worker polls its queue; else what is wrong (Temporal unreachable, or none)."""
    try:
        described = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=CONTROLLER_TASK_QUEUE),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=timedelta(seconds=CHECK_TIMEOUT_S),
        )
    except Exception as exc:
        return f"Temporal is not reachable: {exc}"
    if not described.pollers:
        return "no controller worker is polling yet"
    return None


@router.get(
    "/health/liveness",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"example": "OK"}}}},
    summary="Liveness probe: the process serves requests (checks nothing else)",
)
async def liveness() -> Response:
    return PlainTextResponse("OK")


@router.get(
    "/health/readiness",
    responses={
        200: {"content": {"application/json": {"example": {"ready": True, "checks": {}}}}},
        503: {"description": "not ready: the checks that failed, named"},
    },
    summary="Readiness probe: Temporal reachable, catalog reachable, a controller worker polling",
)
async def readiness(client: ClientDep, catalog: CatalogDep) -> Response:
    checks: dict[str, str] = {}
    problem = await _controller_problem(client)
    if problem is None:
        checks["temporal"] = checks["controller"] = "ok"
    elif problem.startswith("Temporal"):
        checks["temporal"] = problem
        checks["controller"] = "unknown: Temporal is not reachable"
    else:
        checks["temporal"], checks["controller"] = "ok", problem
    try:
        await asyncio.wait_for(asyncio.to_thread(catalog.ping), timeout=CHECK_TIMEOUT_S)
        checks["catalog"] = "ok"
    except Exception as exc:
        checks["catalog"] = f"the catalog is not reachable: {type(exc).__name__}: {exc}"
    failed = {name: why for name, why in checks.items() if why != "ok"}
    if failed:
        error = "not ready: " + "; ".join(f"{name}: {why}" for name, why in failed.items())
        return JSONResponse({"code": 503, "error": error, "checks": checks}, status_code=503)
    return JSONResponse({"ready": True, "checks": checks})
