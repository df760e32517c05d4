"""The parent tasks a request names and may read, shared by the task route modules (route modules do not
import each other), and Pinot's PinotTaskConfig as the task endpoints serialize it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel

from taskplan.api.auth import Permission, Principal, may_read_all, require_permission
from taskplan.bootstrap import Stack
from taskplan.models.errors import TaskNotFoundError
from taskplan.models.task import SubtaskConfig, TaskState
from taskplan.names import InvalidNameError, parse_table_name, validate_task_name, validate_task_type
from taskplan.plans import TaskReader

TaskTypePath = Annotated[str, Path(max_length=100, examples=["SegmentPurgeTask"])]
TaskNamePath = Annotated[str, Path(max_length=250, examples=["Task_SegmentPurgeTask_1700000000000"])]
TABLE_NAME_KEY = "tableName"
TASK_ID_KEY = "TASK_ID"


class PinotTaskConfigOut(BaseModel):
    """Pinot's PinotTaskConfig as Jackson writes it: ``taskId`` is the subtask's name, also kept in
    ``configs`` as ``TASK_ID``; ``tableName`` is the ``tableName`` config (null when it has none)."""

    taskType: str
    taskId: str
    tableName: str | None
    configs: dict[str, str]

    @classmethod
    def of(cls, config: SubtaskConfig) -> PinotTaskConfigOut:
        return cls(
            taskType=config.task_type,
            taskId=config.subtask_name,
            tableName=config.configs.get(TABLE_NAME_KEY),
            configs={**config.configs, TASK_ID_KEY: config.subtask_name},
        )


def known_task_type(stack: Stack, task_type: str) -> str:
    """The task type's registered name; 404 naming it when no plugin registers it."""
    return stack.registry.get(validate_task_type(task_type)).task_type


def may_read_task(principal: Principal, tables: list[str]) -> bool:
    """A parent task (and every subtask of it) is the principal's only if every table it works on is: a
    legacy task over several tables shows them all (configs, subtasks, counts)."""
    try:
        refs = [parse_table_name(t, typed=True) for t in tables]
    except InvalidNameError:
        refs = []  # not known: only for a principal that sees every table
    return may_read_all(principal, refs)


async def readable_task(tasks: TaskReader, principal: Principal, name: str) -> str:
    """The task's name if the principal may read it; a task it may not read answers as a missing one."""
    validate_task_name(name)
    require_permission(principal, Permission.READ)
    if not may_read_task(principal, await tasks.task_tables(name)):
        raise TaskNotFoundError(name)
    return name


async def readable_tasks(
    tasks: TaskReader, principal: Principal, task_type: str, table: str | None = None
) -> dict[str, TaskState]:
    """Every parent task of a task type the principal may read (optionally: working on ``table``)."""
    require_permission(principal, Permission.READ)
    listed = await tasks.list_tasks(validate_task_type(task_type), table=table)
    return {name: state for name, (state, tables) in listed.items() if may_read_task(principal, tables)}
