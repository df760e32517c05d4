"""Task types for engine tests: behaviour is driven by task configs, so each test states what it wants.

Subtask configs understood by the executor:
    sleepMs       how long the subtask works (heartbeating, stopping when cancelled)
    failAttempts  fail the first N attempts with a retryable error
    fatal         "true": fail with FatalTaskError
    fatalIndex    fail with FatalTaskError in the subtask whose "index" config is this one (ad hoc tasks)
    markerDir     write <subtaskName>.<pid>.started / .done files there (lets tests find the running minion)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from taskplan.models.table import TableConfig
from taskplan.plugin import (
    BaseTaskExecutor,
    BaseTaskGenerator,
    BatchGeneration,
    BatchRequest,
    ExecutionContext,
    FatalTaskError,
    PinotTaskConfig,
    SubtaskResult,
    TaskConfigError,
    TaskTypePlugin,
)

_generation_failures: dict[str, int] = {}
_lock = threading.Lock()


class CountingGenerator(BaseTaskGenerator):
    """`numBatches` batches of `subtasksPerBatch` subtasks; properties pass through to every subtask.
    Generating batch `slowGenerationAt` (default: every batch) takes `generationSleepMs`."""

    task_type: ClassVar[str] = "TestCountingTask"
    supports_orchestration: ClassVar[bool] = True

    def get_max_attempts_per_task(self, minion_tag: str) -> int:
        return 3

    def generate_next_batch(self, request: BatchRequest) -> BatchGeneration:
        props = request.properties
        with _lock:
            failures_left = _generation_failures.setdefault(
                request.plan_id, int(props.get("failGenerations", "0"))
            )
            if failures_left > 0:
                _generation_failures[request.plan_id] -= 1
                raise RuntimeError(f"generation failure injected ({failures_left} left)")
        if props.get("slowGenerationAt", str(request.batch_sequence)) == str(request.batch_sequence):
            time.sleep(int(props.get("generationSleepMs", "0")) / 1000)  # a slow generator
        if props.get("generatorAbortAt") == str(request.batch_sequence):
            return BatchGeneration.abort("generator found the table in a bad state")
        if "badConfig" in props:
            raise TaskConfigError(f"badConfig is not allowed: {props['badConfig']}")
        num_batches = int(props.get("numBatches", "3"))
        per_batch = int(props.get("subtasksPerBatch", "2"))
        if request.batch_sequence >= num_batches:
            return BatchGeneration.done(custom_stats={"batchesGenerated": str(request.batch_sequence)})
        keys = ("sleepMs", "failAttempts", "fatal", "markerDir")
        shared = {k: props[k] for k in keys if k in props}
        failing = props.get("failingBatch") == str(request.batch_sequence)
        subtasks = [
            self.task(
                request.table_config.tableName,
                {
                    **shared,
                    "batch": str(request.batch_sequence),
                    "index": str(i),
                    **({"fatal": "true"} if failing else {}),
                },
            )
            for i in range(per_batch)
        ]
        return BatchGeneration(
            subtasks=subtasks,
            inputs_in_batch=per_batch,
            inputs_to_process=num_batches * per_batch,
            input_unit="items",
            custom_stats={"batchesGenerated": str(request.batch_sequence + 1)},
            cursor={"next": str(request.batch_sequence + 1), "previous": request.cursor.get("next", "")},
        )

    def generate_adhoc_tasks(
        self, table_config: TableConfig, task_configs: Mapping[str, str]
    ) -> list[PinotTaskConfig]:
        count = int(task_configs.get("subtasksPerBatch", "2"))
        return [self.task(table_config.tableName, {**task_configs, "index": str(i)}) for i in range(count)]


class CountingExecutor(BaseTaskExecutor):
    def execute(self, task: PinotTaskConfig, context: ExecutionContext) -> SubtaskResult:
        configs = task.configs
        marker = configs.get("markerDir")
        stem = f"{context.subtask_name}.{os.getpid()}"
        if marker:
            Path(marker, f"{stem}.started").write_text(str(context.attempt))
        if configs.get("fatal") == "true" or configs.get("fatalIndex", "-") == configs.get("index"):
            raise FatalTaskError("fatal failure injected")
        if context.attempt <= int(configs.get("failAttempts", "0")):
            raise RuntimeError(f"flaky failure injected on attempt {context.attempt}")
        deadline = time.monotonic() + int(configs.get("sleepMs", "0")) / 1000
        while time.monotonic() < deadline:
            if context.cancelled.is_set():
                raise RuntimeError("cancelled")
            # progressMessage: reported as the subtask's progress (GET /tasks/subtask/{task}/progress).
            context.heartbeat(*([configs["progressMessage"]] if "progressMessage" in configs else []))
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        if marker:
            Path(marker, f"{stem}.done").write_text(str(context.attempt))
        return SubtaskResult(counts={"items": 1, "attempt": context.attempt})


class LegacyOnlyGenerator(CountingGenerator):
    task_type: ClassVar[str] = "TestLegacyTask"
    supports_orchestration: ClassVar[bool] = False

    def get_max_attempts_per_task(self, minion_tag: str) -> int:
        return 1


class SingleAttemptGenerator(CountingGenerator):
    """Pinot's default of one attempt per subtask: only a lost minion earns a second run."""

    task_type: ClassVar[str] = "TestSingleAttemptTask"

    def get_max_attempts_per_task(self, minion_tag: str) -> int:
        return 1


