"""NoOpTask: a task type that does no work, for smoke tests of a deployment and for benchmarks.

Task configs: ``numBatches`` (default 1), ``numSubtasksPerBatch`` (default 1), ``subtaskSleepMs``
(default 0). It supports orchestration and also runs one-shot (one batch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from taskplan.models.table import Schema, TableConfig
from taskplan.plugin import (
    BaseTaskExecutor,
    BaseTaskGenerator,
    BatchGeneration,
    BatchRequest,
    ExecutionContext,
    PinotTaskConfig,
    SubtaskResult,
    TaskConfigError,
    TaskTypePlugin,
)

_LIMITS = {"numBatches": 1_000_000, "numSubtasksPerBatch": 10_000, "subtaskSleepMs": 3_600_000}


def _int_config(configs: Mapping[str, str], key: str, default: int) -> int:
    raw = configs.get(key, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise TaskConfigError(f"{key} must be an integer, got {raw!r}") from None
    if not 0 <= value <= _LIMITS[key]:
        raise TaskConfigError(f"{key} must be between 0 and {_LIMITS[key]}, got {value}")
    return value


class NoOpTaskGenerator(BaseTaskGenerator):
    task_type: ClassVar[str] = "NoOpTask"
    supports_orchestration: ClassVar[bool] = True

    def get_num_concurrent_tasks_per_instance(self, minion_tag: str) -> int:
        return 32

    def validate_task_configs(
        self, table_config: TableConfig, schema: Schema | None, task_configs: Mapping[str, str]
    ) -> None:
        for key, default in (("numBatches", 1), ("numSubtasksPerBatch", 1), ("subtaskSleepMs", 0)):
            _int_config(task_configs, key, default)

    def generate_adhoc_tasks(
        self, table_config: TableConfig, task_configs: Mapping[str, str]
    ) -> list[PinotTaskConfig]:
        self.validate_task_configs(table_config, None, task_configs)
        count = _int_config(task_configs, "numSubtasksPerBatch", 1)
        sleep_ms = str(_int_config(task_configs, "subtaskSleepMs", 0))
        return [self.task(table_config.tableName, {"subtaskSleepMs": sleep_ms}) for _ in range(count)]

    def generate_next_batch(self, request: BatchRequest) -> BatchGeneration:
        props = request.properties
        num_batches = _int_config(props, "numBatches", 1)
        per_batch = _int_config(props, "numSubtasksPerBatch", 1)
        if request.batch_sequence >= num_batches:
            return BatchGeneration.done()
        return BatchGeneration(
            subtasks=self.generate_adhoc_tasks(request.table_config, props),
            inputs_in_batch=per_batch,
            inputs_to_process=num_batches * per_batch,
            input_unit="subtasks",
        )


class NoOpTaskExecutor(BaseTaskExecutor):
    def execute(self, task: PinotTaskConfig, context: ExecutionContext) -> SubtaskResult:
        sleep_s = int(task.configs.get("subtaskSleepMs", "0")) / 1000
        if sleep_s:
            context.cancelled.wait(sleep_s)
        return SubtaskResult(counts={"subtasks": 1})


NOOP = TaskTypePlugin(
    generator=NoOpTaskGenerator,
    executor=NoOpTaskExecutor,
    description="does nothing; for smoke tests and benchmarks",
)
