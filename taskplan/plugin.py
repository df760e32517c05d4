"""Task-type plugin API: the Python counterpart of Pinot's PinotTaskGenerator + PinotTaskExecutor.

A task type is a :class:`TaskTypePlugin` bundling a generator factory (runs in controller activities) and
an executor factory (runs in minion activities). Neither ever runs in workflow code. Plugins are found
through the entry-point group ``taskplan.task_types`` or the ``taskplan.plugins`` property.

Errors a plugin raises::

    TaskConfigError   bad task configs / table config: refused at trigger or table-save time (HTTP 400),
                      never retried
    FatalTaskError    an executor failure that must not be retried (Helix's FATAL_FAILED)
    any other error   retried: generation with backoff, a subtask up to its max attempts
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from taskplan.models.table import Schema, TableConfig
from taskplan.names import DEFAULT_MINION_TAG

if TYPE_CHECKING:
    from taskplan.catalog import Catalog
    from taskplan.data.parquet import DuckDBConfig
    from taskplan.settings import Settings

DEFAULT_TASK_TIMEOUT_MS = 3_600_000
DEFAULT_CONCURRENT_TASKS_PER_INSTANCE = 1
DEFAULT_MAX_ATTEMPTS_PER_TASK = 1
TABLE_NAME_KEY = "tableName"
MINION_INSTANCE_TAG_KEY = "minionInstanceTag"


class TaskConfigError(ValueError):
    """Task configs that the task type refuses. Reaches a client as a 400 naming the problem."""


class FatalTaskError(RuntimeError):
    """A subtask failure that retrying cannot fix: fails the subtask at once, without further attempts."""


@dataclass(frozen=True)
class PinotTaskConfig:
    """One subtask: its task type and string configs, which always name the table (``tableName``)."""

    task_type: str
    configs: Mapping[str, str]

    @property
    def table_name(self) -> str:
        return self.configs.get(TABLE_NAME_KEY, "")


@dataclass(frozen=True)
class PluginContext:
    """What a generator or executor may use: the settings, the catalog (tables, schemas, segments) and how
    to open DuckDB connections (taskplan.duckdb.threadsPerSubtask threads each)."""

    settings: Settings
    catalog: Catalog
    duckdb_config: DuckDBConfig


@dataclass(frozen=True)
class PreviousBatch:
    batch_sequence: int
    task_state: str
    num_subtasks: int
    num_failed_subtasks: int


@dataclass(frozen=True)
class BatchRequest:
    """Everything a generator needs to produce the next batch of a plan."""

    plan_id: str
    table_config: TableConfig
    properties: Mapping[str, str]  # the plan's task configs
    batch_sequence: int  # 0-based sequence number of the batch to generate
    cursor: Mapping[str, str]  # what this generator returned as cursor last time (empty at first)
    inputs_processed: int
    previous_batch: PreviousBatch | None


@dataclass(frozen=True)
class BatchGeneration:
    """A generator's answer: a batch, "no more work", or an abort of the plan."""

    subtasks: Sequence[PinotTaskConfig] = ()
    no_more_work: bool = False
    abort_reason: str | None = None
    inputs_in_batch: int = 0  # input units this batch covers
    inputs_to_process: int | None = None  # total input units of the plan, when known
    input_unit: str | None = None
    custom_stats: Mapping[str, str] = field(default_factory=dict)
    cursor: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def done(
        cls,
        *,
        custom_stats: Mapping[str, str] | None = None,
        cursor: Mapping[str, str] | None = None,
        inputs_to_process: int | None = None,
        input_unit: str | None = None,
    ) -> BatchGeneration:
        return cls(
            no_more_work=True,
            custom_stats=dict(custom_stats or {}),
            cursor=dict(cursor or {}),
            inputs_to_process=inputs_to_process,
            input_unit=input_unit,
        )

    @classmethod
    def abort(cls, reason: str) -> BatchGeneration:
        return cls(abort_reason=reason)


@runtime_checkable
class TaskGenerator(Protocol):
    """Runs on the controller (in activities). Mirrors PinotTaskGenerator and StarTree's batch generation."""

    task_type: ClassVar[str]
    supports_orchestration: ClassVar[bool]
    orchestration_only: ClassVar[bool]

    def init(self, context: PluginContext) -> None: ...

    def generate_tasks(self, table_configs: Sequence[TableConfig]) -> list[PinotTaskConfig]:
        """One-shot generation on a schedule, for every table that has this task type configured."""
        ...

    def generate_adhoc_tasks(
        self, table_config: TableConfig, task_configs: Mapping[str, str]
    ) -> list[PinotTaskConfig]:
        """One-shot generation for an ad hoc trigger."""
        ...

    def generate_next_batch(self, request: BatchRequest) -> BatchGeneration:
        """The next batch of a plan, or no more work. Only called when ``supports_orchestration``."""
        ...

    def get_task_timeout_ms(self, minion_tag: str) -> int: ...

    def get_num_concurrent_tasks_per_instance(self, minion_tag: str) -> int: ...

    def get_max_attempts_per_task(self, minion_tag: str) -> int: ...

    def get_minion_instance_tag(self, table_config: TableConfig) -> str: ...

    def validate_task_configs(
        self, table_config: TableConfig, schema: Schema | None, task_configs: Mapping[str, str]
    ) -> None:
        """Raise TaskConfigError for configs this task type cannot run."""
        ...


