"""GET /metrics: this process's orchestration metrics in Prometheus text format."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.auth import Permission, PrincipalDep, require
from taskplan.metrics import prometheus_text

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, summary="Prometheus metrics of this API process")
async def prometheus_metrics(principal: PrincipalDep) -> Response:
    require(principal, Permission.READ)  # cluster-wide: the series name every table
    return Response(await asyncio.to_thread(prometheus_text), media_type=CONTENT_TYPE_LATEST)
