"""Pinot's task endpoints that delete, clean up and inspect: deleting tasks, a table's task metadata, a
task's runtime config, live subtask progress, and the cron scheduler (answered from Temporal Schedules)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query

from taskplan.api.auth import Permission, PrincipalDep, require, require_permission, require_table
from taskplan.api.deps import CatalogDep, SchedulesDep, StackDep, TaskDeleterDep, TaskReaderDep
from taskplan.api.errors import ERROR_RESPONSES, ApiError
from taskplan.api.models import StatusResponse
from taskplan.api.task_access import TaskNamePath, TaskTypePath, known_task_type, readable_task
from taskplan.models.errors import TaskStillRunningError
from taskplan.models.task import SubtaskState, pinot_subtask_state
from taskplan.names import parse_table_name
from taskplan.plans.instances import minion_name
from taskplan.plans.task_deletion import TaskDeleter
from taskplan.schedules import (
    SCHEDULE_KEY,
    SCHEDULE_TIME_ZONE_KEY,
    ScheduleFacts,
    ScheduleManager,
    schedule_id,
)

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=ERROR_RESPONSES)

DEFAULT_CONCURRENT_TASKS = 1  # Pinot's default of getNumConcurrentTasksPerInstance
SCHEDULER_NAME = "TemporalSchedules"


# ------------------------------------------------------------------ deleting


@router.delete(
    "/task/{taskName}",
    response_model=StatusResponse,
    summary="Delete a task (409 while it runs, unless forceDelete; a plan's batch goes with its plan)",
)
async def delete_task(
    taskName: TaskNamePath,
    tasks: TaskReaderDep,
    deleter: TaskDeleterDep,
    principal: PrincipalDep,
    force_delete: Annotated[bool, Query(alias="forceDelete")] = False,
) -> StatusResponse:
    name = await readable_task(tasks, principal, taskName)
    require_permission(principal, Permission.DELETE)
    await deleter.delete_task(name, force=force_delete)
    return StatusResponse(status=f"Successfully deleted task: {name}")


@router.delete(
    "/{taskType}",
    response_model=StatusResponse,
    summary="Delete every task of a task type, plan by plan (409 while any runs, unless forceDelete)",
)
async def delete_tasks(
    taskType: TaskTypePath,
    stack: StackDep,
    catalog: CatalogDep,
    deleter: TaskDeleterDep,
    principal: PrincipalDep,
    force_delete: Annotated[bool, Query(alias="forceDelete")] = False,
) -> StatusResponse:
    """Pinot's deleteTasks: every task and the task queue. A plan is deleted whole (its runs, snapshot and
    batch records); the queue's stopped state is forgotten."""
    require(principal, Permission.DELETE)
    name = known_task_type(stack, taskType)
    await deleter.delete_task_type(name, force=force_delete)
    await asyncio.to_thread(catalog.delete_state, "taskQueue", name)
    return StatusResponse(status=f"Successfully deleted tasks for task type: {name}")


@router.put(
    "/{taskType}/cleanup",
    response_model=StatusResponse,
    summary="Delete the ended tasks (and ended plans) of a task type",
)
async def clean_up_tasks(
    taskType: TaskTypePath, stack: StackDep, deleter: TaskDeleterDep, principal: PrincipalDep
) -> StatusResponse:
    require(principal, Permission.UPDATE)
    name = known_task_type(stack, taskType)
    await deleter.clean_up(name)
    return StatusResponse(status=f"Successfully cleaned up tasks for task type: {name}")


# ------------------------------------------------------------------ a table's task metadata


