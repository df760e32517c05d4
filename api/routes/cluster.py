"""Pinot's cluster config endpoints, holding the orchestration switch and the other documented properties."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Path

from api.auth import Permission, PrincipalDep, require
from api.deps import CatalogDep, StackDep
from api.errors import ERROR_RESPONSES, ApiError
from api.models import StatusResponse
from taskplan.settings import ENABLE_ORCHESTRATION, ORPHAN_CLEANUP_INTERVAL

router = APIRouter(prefix="/cluster/configs", tags=["cluster"], responses=ERROR_RESPONSES)
DOCUMENTED = (ENABLE_ORCHESTRATION, ORPHAN_CLEANUP_INTERVAL)
BOOLEAN_KEYS = (ENABLE_ORCHESTRATION,)


@router.get("", summary="Cluster configs: the documented properties (from the properties file) and overrides")
async def get_configs(
    catalog: CatalogDep,
    stack: StackDep,
    principal: PrincipalDep,
) -> dict[str, str]:
    # Cluster-wide, like setting them: a principal restricted to tables reads none (they may hold secrets).
    require(principal, Permission.READ)
    defaults = {key: stack.settings.property(key) or "" for key in DOCUMENTED}
    return {**defaults, **await asyncio.to_thread(catalog.cluster_configs)}


@router.post("", response_model=StatusResponse, summary="Set cluster configs")
async def set_configs(
    catalog: CatalogDep,
    values: Annotated[dict[str, str], Body(examples=[{ENABLE_ORCHESTRATION: "false"}], max_length=100)],
    principal: PrincipalDep,
) -> StatusResponse:
    require(principal, Permission.UPDATE)
    for key, value in values.items():
        if not key or len(key) > 300 or len(value) > 10_000:
            raise ApiError(
                400, f"cluster config {key[:50]!r}: names are 1-300 characters, values at most 10,000"
            )
        if key in BOOLEAN_KEYS and value.strip().lower() not in ("true", "false"):
            raise ApiError(400, f"cluster config {key} must be true or false, got {value!r}")
        if key == ORPHAN_CLEANUP_INTERVAL and not (value.isdigit() and int(value) > 0):
            raise ApiError(400, f"cluster config {key} must be a positive number of seconds, got {value!r}")
    await asyncio.to_thread(catalog.set_cluster_configs, values)
    return StatusResponse(status="Updated cluster config.")


@router.delete("/{configName}", response_model=StatusResponse, summary="Remove a cluster config override")
async def delete_config(
    configName: Annotated[str, Path(max_length=300)],
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> StatusResponse:
    require(principal, Permission.DELETE)
    if not await asyncio.to_thread(catalog.delete_cluster_config, configName):
        raise ApiError(404, f"cluster config {configName} is not set")
    return StatusResponse(status=f"Deleted cluster config: {configName}")
