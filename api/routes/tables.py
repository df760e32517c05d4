"""Pinot's table endpoints. Dropping a table first removes every task plan of it, and stops any plan
started while the drop ran."""

from __future__ import annotations

import asyncio
import re
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from temporalio.client import Client

from taskplan.api.auth import Permission, PrincipalDep, require, require_table
from taskplan.api.deps import (
    CatalogDep,
    ClientDep,
    RemoverDep,
    SchedulesDep,
    SegmentsDep,
    StackDep,
    TaskReaderDep,
)
from taskplan.api.errors import ERROR_RESPONSES, ApiError
from taskplan.api.models import StatusResponse
from taskplan.api.table_access import TableTypeQuery, resolve_tables, table_type_of
from taskplan.catalog import Catalog
from taskplan.models.table import TableConfig
from taskplan.names import TableRef, parse_table_name
from taskplan.plan_configs import credential_problems
from taskplan.plans import TaskReader
from taskplan.plans.validation import validate_table_config
from taskplan.schedules import ScheduleManager, schedule_problems

router = APIRouter(prefix="/tables", tags=["tables"], responses=ERROR_RESPONSES)
TableName = Annotated[str, Path(max_length=200, examples=["myTable"])]
RETENTION = re.compile(r"^-?\d{1,9}\s*(ms|s|m|h|d)$", re.IGNORECASE)


def table_of(config: TableConfig) -> TableRef:
    return TableRef(config.raw_table_name, config.tableType)


VALIDATION_TYPES = ("ALL", "TASK", "UPSERT")
# The top-level keys of Pinot's TableConfig: anything else in a request is an unrecognized property.
PINOT_TABLE_KEYS = frozenset(
    {
        "tableName", "tableType", "isDimTable", "isMaterializedView", "segmentsConfig", "tenants",
        "tableIndexConfig", "metadata", "quota", "task", "routing", "query", "instanceAssignmentConfigMap",
        "instancePartitionsMap", "segmentAssignmentConfigMap", "fieldConfigList", "upsertConfig",
        "dedupConfig", "dimensionTableConfig", "ingestionConfig", "tierConfigs", "tunerConfigs",
        "tierOverwrites", "tableSamplers", "description", "tags",
    }
)  # fmt: skip
ValidationTypesQuery = Annotated[str | None, Query(alias="validationTypesToSkip", max_length=100)]


class ConfigSuccessResponse(BaseModel):
    """Pinot's ConfigSuccessResponse."""

    status: str
    unrecognizedProperties: dict[str, Any]


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Pinot's JsonUtils.flatten: ``/a/b/0`` paths to scalar values."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(f"{prefix}/{key}", item))
        return out
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(_flatten(f"{prefix}/{index}", item))
        return out
    return {prefix: value}


async def _unrecognized(request: Request) -> dict[str, Any]:
    body = await request.json()
    found: dict[str, Any] = {}
    for key, value in body.items() if isinstance(body, dict) else []:
        if key not in PINOT_TABLE_KEYS:
            found.update(_flatten(f"/{key}", value))
    return found


def _skipped(raw: str | None) -> set[str]:
    """Pinot's ``validationTypesToSkip``: comma-separated ALL, TASK, UPSERT (case-insensitive)."""
    skipped = {t.strip().upper() for t in (raw or "").split(",") if t.strip()}
    unknown = sorted(skipped - set(VALIDATION_TYPES))
    if unknown:
        raise ApiError(
            400, f"validationTypesToSkip: unknown type(s) {', '.join(unknown)}; use ALL, TASK or UPSERT"
        )
    return skipped


