"""Names and identifiers: validated before they reach a path, a workflow id or SQL.

Plan ids follow the documented form ``<tableNameWithType>__<taskType>__<uuid>``; batch (parent task)
names follow Pinot's ``Task_<taskType>_<epochMillis>`` and subtask names ``<parentTaskName>_<index>``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Final, Literal

from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey

CONTROLLER_TASK_QUEUE: Final = "taskplan-controller"
# The cluster-wide jobs (progress poll, segment upkeep, cleanup sweep, schedule reconciliation): one workflow
# with this fixed id per namespace, its job activities on their own queue (workflows/cluster_jobs.py).
CLUSTER_JOBS_WORKFLOW_ID: Final = "taskplan-cluster-jobs"
CLUSTER_JOBS_TASK_QUEUE: Final = "taskplan-cluster-jobs"
DEFAULT_MINION_TAG: Final = "minion_untagged"

TableType = Literal["OFFLINE", "REALTIME"]
TABLE_TYPES: Final[tuple[TableType, ...]] = ("OFFLINE", "REALTIME")

_RAW_TABLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
# No double underscore inside a task type: "__" separates the parts of a plan id.
_TASK_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_PLAN_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TASK_NAME = re.compile(r"^Task_(?P<type>[A-Za-z0-9_]+)_(?P<ms>\d{1,16})$")
# Any of Pinot's parent task names: Task_<type>_<epochMillis> (taskplan's), Task_<type>_<uuid>_<epochMillis>
# (Pinot's scheduled tasks), Task_<type>_<taskName> (Pinot's ad hoc tasks, the name the request gave).
_ANY_TASK_NAME = re.compile(r"^Task_[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9.-]+)+$")
_ADHOC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_TASK_NAME = 250


class InvalidNameError(ValueError):
    """A name that cannot be used as a table, task type, tag or id."""


def validate_raw_table_name(name: str) -> str:
    if not isinstance(name, str) or not _RAW_TABLE.fullmatch(name):
        raise InvalidNameError(
            f"invalid table name {name!r}: use 1-128 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_task_type(name: str) -> str:
    if not isinstance(name, str) or len(name) > 100 or not _TASK_TYPE.fullmatch(name):
        raise InvalidNameError(
            f"invalid task type {name!r}: use letters and digits, single '_' between words, "
            "at most 100 characters"
        )
    return name


def validate_minion_tag(tag: str) -> str:
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise InvalidNameError(f"invalid minion instance tag {tag!r}")
    return tag


def split_table_name_with_type(name: str) -> tuple[str, TableType]:
    """``myTable_OFFLINE`` -> (``myTable``, ``OFFLINE``); raises for a name without a type suffix."""
    for table_type in TABLE_TYPES:
        suffix = f"_{table_type}"
        if isinstance(name, str) and name.endswith(suffix) and len(name) > len(suffix):
            return validate_raw_table_name(name[: -len(suffix)]), table_type
    raise InvalidNameError(f"invalid table name with type {name!r}: it must end with _OFFLINE or _REALTIME")


@dataclass(frozen=True)
class TableRef:
    """A table as a request names it: its raw name, and its type when the name carries one.

    A request's table name is turned into this once (``parse_table_name``); routes and the access check
    use its parts and never strip a suffix again. A raw name may itself end in ``_OFFLINE``:
    ``x_OFFLINE_OFFLINE`` is the OFFLINE table of the raw name ``x_OFFLINE``, which is not table ``x``.
    """

    raw: str
    table_type: TableType | None = None  # None: every type of the raw name

    def __post_init__(self) -> None:
        validate_raw_table_name(self.raw)

    @property
    def name(self) -> str:
        """The name as the request gave it."""
        return self.raw if self.table_type is None else f"{self.raw}_{self.table_type}"


def parse_table_name(name: str, *, typed: bool = False) -> TableRef:
    """``x_OFFLINE`` -> OFFLINE table of raw ``x``; ``x`` -> every type of ``x`` (refused when ``typed``)."""
    try:
        raw, table_type = split_table_name_with_type(name)
    except InvalidNameError:
        if typed:
            raise
        return TableRef(validate_raw_table_name(name))
    return TableRef(raw, table_type)


def table_name_with_type(raw_name: str, table_type: TableType) -> str:
    return f"{validate_raw_table_name(raw_name)}_{table_type}"


def plan_workflow_id(table_name_with_type: str, task_type: str) -> str:
    """The workflow id shared by every plan of one table and task type: Temporal keeps one running."""
    split_table_name_with_type(table_name_with_type)
    return f"{table_name_with_type}__{validate_task_type(task_type)}"


def new_plan_id(table_name_with_type: str, task_type: str) -> str:
    return f"{plan_workflow_id(table_name_with_type, task_type)}__{uuid.uuid4()}"


def parse_plan_id(plan_id: str) -> tuple[str, str]:
    """Return (tableNameWithType, taskType) of a well-formed plan id, else raise InvalidNameError."""
    parts = plan_id.rsplit("__", 2) if isinstance(plan_id, str) else []
    if len(parts) != 3 or not _PLAN_UUID.fullmatch(parts[2]):
        raise InvalidNameError(
            f"invalid task plan id {plan_id!r}: expected <tableNameWithType>__<taskType>__<uuid>"
        )
    split_table_name_with_type(parts[0])
    validate_task_type(parts[1])
    return parts[0], parts[1]


def task_name(task_type: str, epoch_ms: int) -> str:
    return f"Task_{task_type}_{epoch_ms}"


def parse_task_name(name: str) -> tuple[str, int]:
    match = _TASK_NAME.fullmatch(name) if isinstance(name, str) else None
    if not match:
        raise InvalidNameError(f"invalid task name {name!r}: expected Task_<taskType>_<epochMillis>")
    return validate_task_type(match["type"]), int(match["ms"])


def validate_task_name(name: str) -> str:
    """A parent task name in any of Pinot's forms (a path segment, a workflow id): ``Task_<type>_<rest>``,
    letters, digits, ``_``, ``.`` and ``-`` only."""
    if not isinstance(name, str) or len(name) > MAX_TASK_NAME or not _ANY_TASK_NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid task name {name!r}: expected Task_<taskType>_<epochMillis>, "
            "Task_<taskType>_<uuid>_<epochMillis> or Task_<taskType>_<taskName>"
        )
    return name


def adhoc_task_name(task_type: str, name: str) -> str:
    """Pinot's ad hoc parent task name for the ``taskName`` of a ``POST /tasks/execute``."""
    if not isinstance(name, str) or not _ADHOC_NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid taskName {name!r}: use 1-128 letters, digits, '_', '.' or '-', starting with a letter "
            "or digit"
        )
    return validate_task_name(f"Task_{validate_task_type(task_type)}_{name}")