class BaseTaskGenerator:
    """Pinot's defaults for every optional override; subclass and set ``task_type``."""

    task_type: ClassVar[str] = ""
    supports_orchestration: ClassVar[bool] = False
    orchestration_only: ClassVar[bool] = False

    def __init__(self) -> None:
        self.context: PluginContext | None = None

    def init(self, context: PluginContext) -> None:
        self.context = context

    def generate_tasks(self, table_configs: Sequence[TableConfig]) -> list[PinotTaskConfig]:
        tasks: list[PinotTaskConfig] = []
        for table_config in table_configs:
            tasks.extend(
                self.generate_adhoc_tasks(table_config, table_config.task_type_configs(self.task_type) or {})
            )
        return tasks

    def generate_adhoc_tasks(
        self, table_config: TableConfig, task_configs: Mapping[str, str]
    ) -> list[PinotTaskConfig]:
        raise TaskConfigError(f"task type {self.task_type} does not implement one-shot generation")

    def generate_next_batch(self, request: BatchRequest) -> BatchGeneration:
        raise TaskConfigError(f"task type {self.task_type} does not support orchestration")

    def get_task_timeout_ms(self, minion_tag: str) -> int:
        return DEFAULT_TASK_TIMEOUT_MS

    def get_num_concurrent_tasks_per_instance(self, minion_tag: str) -> int:
        return DEFAULT_CONCURRENT_TASKS_PER_INSTANCE

    def get_max_attempts_per_task(self, minion_tag: str) -> int:
        return DEFAULT_MAX_ATTEMPTS_PER_TASK

    def get_minion_instance_tag(self, table_config: TableConfig) -> str:
        """Pinot's rule: the table's ``minionInstanceTag`` task config, else ``minion_untagged``."""
        configs = table_config.task_type_configs(self.task_type) or {}
        return configs.get(MINION_INSTANCE_TAG_KEY) or DEFAULT_MINION_TAG

    def validate_task_configs(
        self, table_config: TableConfig, schema: Schema | None, task_configs: Mapping[str, str]
    ) -> None:
        return None

    def task(self, table_name: str, configs: Mapping[str, str]) -> PinotTaskConfig:
        """Build a subtask config for this task type; ``tableName`` is always set."""
        return PinotTaskConfig(self.task_type, {**configs, TABLE_NAME_KEY: table_name})


class ExecutionContext:
    """Handed to an executor for one attempt of one subtask."""

    def __init__(
        self,
        *,
        subtask_name: str,
        attempt: int,
        plugin: PluginContext,
        heartbeat: Callable[..., None] | None = None,
    ) -> None:
        self.subtask_name = subtask_name
        self.attempt = attempt
        self.plugin = plugin
        self.cancelled = threading.Event()
        self._heartbeat = heartbeat

    @property
    def settings(self) -> Settings:
        return self.plugin.settings

    @property
    def catalog(self) -> Catalog:
        return self.plugin.catalog

    @property
    def duckdb_config(self) -> DuckDBConfig:
        return self.plugin.duckdb_config

    def heartbeat(self, *details: Any) -> None:
        """Report progress; long executors should call this and stop when ``cancelled`` is set."""
        if self._heartbeat is not None:
            self._heartbeat(*details)


@dataclass(frozen=True)
class SubtaskResult:
    """An executor's report: counts (rows processed, purged, ...) and an optional message."""

    counts: Mapping[str, int | float] = field(default_factory=dict)
    message: str = ""
    samples: Sequence[str] = ()  # a few examples of rejected input, Druid style


@runtime_checkable
class TaskExecutor(Protocol):
    """Runs on a minion (in an activity). Mirrors PinotTaskExecutor."""

    def execute(self, task: PinotTaskConfig, context: ExecutionContext) -> SubtaskResult: ...

    def cancel(self) -> None: ...


class BaseTaskExecutor:
    def __init__(self) -> None:
        self.cancel_requested = threading.Event()

    def execute(self, task: PinotTaskConfig, context: ExecutionContext) -> SubtaskResult:
        raise NotImplementedError

    def cancel(self) -> None:
        self.cancel_requested.set()


@dataclass(frozen=True)
class TaskTypePlugin:
    """A task type: its generator class and executor factory, registered under the generator's task type."""

    generator: Callable[[], TaskGenerator]
    executor: Callable[[], TaskExecutor]
    description: str = ""