async def _validate(
    config: TableConfig,
    stack: StackDep,
    catalog: Catalog,
    client: Client,
    skip: frozenset[str] | set[str] = frozenset(),
) -> None:
    schema = await asyncio.to_thread(catalog.get_schema, config.raw_table_name)
    if schema is None:
        raise ApiError(400, f"schema {config.raw_table_name} does not exist: add it with POST /schemas first")
    unknown = [t for t in (config.task.taskTypeConfigsMap if config.task else {}) if t not in stack.registry]
    if unknown:
        raise ApiError(400, f"task.taskTypeConfigsMap names unknown task types: {', '.join(sorted(unknown))}")
    stream_problems = config.stream_config_problems()
    if stream_problems:
        raise ApiError(400, "invalid stream configs: " + "; ".join(stream_problems))
    # The cron schedules are always checked (a Temporal Schedule is made of them); the task types' own
    # checks of their configs are Pinot's TASK validation, skipped with validationTypesToSkip=TASK or ALL.
    # A password in a task config would be stored in Temporal's history: refused whatever is skipped.
    problems = schedule_problems(config) + credential_problems(
        config.task.taskTypeConfigsMap if config.task else {}
    )
    if not problems and not skip & {"ALL", "TASK"}:
        problems = await validate_table_config(client, config)
    if problems:
        raise ApiError(400, "invalid task configs: " + "; ".join(problems))


async def _active_tasks(tasks: TaskReader, config: TableConfig) -> list[str]:
    """The table's parent tasks that still run (any of its configured task types)."""
    names: list[str] = []
    for task_type in config.task.taskTypeConfigsMap if config.task else {}:
        listed = await tasks.list_tasks(task_type, table=config.tableName)
        names.extend(n for n, (state, _) in listed.items() if not state.is_final)
    return sorted(names)


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


@router.post("", response_model=ConfigSuccessResponse, summary="Add a table")
async def add_table(
    config: TableConfig,
    request: Request,
    catalog: CatalogDep,
    stack: StackDep,
    client: ClientDep,
    schedules: SchedulesDep,
    tasks: TaskReaderDep,
    principal: PrincipalDep,
    validation_types_to_skip: ValidationTypesQuery = None,
    ignore_active_tasks: Annotated[bool, Query(alias="ignoreActiveTasks")] = False,
) -> ConfigSuccessResponse:
    """Pinot's addTable: 409 when the table exists (before any validation), then the config is validated
    (``validationTypesToSkip``), and a table with dangling running tasks of its task types is refused
    unless ``ignoreActiveTasks``."""
    require(principal, Permission.CREATE, table_of(config))
    skip = _skipped(validation_types_to_skip)
    if await asyncio.to_thread(catalog.get_table_config, config.tableName) is not None:
        raise ApiError(
            409,
            f"Table config for {config.tableName} already exists. If this is unexpected, try deleting the "
            "table to remove all metadata associated with it before attempting to recreate.",
        )
    await _validate(config, stack, catalog, client, skip)
    if not ignore_active_tasks and (dangling := await _active_tasks(tasks, config)):
        raise ApiError(
            400,
            f"The table has dangling task data ({', '.join(dangling)}): delete the tasks through DELETE "
            "/tasks/task/{taskName}, or add the table with ignoreActiveTasks=true",
        )
    await asyncio.to_thread(catalog.create_table, config)
    await _apply_schedules(schedules, config, None, catalog)
    return ConfigSuccessResponse(
        status=f"Table {config.tableName} successfully added",
        unrecognizedProperties=await _unrecognized(request),
    )


class SortType(StrEnum):
    NAME = "NAME"
    CREATIONTIME = "CREATIONTIME"
    LASTMODIFIEDTIME = "LASTMODIFIEDTIME"


