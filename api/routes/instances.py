"""Pinot's ``GET /instances`` and ``GET /instances/{instanceName}``: the minions (and controllers) seen
polling their task queues, with their tags (taskplan/plans/instances.py)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from taskplan.api.auth import Permission, PrincipalDep, require
from taskplan.api.deps import CatalogDep, ClientDep, StackDep
from taskplan.api.errors import ERROR_RESPONSES, ApiError
from taskplan.catalog import Catalog
from taskplan.names import DEFAULT_MINION_TAG, InvalidNameError, validate_minion_tag
from taskplan.plans.instances import Instance, InstanceLister

router = APIRouter(prefix="/instances", tags=["instances"], responses=ERROR_RESPONSES)
MINION_INSTANCE_TAG_KEY = "minionInstanceTag"


def _tags(catalog: Catalog) -> set[str]:
    """The minion tags a worker may poll: the default, and every tag a table's task configs name."""
    tags = {DEFAULT_MINION_TAG}
    for config in catalog.list_tables():
        for configs in (config.task.taskTypeConfigsMap if config.task else {}).values():
            tag = configs.get(MINION_INSTANCE_TAG_KEY)
            if tag:
                try:
                    tags.add(validate_minion_tag(tag))
                except InvalidNameError:
                    continue
    return tags


async def _instances(stack: StackDep, catalog: Catalog, client: ClientDep) -> dict[str, Instance]:
    tags = await asyncio.to_thread(_tags, catalog)
    return await InstanceLister(client).instances(tags, stack.registry.task_types())


@router.get("", summary="Instance names: minions and controllers polling their task queues")
async def list_instances(
    stack: StackDep,
    catalog: CatalogDep,
    client: ClientDep,
    principal: PrincipalDep,
    tag: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, list[str]]:
    """Pinot's getAllInstances (``tag``: only instances with that tag)."""
    require(principal, Permission.READ)
    found = await _instances(stack, catalog, client)
    return {"instances": sorted(n for n, i in found.items() if tag is None or tag in i.tags)}


@router.get("/{instanceName}", summary="One instance: its host and tags")
async def get_instance(
    instanceName: Annotated[str, Path(max_length=300)],
    stack: StackDep,
    catalog: CatalogDep,
    client: ClientDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Pinot's getInstance. A worker has no admin port: the ports are null; ``enabled`` is true while it
    polls."""
    require(principal, Permission.READ)
    instance = (await _instances(stack, catalog, client)).get(instanceName)
    if instance is None:
        raise ApiError(404, f"Instance {instanceName} not found")
    return {
        "instanceName": instance.instance_name,
        "hostName": instance.host_name,
        "enabled": True,
        "port": None,
        "tags": sorted(instance.tags),
        "pools": None,
        "grpcPort": -1,
        "adminPort": -1,
        "queryServicePort": -1,
        "queryMailboxPort": -1,
        "shutdownInProgress": False,
        "systemResourceInfo": None,
    }
