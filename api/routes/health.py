"""GET /health: 200 "OK" once the stack can take work, as Pinot's controller answers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from taskplan.api.deps import ClientDep
from taskplan.names import CONTROLLER_TASK_QUEUE

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"example": "OK"}}},
        503: {"description": "not ready, and why"},
    },
    summary="Liveness and readiness: Temporal reachable and a controller worker polling",
)
async def health(client: ClientDep) -> Response:
    try:
        described = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=CONTROLLER_TASK_QUEUE),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
    except Exception as exc:
        return JSONResponse({"code": 503, "error": f"Temporal is not reachable: {exc}"}, status_code=503)
    if not described.pollers:
        return JSONResponse({"code": 503, "error": "no controller worker is polling yet"}, status_code=503)
    return PlainTextResponse("OK")