@router.get("", summary="Table names: raw names, or names with type when filtered by type or task type")
async def list_tables(
    catalog: CatalogDep,
    principal: PrincipalDep,
    table_type: Annotated[str | None, Query(alias="type", max_length=20)] = None,
    task_type: Annotated[str | None, Query(alias="taskType", max_length=100)] = None,
    sort_type: Annotated[str | None, Query(alias="sortType", max_length=30)] = None,
    sort_asc: Annotated[bool, Query(alias="sortAsc")] = True,
) -> dict[str, list[str]]:
    """Pinot's listTables: ``type`` (offline, realtime or dimension, any case), ``taskType`` (tables that
    configure it), ``sortType`` (name, creationTime, lastModifiedTime), ``sortAsc``."""
    dimension = (table_type or "").lower() == "dimension"
    wanted = "OFFLINE" if dimension else table_type_of(table_type)
    try:
        sort = SortType((sort_type or "name").upper())
    except ValueError:
        raise ApiError(
            400, f"invalid sortType {sort_type!r}: use name, creationTime or lastModifiedTime"
        ) from None
    configs = await asyncio.to_thread(catalog.list_tables)
    configs = [c for c in configs if principal.may(Permission.READ, table_of(c))]
    if wanted is not None:
        configs = [c for c in configs if c.tableType == wanted]
    if dimension:
        configs = [c for c in configs if c.model_extra and c.model_extra.get("isDimTable") is True]
    if task_type and task_type.strip():
        configs = [c for c in configs if c.task is not None and task_type in c.task.taskTypeConfigsMap]
    if sort is SortType.NAME:
        if wanted is None and not (task_type and task_type.strip()):
            return {"tables": sorted({c.raw_table_name for c in configs}, reverse=not sort_asc)}
        return {"tables": sorted((c.tableName for c in configs), reverse=not sort_asc)}
    times = await asyncio.to_thread(catalog.table_times)
    column = 0 if sort is SortType.CREATIONTIME else 1
    ordered = sorted(configs, key=lambda c: times.get(c.tableName, (0, 0))[column], reverse=not sort_asc)
    return {"tables": [c.tableName for c in ordered]}


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


@router.put("/{tableName}", response_model=ConfigSuccessResponse, summary="Update a table config")
async def update_table(
    tableName: TableName,
    config: TableConfig,
    request: Request,
    catalog: CatalogDep,
    stack: StackDep,
    client: ClientDep,
    schedules: SchedulesDep,
    principal: PrincipalDep,
    validation_types_to_skip: ValidationTypesQuery = None,
    force: Annotated[bool, Query()] = False,
) -> ConfigSuccessResponse:
    """Pinot's updateTableConfig (``force`` is accepted: taskplan has no backward-incompatible change to
    force through)."""
    table = parse_table_name(tableName)
    if config.raw_table_name != table.raw or table.table_type not in (None, config.tableType):
        raise ApiError(
            400, f"tableName {config.tableName} in the body does not match {tableName} in the path"
        )
    require_table(principal, Permission.UPDATE, table_of(config))  # answers as catalog.require_table
    skip = _skipped(validation_types_to_skip)
    previous = await asyncio.to_thread(catalog.require_table, config.tableName)
    await _validate(config, stack, catalog, client, skip)
    await asyncio.to_thread(catalog.update_table, config)
    await _apply_schedules(schedules, config, previous, catalog)
    return ConfigSuccessResponse(
        status=f"Table config updated for {tableName}", unrecognizedProperties=await _unrecognized(request)
    )


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
    retention: Annotated[str | None, Query(max_length=20)] = None,
    ignore_active_tasks: Annotated[bool, Query(alias="ignoreActiveTasks")] = False,
) -> StatusResponse:
    """Pinot's deleteTable. ``retention`` (a period such as ``7d``, ``12h``, ``0d``; ``-1d``) is accepted:
    taskplan deletes a dropped table's segment files at once. ``ignoreActiveTasks`` is accepted: the drop
    always stops and removes the table's task plans and tasks first (see the README)."""
    if retention is not None and not RETENTION.fullmatch(retention.strip()):
        raise ApiError(400, f"invalid retention {retention!r}: use a period such as 7d, 12h or 0d")
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
    return StatusResponse(status=f"Tables: [{', '.join(c.tableName for c in found)}] deleted")
