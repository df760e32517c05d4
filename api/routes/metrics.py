"""GET /metrics: the orchestration metrics in Prometheus text format.

The API's own, merged with the documented families of each ``taskplan.api.metricsMergeTargets`` endpoint
(in the embedded stack: the controller worker's, where plans are progressed), so that the address a user
already knows shows every documented metric with its current value.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from taskplan.api.auth import Permission, PrincipalDep, require
from taskplan.api.deps import StackDep
from taskplan.metrics import prometheus_text

router = APIRouter(tags=["metrics"])
log = logging.getLogger(__name__)

# Below Prometheus' default scrape timeout (10 s), so a stuck target costs its samples, not the whole scrape.
SCRAPE_TIMEOUT_S = 3.0


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics: this API process's, merged with its configured merge targets'",
)
async def prometheus_metrics(principal: PrincipalDep, stack: StackDep) -> Response:
    require(principal, Permission.READ)  # cluster-wide: the series name every table
    targets = stack.settings.metrics_merge_urls
    scraped: dict[str, str | None] | None = None
    if targets:
        async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S) as http:
            texts = await asyncio.gather(*(_scrape(http, url) for url in targets.values()))
        scraped = dict(zip(targets, texts, strict=True))
    return Response(await asyncio.to_thread(prometheus_text, scraped), media_type=CONTENT_TYPE_LATEST)


async def _scrape(http: httpx.AsyncClient, url: str) -> str | None:
    try:
        response = await http.get(url)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("metrics merge target %s did not answer: %s", url, exc)
        return None
    return response.text
