"""Pinot's task read endpoints: parent tasks of a task type, one task, its subtasks (Pinot's shapes).

Route order matters: ``/tasks/task/...`` and ``/tasks/subtask/...`` are declared before the
``/tasks/{taskType}/{tableNameWithType}/...`` paths they would otherwise match.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from taskplan.api.auth import PrincipalDep
from taskplan.api.deps import StackDep, TaskReaderDep
from taskplan.api.errors import ERROR_RESPONSES, ApiError
from taskplan.api.task_access import (
    PinotTaskConfigOut,
    TaskNamePath,
    TaskTypePath,
    known_task_type,
    readable_task,
    readable_tasks,
)
from taskplan.models.task import (
    TRIGGERED_BY_KEY,
    BatchDetails,
    PinotTaskCount,
    SubtaskConfig,
    SubtaskQuery,
    SubtaskState,
    TaskState,
    pinot_subtask_state,
)
from taskplan.names import parse_table_name
from taskplan.plans import TaskReader
from taskplan.plans.instances import minion_name

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=ERROR_RESPONSES)

SUBTASK_PAGE = 1000
VerbosityQuery = Annotated[int, Query(ge=-1_000_000, le=1_000_000)]


def _split(names: str | None) -> list[str] | None:
    """Pinot's comma-separated ``subtaskNames`` (empty: all)."""
    picked = [n for n in (names or "").split(",") if n]
    return picked or None


async def _all_configs(tasks: TaskReader, name: str) -> list[SubtaskConfig]:
    configs: list[SubtaskConfig] = []
    while True:
        page = await tasks.subtask_configs(name, SubtaskQuery(offset=len(configs), limit=SUBTASK_PAGE))
        configs.extend(page)
        if len(page) < SUBTASK_PAGE:
            return configs


def _date(ms: int | None) -> str | None:
    """Pinot's DateTimeUtils.epochToDefaultDateFormat: ``yyyy-MM-dd HH:mm:ss z`` (taskplan: always UTC)."""
    if not ms or ms <= 0:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _participant(*identities: str | None) -> str | None:
    """Pinot's participant: the minion (its GET /instances name) running the subtask, else the one that ran
    it (recorded as it ended)."""
    return next((minion_name(i) for i in identities if i), None)


class SubtaskDebugInfo(BaseModel):
    """Pinot's SubtaskDebugInfo (null fields left out, as Pinot's NON_NULL)."""

    model_config = ConfigDict(extra="forbid")
    taskId: str
    state: SubtaskState | None = None
    startTime: str | None = None
    finishTime: str | None = None
    participant: str | None = None
    info: str | None = None
    triggeredBy: str | None = None
    taskConfig: PinotTaskConfigOut | None = None


class TaskDebugInfo(BaseModel):
    """Pinot's TaskDebugInfo (null fields left out, as Pinot's NON_NULL)."""

    model_config = ConfigDict(extra="forbid")
    taskState: TaskState | None = None
    subtaskCount: PinotTaskCount | None = None
    startTime: str | None = None
    executionStartTime: str | None = None
    finishTime: str | None = None
    triggeredBy: str | None = None
    subtaskInfos: list[SubtaskDebugInfo] | None = None


async def _debug_info(tasks: TaskReader, name: str, table: str | None, verbosity: int) -> TaskDebugInfo:
    """Pinot's getTaskDebugInfo: the task's state and times, its subtask counts and (verbosity > 0: all;
    else those not COMPLETED) its subtasks, only those of ``table`` when given."""
    details: BatchDetails = await tasks.batch_details(name, SubtaskQuery(limit=0))
    state = await tasks.task_state(name)
    records = await tasks.all_subtasks(name)
    pending = await tasks.pending_subtasks(name) if not state.is_final else {}
    configs = {c.subtask_name: PinotTaskConfigOut.of(c) for c in await _all_configs(tasks, name)}
    triggered_by = next((c.configs.get(TRIGGERED_BY_KEY) for c in configs.values()), None) or ""
    count = PinotTaskCount()
    infos: list[SubtaskDebugInfo] = []
    started = [r.started_at_ms for r in records if r.started_at_ms]
    finished = [r.finished_at_ms for r in records if r.finished_at_ms]
    for record in records:
        config = configs.get(record.subtask_name)
        if table is not None and config is not None and config.tableName != table:
            continue
        live = pending.get(record.subtask_name)
        subtask_state = record.state
        if subtask_state is SubtaskState.RUNNING and live is not None and not live.started:
            subtask_state = SubtaskState.INIT  # scheduled, no minion took it yet
        count.add(subtask_state)
        if verbosity <= 0 and subtask_state is SubtaskState.COMPLETED:
            continue
        infos.append(
            SubtaskDebugInfo(
                taskId=record.subtask_name,
                state=pinot_subtask_state(subtask_state),
                participant=_participant(live.worker if live is not None else None, record.worker),
                startTime=_date(record.started_at_ms),
                finishTime=_date(record.finished_at_ms),
                info=record.error or record.message,
                triggeredBy=triggered_by,
                taskConfig=config,
            )
        )
    return TaskDebugInfo(
        taskState=state,
        subtaskCount=count,
        startTime=_date(details.submitted_at_ms),
        executionStartTime=_date(min(started)) if started else None,
        finishTime=_date(max(finished)) if finished and state.is_final else None,
        triggeredBy=triggered_by,
        subtaskInfos=infos or None,
    )


