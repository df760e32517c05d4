"""GET /health: 200 "OK" once the stack can take work, as Pinot's controller answers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
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
        503: {"content": {"text/plain": {"example": "Pinot controller status is STARTING (why)"}}},
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
        return _unhealthy("BAD", f"Temporal is not reachable: {exc}")
    if not described.pollers:
        return _unhealthy("STARTING", "no controller worker is polling yet")
    return PlainTextResponse("OK")


def _unhealthy(status: str, why: str) -> Response:
    """Pinot's 503: a text body ``Pinot controller status is <STATUS>``, and why."""
    return PlainTextResponse(f"Pinot controller status is {status} ({why})", status_code=503)
