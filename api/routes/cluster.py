"""Pinot's cluster config endpoints, holding the orchestration switch and the other documented properties."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Path

from taskplan.api.auth import Permission, PrincipalDep, require
from taskplan.api.deps import CatalogDep, StackDep
from taskplan.api.errors import ERROR_RESPONSES, ApiError
from taskplan.api.models import StatusResponse
from taskplan.cluster_configs import RUNTIME_KEYS, problem
from taskplan.settings import ENABLE_ORCHESTRATION

router = APIRouter(prefix="/cluster/configs", tags=["cluster"], responses=ERROR_RESPONSES)
DOCUMENTED = tuple(RUNTIME_KEYS)  # listed with their property values until overridden


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
    body: Annotated[
        dict[str, str | bool | int | float | None],
        Body(examples=[{ENABLE_ORCHESTRATION: "false"}], max_length=100),
    ],
    principal: PrincipalDep,
) -> StatusResponse:
    """Pinot's updateClusterConfig: any JSON scalar is stored as its text (``true``, ``5``, ``0.5``); a null
    removes the config."""
    require(principal, Permission.UPDATE)
    values = {k: _as_text(v) for k, v in body.items() if v is not None}
    removed = [k for k, v in body.items() if v is None]
    for key, value in values.items():
        if not key or len(key) > 300 or len(value) > 10_000:
            raise ApiError(
                400, f"cluster config {key[:50]!r}: names are 1-300 characters, values at most 10,000"
            )
        # Refused: a value a reader could not use, a start-up property (it would be stored and ignored).
        if (message := problem(key, value)) is not None:
            raise ApiError(400, message)
    await asyncio.to_thread(catalog.set_cluster_configs, values)
    for key in removed:
        await asyncio.to_thread(catalog.delete_cluster_config, key)
    return StatusResponse(status="Updated cluster config.")


def _as_text(value: str | bool | int | float) -> str:
    """A JSON scalar as Jackson's asText() writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else str(value)
    return str(value)


@router.delete("/{configName}", response_model=StatusResponse, summary="Remove a cluster config override")
async def delete_config(
    configName: Annotated[str, Path(max_length=300)],
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> StatusResponse:
    """Pinot's deleteClusterConfig: 200 whether or not the config was set."""
    require(principal, Permission.DELETE)
    await asyncio.to_thread(catalog.delete_cluster_config, configName)
    return StatusResponse(status=f"Deleted cluster config: {configName}")