# ------------------------------------------------------------------ one task


@router.get("/task/{taskName}/state", response_model=TaskState, summary="State of a parent task")
async def task_state(taskName: TaskNamePath, tasks: TaskReaderDep, principal: PrincipalDep) -> TaskState:
    return await tasks.task_state(await readable_task(tasks, principal, taskName))


@router.get(
    "/task/{taskName}/config",
    response_model=list[PinotTaskConfigOut],
    summary="The subtasks' PinotTaskConfigs {taskType, taskId, tableName, configs}",
)
async def task_config(
    taskName: TaskNamePath, tasks: TaskReaderDep, principal: PrincipalDep
) -> list[PinotTaskConfigOut]:
    configs = await _all_configs(tasks, await readable_task(tasks, principal, taskName))
    return [PinotTaskConfigOut.of(c) for c in configs]


@router.get(
    "/task/{taskName}/debug",
    response_model=TaskDebugInfo,
    response_model_exclude_none=True,
    summary="Pinot's TaskDebugInfo of a parent task",
)
async def task_debug(
    taskName: TaskNamePath,
    tasks: TaskReaderDep,
    principal: PrincipalDep,
    verbosity: VerbosityQuery = 0,
    table_name: Annotated[str | None, Query(alias="tableName", max_length=200)] = None,
) -> TaskDebugInfo:
    if table_name is not None:
        parse_table_name(table_name, typed=True)
    return await _debug_info(tasks, await readable_task(tasks, principal, taskName), table_name, verbosity)


@router.get(
    "/task/{taskName}/subtasks",
    response_model=BatchDetails,
    summary="Subtask reports of a parent task: state, attempts, error, counts, durations (paged; taskplan's)",
)
async def task_subtasks(
    taskName: TaskNamePath,
    tasks: TaskReaderDep,
    principal: PrincipalDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=0, le=SUBTASK_PAGE)] = SUBTASK_PAGE,
) -> BatchDetails:
    return await tasks.batch_details(
        await readable_task(tasks, principal, taskName), SubtaskQuery(offset=offset, limit=limit)
    )


@router.get(
    "/subtask/{taskName}/state",
    response_model=dict[str, SubtaskState | None],
    summary="Subtask states (null: not yet assigned to a minion)",
)
async def subtask_states(
    taskName: TaskNamePath, tasks: TaskReaderDep, principal: PrincipalDep
) -> dict[str, SubtaskState | None]:
    states = await tasks.subtask_states(await readable_task(tasks, principal, taskName))
    return {subtask: pinot_subtask_state(state) for subtask, state in states}


@router.get(
    "/subtask/{taskName}/config",
    response_model=dict[str, PinotTaskConfigOut],
    summary="PinotTaskConfigs by subtask name (subtaskNames: comma-separated, default all)",
)
async def subtask_configs(
    taskName: TaskNamePath,
    tasks: TaskReaderDep,
    principal: PrincipalDep,
    subtask_names: Annotated[str | None, Query(alias="subtaskNames", max_length=100_000)] = None,
) -> dict[str, PinotTaskConfigOut]:
    configs = await _all_configs(tasks, await readable_task(tasks, principal, taskName))
    wanted = _split(subtask_names)
    return {
        c.subtask_name: PinotTaskConfigOut.of(c)
        for c in configs
        if wanted is None or c.subtask_name in wanted
    }


# ------------------------------------------------------------------ the tasks of a task type