class OrchestrationOnlyGenerator(CountingGenerator):
    task_type: ClassVar[str] = "TestOrchestratedOnlyTask"
    orchestration_only: ClassVar[bool] = True

    def generate_tasks(self, table_configs: Sequence[TableConfig]) -> list[PinotTaskConfig]:
        raise TaskConfigError(f"{self.task_type} only runs orchestrated; enable enableTaskOrchestration")

    def generate_adhoc_tasks(
        self, table_config: TableConfig, task_configs: Mapping[str, str]
    ) -> list[PinotTaskConfig]:
        raise TaskConfigError(f"{self.task_type} only runs orchestrated; enable enableTaskOrchestration")


class ContractGenerator(CountingGenerator):
    """The API contract tests' own task type (tests/api/contract): they stop its queue and delete its
    tasks without touching the task types other tests use at the same time."""

    task_type: ClassVar[str] = "TestContractTask"


class ContractDeleteGenerator(CountingGenerator):
    """The contract tests of DELETE /tasks/{taskType} delete every task of this type, and nothing else."""

    task_type: ClassVar[str] = "TestContractDeleteTask"


COUNTING = TaskTypePlugin(generator=CountingGenerator, executor=CountingExecutor)
LEGACY = TaskTypePlugin(generator=LegacyOnlyGenerator, executor=CountingExecutor)
ORCHESTRATED_ONLY = TaskTypePlugin(generator=OrchestrationOnlyGenerator, executor=CountingExecutor)
SINGLE_ATTEMPT = TaskTypePlugin(generator=SingleAttemptGenerator, executor=CountingExecutor)
CONTRACT = TaskTypePlugin(generator=ContractGenerator, executor=CountingExecutor)
CONTRACT_DELETE = TaskTypePlugin(generator=ContractDeleteGenerator, executor=CountingExecutor)
TEST_TASK_TYPES = ("COUNTING", "LEGACY", "ORCHESTRATED_ONLY", "SINGLE_ATTEMPT", "CONTRACT", "CONTRACT_DELETE")
ALL_SPECS = ",".join(
    [
        *(
            f"tests.support.tasktypes:{n}"
            for n in (
                "COUNTING",
                "LEGACY",
                "ORCHESTRATED_ONLY",
                "SINGLE_ATTEMPT",
                "CONTRACT",
                "CONTRACT_DELETE",
            )
        ),
        "taskplan.tasktypes.segment_purge:SEGMENT_PURGE",
        "taskplan.tasktypes.segment_purge:PURGE",
        "taskplan.tasktypes.file_ingestion:FILE_INGESTION",
        "taskplan.tasktypes.file_ingestion:SEGMENT_GENERATION_AND_PUSH",
        "taskplan.tasktypes.data_export:DATA_EXPORT",
        "taskplan.tasktypes.merge_rollup:MERGE_ROLLUP",
        "taskplan.tasktypes.realtime_to_offline:REALTIME_TO_OFFLINE",
        "taskplan.tasktypes.alter_table:ALTER_TABLE",
    ]
)