def subtask_name(parent_task_name: str, index: int) -> str:
    return f"{parent_task_name}_{index}"


def minion_task_queue(tag: str, task_type: str) -> str:
    """One queue per (instance tag, task type), so each task type gets its own per-instance concurrency."""
    return f"minion-{validate_minion_tag(tag)}.{validate_task_type(task_type)}"


class SearchAttributes:
    """Custom search attributes: plans and batches are findable by these in the Web UI and CLI."""

    PLAN_ID: Final = SearchAttributeKey.for_keyword("TaskPlanId")
    TABLE: Final = SearchAttributeKey.for_keyword("TaskPlanTable")
    TASK_TYPE: Final = SearchAttributeKey.for_keyword("TaskPlanType")
    STATUS: Final = SearchAttributeKey.for_keyword("TaskPlanStatus")
    SOURCE: Final = SearchAttributeKey.for_keyword("TaskPlanSource")
    TASK_STATE: Final = SearchAttributeKey.for_keyword("TaskState")
    BATCH_SUBTASKS: Final = SearchAttributeKey.for_int("TaskPlanBatchSubtasks")

    ALL: Final = (PLAN_ID, TABLE, TASK_TYPE, STATUS, SOURCE, TASK_STATE, BATCH_SUBTASKS)


def dev_server_search_attribute_flags() -> list[str]:
    """`--search-attribute NAME=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in SearchAttributes.ALL:
        flags += ["--search-attribute", f"{key.name}={search_attribute_type_name(key.indexed_value_type)}"]
    return flags


def search_attribute_type_name(value_type: SearchAttributeIndexedValueType) -> str:
    """Temporal's own name of a search attribute type, as its CLI and tcld write it."""
    return {
        SearchAttributeIndexedValueType.KEYWORD: "Keyword",
        SearchAttributeIndexedValueType.INT: "Int",
        SearchAttributeIndexedValueType.TEXT: "Text",
        SearchAttributeIndexedValueType.DOUBLE: "Double",
        SearchAttributeIndexedValueType.BOOL: "Bool",
        SearchAttributeIndexedValueType.DATETIME: "Datetime",
        SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
    }[value_type]