@router.get("/{taskType}/tasks", response_model=list[str], summary="Parent task names of a task type")
async def tasks_of_type(
    taskType: TaskTypePath, stack: StackDep, tasks: TaskReaderDep, principal: PrincipalDep
) -> list[str]:
    return sorted(await readable_tasks(tasks, principal, known_task_type(stack, taskType)))


@router.get("/{taskType}/tasks/count", response_model=int, summary="Number of parent tasks of a task type")
async def task_count_of_type(
    taskType: TaskTypePath, stack: StackDep, tasks: TaskReaderDep, principal: PrincipalDep
) -> int:
    return len(await readable_tasks(tasks, principal, known_task_type(stack, taskType)))


@router.get("/{taskType}/taskstates", response_model=dict[str, TaskState], summary="Parent task states")
async def task_states(
    taskType: TaskTypePath, stack: StackDep, tasks: TaskReaderDep, principal: PrincipalDep
) -> dict[str, TaskState]:
    return await readable_tasks(tasks, principal, known_task_type(stack, taskType))


def _parse_states(state: str | None) -> set[TaskState] | None:
    """Pinot's ``state`` filter: comma-separated, case-insensitive; an unknown one is a 400."""
    if not state or not state.strip():
        return None
    wanted: set[TaskState] = set()
    for part in state.strip().split(","):
        name = part.strip().upper()
        if name not in TaskState.__members__:
            valid = ", ".join(TaskState.__members__)
            raise ApiError(400, f"Invalid state: {name}. Valid states are: [{valid}]")
        wanted.add(TaskState(name))
    return wanted


@router.get(
    "/{taskType}/taskcounts",
    response_model=dict[str, PinotTaskCount],
    summary="Pinot's TaskCount of every parent task (filters: state, comma-separated; table)",
)
async def task_counts(
    taskType: TaskTypePath,
    stack: StackDep,
    tasks: TaskReaderDep,
    principal: PrincipalDep,
    state: Annotated[str | None, Query(max_length=500)] = None,
    table: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, PinotTaskCount]:
    wanted = _parse_states(state)
    if table:
        parse_table_name(table, typed=True)
    states = await readable_tasks(tasks, principal, known_task_type(stack, taskType), table or None)
    names = sorted(n for n, s in states.items() if wanted is None or s in wanted)
    counts = await asyncio.gather(*(tasks.pinot_task_count(n) for n in names))
    return dict(zip(names, counts, strict=True))


@router.get(
    "/{taskType}/debug",
    response_model=dict[str, TaskDebugInfo],
    response_model_exclude_none=True,
    summary="Pinot's TaskDebugInfo of every parent task of a task type",
)
async def task_type_debug(
    taskType: TaskTypePath,
    stack: StackDep,
    tasks: TaskReaderDep,
    principal: PrincipalDep,
    verbosity: VerbosityQuery = 0,
) -> dict[str, TaskDebugInfo]:
    names = sorted(await readable_tasks(tasks, principal, known_task_type(stack, taskType)))
    infos = await asyncio.gather(*(_debug_info(tasks, n, None, verbosity) for n in names))
    return dict(zip(names, infos, strict=True))


@router.get(
    "/{taskType}/{tableNameWithType}/debug",
    response_model=dict[str, TaskDebugInfo],
    response_model_exclude_none=True,
    summary="Pinot's TaskDebugInfo of the parent tasks of a task type working on a table",
)
async def table_task_debug(
    taskType: TaskTypePath,
    tableNameWithType: str,
    stack: StackDep,
    tasks: TaskReaderDep,
    principal: PrincipalDep,
    verbosity: VerbosityQuery = 0,
) -> dict[str, TaskDebugInfo]:
    table = parse_table_name(tableNameWithType, typed=True).name
    names = sorted(await readable_tasks(tasks, principal, known_task_type(stack, taskType), table))
    infos = await asyncio.gather(*(_debug_info(tasks, n, table, verbosity) for n in names))
    return dict(zip(names, infos, strict=True))


@router.get(
    "/{taskType}/{tableNameWithType}/state",
    response_model=dict[str, TaskState],
    summary="States of the parent tasks of a task type working on a table",
)
async def table_task_states(
    taskType: TaskTypePath,
    tableNameWithType: str,
    stack: StackDep,
    tasks: TaskReaderDep,
    principal: PrincipalDep,
) -> dict[str, TaskState]:
    table = parse_table_name(tableNameWithType, typed=True).name
    return await readable_tasks(tasks, principal, known_task_type(stack, taskType), table)
