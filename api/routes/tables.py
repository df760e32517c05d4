"""Pinot's table endpoints. Dropping a table first removes every task plan of it, and stops any plan
started while the drop ran."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path
from temporalio.client import Client

from taskplan.api.auth import Permission, PrincipalDep, require, require_table
from taskplan.api.deps import CatalogDep, ClientDep, RemoverDep, SchedulesDep, SegmentsDep, StackDep
from taskplan.api.errors import ERROR_RESPONSES, ApiError
from taskplan.api.models import StatusResponse
from taskplan.api.table_access import TableTypeQuery, resolve_tables
from taskplan.catalog import Catalog
from taskplan.models.table import TableConfig
from taskplan.names import TableRef, parse_table_name
from taskplan.plans.validation import validate_table_config
from taskplan.schedules import ScheduleManager, schedule_problems

router = APIRouter(prefix="/tables", tags=["tables"], responses=ERROR_RESPONSES)
TableName = Annotated[str, Path(max_length=200, examples=["myTable"])]


def table_of(config: TableConfig) -> TableRef:
    return TableRef(config.raw_table_name, config.tableType)


async def _validate(config: TableConfig, stack: StackDep, catalog: Catalog, client: Client) -> None:
    schema = await asyncio.to_thread(catalog.get_schema, config.raw_table_name)
    if schema is None:
        raise ApiError(400, f"schema {config.raw_table_name} does not exist: add it with POST /schemas first")
    unknown = [t for t in (config.task.taskTypeConfigsMap if config.task else {}) if t not in stack.registry]
    if unknown:
        raise ApiError(400, f"task.taskTypeConfigsMap names unknown task types: {', '.join(sorted(unknown))}")
    stream_problems = config.stream_config_problems()
    if stream_problems:
        raise ApiError(400, "invalid stream configs: " + "; ".join(stream_problems))
    problems = schedule_problems(config) or await validate_table_config(client, config)
    if problems:
        raise ApiError(400, "invalid task configs: " + "; ".join(problems))


async def _apply_schedules(
    schedules: ScheduleManager, config: TableConfig, previous: TableConfig | None, catalog: Catalog
) -> None:
    """Bring the table's cron Schedules in line with the config just saved; undo the save if that fails."""
    stale = [] if previous is None or previous.task is None else list(previous.task.taskTypeConfigsMap)
    try:
        await schedules.apply(config, stale)
    except Exception:
        if previous is None:
            await asyncio.to_thread(catalog.delete_table, config.tableName)
        else:
            await asyncio.to_thread(catalog.update_table, previous)
        raise


@router.post("", response_model=StatusResponse, summary="Add a table")
async def add_table(
    config: TableConfig,
    catalog: CatalogDep,
    stack: StackDep,
    client: ClientDep,
    schedules: SchedulesDep,
    principal: PrincipalDep,
) -> StatusResponse:
    require(principal, Permission.CREATE, table_of(config))
    await _validate(config, stack, catalog, client)
    await asyncio.to_thread(catalog.create_table, config)
    await _apply_schedules(schedules, config, None, catalog)
    return StatusResponse(status=f"Table {config.tableName} successfully added")


@router.get("", summary="Raw names of all tables")
async def list_tables(
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> dict[str, list[str]]:
    configs = await asyncio.to_thread(catalog.list_tables)
    visible = {c.raw_table_name for c in configs if principal.may(Permission.READ, table_of(c))}
    return {"tables": sorted(visible)}


@router.get("/{tableName}", summary="A table's configs, keyed by table type")
async def get_table(
    tableName: TableName,
    catalog: CatalogDep,
    principal: PrincipalDep,
    table_type: TableTypeQuery = None,
) -> dict[str, Any]:
    table = parse_table_name(tableName)
    found = await asyncio.to_thread(resolve_tables, catalog, principal, Permission.READ, table, table_type)
    return {t.tableType: t.model_dump(mode="json", exclude_none=True) for t in found}


@router.put("/{tableName}", response_model=StatusResponse, summary="Update a table config")
async def update_table(
    tableName: TableName,
    config: TableConfig,
    catalog: CatalogDep,
    stack: StackDep,
    client: ClientDep,
    schedules: SchedulesDep,
    principal: PrincipalDep,
) -> StatusResponse:
    table = parse_table_name(tableName)
    if config.raw_table_name != table.raw or table.table_type not in (None, config.tableType):
        raise ApiError(
            400, f"tableName {config.tableName} in the body does not match {tableName} in the path"
        )
    require_table(principal, Permission.UPDATE, table_of(config))  # answers as catalog.require_table
    previous = await asyncio.to_thread(catalog.require_table, config.tableName)
    await _validate(config, stack, catalog, client)
    await asyncio.to_thread(catalog.update_table, config)
    await _apply_schedules(schedules, config, previous, catalog)
    return StatusResponse(status=f"Table config updated for {config.tableName}")


@router.delete(
    "/{tableName}",
    response_model=StatusResponse,
    summary="Drop a table: its task plans (every task type) are removed first",
)
async def delete_table(
    tableName: TableName,
    catalog: CatalogDep,
    remover: RemoverDep,
    schedules: SchedulesDep,
    segments: SegmentsDep,
    stack: StackDep,
    principal: PrincipalDep,
    table_type: TableTypeQuery = None,
) -> StatusResponse:
    table = parse_table_name(tableName)
    found = await asyncio.to_thread(resolve_tables, catalog, principal, Permission.DELETE, table, table_type)
    for config in found:
        task_types = list(config.task.taskTypeConfigsMap) if config.task else []
        await schedules.remove_table(config.tableName, task_types)  # first: no firing after the drop
        await remover.remove_table_plans(config.tableName)
        # Config and data in one catalog transaction: an ingest racing the drop stores nothing (404).
        await asyncio.to_thread(segments.remove_table, config.tableName)
        # A plan triggered meanwhile is stopped now; one triggered later fails its first batch (no table).
        await remover.stop_table_plans(config.tableName, stack.registry.task_types())
    return StatusResponse(status=f"Tables: {[c.tableName for c in found]} deleted")