@router.get(
    "/{taskType}/{tableNameWithType}/metadata",
    response_model=dict[str, Any],
    summary="A table's task metadata for a task type (Pinot's ZNRecord; {} when there is none)",
)
async def task_metadata(
    taskType: TaskTypePath,
    tableNameWithType: str,
    stack: StackDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Pinot's answer, the metadata's ZNRecord ``{id, simpleFields, mapFields, listFields}``: for a task type
    that keeps metadata in the catalog, its fields as Pinot's MergeRollupTaskMetadata and
    RealtimeToOfflineSegmentsTaskMetadata write them (``watermarkMs_<level>``, ``watermarkMs``: strings of
    epoch millis); for any other task type what its latest plan recorded (its id, status and custom stats,
    e.g. the generator's next input)."""
    task_type = known_task_type(stack, taskType)
    table = parse_table_name(tableNameWithType, typed=True)
    require_table(principal, Permission.READ, table)
    kept = await asyncio.to_thread(catalog.segments.task_metadata, table.name, task_type)
    if kept is not None:
        return _znrecord(table.name, kept)
    plans = await asyncio.to_thread(catalog.tasks.latest_plan_snapshot, table.name, task_type)
    if plans is None:
        return {}
    return {
        "id": table.name,
        "simpleFields": {
            "taskPlanId": plans.plan_id,
            "status": plans.status.value,
            **plans.custom_stats,
        },
        "mapFields": {},
        "listFields": {},
    }


def _znrecord(table: str, kept: dict[str, Any]) -> dict[str, Any]:
    """The catalog's task metadata as the ZNRecord Pinot keeps it in: a watermark map as one long field a
    level (``watermarkMs_<level>``, MergeRollupTaskMetadata's keys), other scalars as simple fields."""
    simple: dict[str, str] = {}
    maps: dict[str, dict[str, str]] = {}
    lists: dict[str, list[str]] = {}
    for key, value in kept.items():
        if key == "watermarkMap" and isinstance(value, dict):
            simple.update({f"watermarkMs_{level}": str(ms) for level, ms in value.items()})
        elif isinstance(value, dict):
            maps[key] = {k: str(v) for k, v in value.items()}
        elif isinstance(value, list):
            lists[key] = [str(v) for v in value]
        else:
            simple[key] = str(value)
    return {"id": table, "simpleFields": simple, "mapFields": maps, "listFields": lists}


@router.delete(
    "/{taskType}/{tableNameWithType}/metadata",
    response_model=StatusResponse,
    summary="Delete a table's task metadata for a task type: its watermarks and ended plans "
    "(409 while a plan is active)",
)
async def delete_task_metadata(
    taskType: TaskTypePath,
    tableNameWithType: str,
    stack: StackDep,
    catalog: CatalogDep,
    deleter: TaskDeleterDep,
    principal: PrincipalDep,
) -> StatusResponse:
    task_type = known_task_type(stack, taskType)
    table = parse_table_name(tableNameWithType, typed=True)
    require_table(principal, Permission.DELETE, table)
    active = await asyncio.to_thread(catalog.tasks.active_plan_ids, table.name, task_type)
    if active:
        raise TaskStillRunningError(
            f"task plan {active[0]} of {table.name} is active: abort it "
            f"(DELETE /tasks/taskPlans/{active[0]}) before deleting the table's task metadata"
        )
    await _remove_ended_plans(deleter, catalog, table.name, task_type)
    # The watermarks reset: the next run starts again from the table's oldest data (Pinot's behaviour).
    await asyncio.to_thread(catalog.segments.delete_task_metadata, table.name, task_type)
    return StatusResponse(
        status=f"Successfully deleted metadata for task type: {task_type} from table: {table.name}"
    )


async def _remove_ended_plans(deleter: TaskDeleter, catalog: CatalogDep, table: str, task_type: str) -> None:
    plans = await asyncio.to_thread(catalog.tasks.plans_of_table, table, task_type)
    await deleter.remove_plans(plans, reason=f"task metadata of {table} deleted")


# ------------------------------------------------------------------ one task at run time


@router.get(
    "/task/{taskName}/runtime/config",
    response_model=dict[str, str],
    summary="A task's runtime config (TaskTimeoutMs, MinionWorkerGroupTag, ...)",
)
async def runtime_config(
    taskName: TaskNamePath, stack: StackDep, tasks: TaskReaderDep, principal: PrincipalDep
) -> dict[str, str]:
    options = await tasks.runtime_options(await readable_task(tasks, principal, taskName))
    if options is None:
        raise ApiError(404, f"task {taskName} has no subtasks yet")
    return {
        "ConcurrentTasksPerWorker": str(
            options.num_concurrent_tasks_per_instance or DEFAULT_CONCURRENT_TASKS
        ),
        "TaskTimeoutMs": str(options.task_timeout_ms),
        "TaskExpireTimeMs": str(stack.settings.plan_retention_s * 1000),
        "MinionWorkerGroupTag": options.minion_instance_tag,
    }


@router.get(
    "/subtask/{taskName}/progress",
    response_model=dict[str, Any],
    summary="Live progress of subtasks: what a running one last reported in its heartbeat",
)
async def subtask_progress(
    taskName: TaskNamePath,
    tasks: TaskReaderDep,
    principal: PrincipalDep,
    subtask_names: Annotated[str | None, Query(alias="subtaskNames", max_length=100_000)] = None,
) -> dict[str, Any]:
    """Pinot's getSubtaskProgress: per subtask, the progress its executor reported (heartbeat details) while
    it runs; else Pinot's fallback text with the subtask's state."""
    name = await readable_task(tasks, principal, taskName)
    states = dict(await tasks.subtask_states(name))
    ran_on = {r.subtask_name: r.worker for r in await tasks.all_subtasks(name) if r.worker}
    wanted = [n for n in (subtask_names or "").split(",") if n]
    selected = [n for n in wanted if n in states] if wanted else list(states)
    pending = await tasks.pending_subtasks(name) if selected else {}
    progress: dict[str, Any] = {}
    for subtask in selected:
        live = pending.get(subtask)
        state = states[subtask]
        if live is not None and live.started and live.heartbeat:
            progress[subtask] = live.heartbeat[0] if len(live.heartbeat) == 1 else live.heartbeat
        elif state is SubtaskState.INIT:
            progress[subtask] = "No worker has run this subtask"
        else:
            identity = (live.worker if live is not None else None) or ran_on.get(subtask)
            worker = minion_name(identity) if identity else "unknown"
            progress[subtask] = (
                f"No status from worker: {worker}. Got status: {pinot_subtask_state(state)} from Helix"
            )
    return progress


# ------------------------------------------------------------------ the cron scheduler (Temporal Schedules)


def _job_key(facts: ScheduleFacts) -> dict[str, str]:
    """Quartz's JobKey as Jackson writes it: the table is the name, the task type the group."""
    return {"name": facts.table, "group": facts.task_type}


async def _all_schedules(schedules: ScheduleManager) -> list[ScheduleFacts]:
    ids = sorted(await schedules.existing_ids())
    described = await asyncio.gather(*(schedules.describe(i) for i in ids))
    return [d for d in described if d is not None]


@router.get("/scheduler/information", response_model=dict[str, Any], summary="The cron scheduler")
async def scheduler_information(schedules: SchedulesDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, Permission.READ)
    facts = await _all_schedules(schedules)
    return {
        "Version": "temporal",
        "SchedulerName": SCHEDULER_NAME,
        "SchedulerInstanceId": schedules.client.namespace,
        "getThreadPoolClass": None,
        "getThreadPoolSize": 0,
        "SchedulerClass": "Temporal Schedules",
        "Clustered": True,
        "JobStoreClass": "Temporal",
        "NumberOfJobsExecuted": sum(f.num_actions for f in facts),
        "InStandbyMode": False,
        "RunningSince": None,
        "JobDetails": [
            {"JobKey": _job_key(f), "NextFireTime": f.next_fire_ms, "PreviousFireTime": f.previous_fire_ms}
            for f in facts
        ],
    }


@router.get("/scheduler/jobKeys", response_model=list[dict[str, str]], summary="The cron jobs' keys")
async def scheduler_job_keys(schedules: SchedulesDep, principal: PrincipalDep) -> list[dict[str, str]]:
    require(principal, Permission.READ)
    return [_job_key(f) for f in await _all_schedules(schedules)]


@router.get(
    "/scheduler/jobDetails", response_model=dict[str, Any], summary="A table's cron job for a task type"
)
async def scheduler_job_details(
    schedules: SchedulesDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
    table_name: Annotated[str, Query(alias="tableName", max_length=200)],
    task_type: Annotated[str | None, Query(alias="taskType", max_length=100)] = None,
) -> dict[str, Any]:
    table = parse_table_name(table_name, typed=True)
    require_table(principal, Permission.READ, table)
    missing = ApiError(
        404, f"Unable to find job detail for table name - {table.name}, task type - {task_type}"
    )
    if not task_type:
        raise missing
    facts = await schedules.describe(schedule_id(table.name, task_type))
    config = await asyncio.to_thread(catalog.get_table_config, table.name)
    configs = (config.task_type_configs(task_type) if config is not None else None) or {}
    if facts is None or not configs.get(SCHEDULE_KEY):
        raise missing
    expression = configs[SCHEDULE_KEY].strip()
    return {
        "JobKey": _job_key(facts),
        "Description": None,
        "JobClass": "CronTrigger workflow",
        "JobDataMap": {
            "TableNameWithType": table.name,
            "TaskType": task_type,
            "ScheduleId": facts.schedule_id,
        },
        "Triggers": [
            {
                "TriggerType": "CronTrigger",
                "TimeZone": configs.get(SCHEDULE_TIME_ZONE_KEY) or facts.time_zone,
                "CronExpression": expression,
                "ExpressionSummary": facts.note,
                "NextFireTime": facts.next_fire_ms,
                "PreviousFireTime": facts.previous_fire_ms,
            }
        ],
    }
