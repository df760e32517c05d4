"""Controller activities: run task generators (plugin code) for plans and for the legacy one-shot flow."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence

from temporalio import activity

from taskplan.catalog.tasks import TaskStore
from taskplan.metrics import OrchestrationMetrics, metrics
from taskplan.models.errors import (
    BATCH_TOO_LARGE,
    TABLE_NOT_FOUND,
    TASK_CONFIG_ERROR,
    UNKNOWN_TASK_TYPE,
    describe,
    refuse,
)
from taskplan.models.plan import BatchEnd, PlanEnd
from taskplan.models.table import TableConfig, TableConfigSource
from taskplan.models.task import GeneratedBatch, SubtaskOptions
from taskplan.plan_configs import threshold_problems
from taskplan.plugin import (
    BatchRequest,
    PinotTaskConfig,
    PluginContext,
    PreviousBatch,
    TaskConfigError,
    TaskGenerator,
)
from taskplan.registry import TaskTypeRegistry, UnknownTaskTypeError
from workflows.models import GenerateBatchInput, NextBatch, NextBatchInput, OneShotRequest, ProgressionCheck

# Temporal refuses payloads over 2 MB; keep a margin for headers and the rest of the input.
MAX_BATCH_PAYLOAD_BYTES = 1_500_000
MAX_SUBTASKS_PER_BATCH = 10_000


ProgressionGate = Callable[[str, str, "str | None"], "str | None"]


def always_allowed(table_name_with_type: str, task_type: str, plan_id: str | None = None) -> str | None:
    return None


class GenerationActivities:
    """Built once per controller worker; generators are created once per task type and reused."""

    def __init__(
        self,
        registry: TaskTypeRegistry,
        context: PluginContext,
        tables: TableConfigSource,
        gate: ProgressionGate = always_allowed,
        tasks: TaskStore | None = None,
    ) -> None:
        self._registry = registry
        self._context = context
        self._tables = tables
        self._gate = gate
        self._tasks = tasks  # task records of plan batches (None: not kept)
        self._generators: dict[str, TaskGenerator] = {}
        self._lock = threading.Lock()

    def generator(self, task_type: str) -> TaskGenerator:
        with self._lock:
            if task_type not in self._generators:
                try:
                    registered = self._registry.get(task_type)
                except UnknownTaskTypeError as exc:
                    raise refuse(str(exc), UNKNOWN_TASK_TYPE) from None
                self._generators[task_type] = registered.new_generator(self._context)
            return self._generators[task_type]

    def _table(self, name: str) -> TableConfig:
        config = self._tables.get_table_config(name)
        if config is None:
            raise refuse(f"table {name} does not exist", TABLE_NOT_FOUND)
        return config

    @activity.defn(name="check_progression")
    def check_progression(self, check: ProgressionCheck) -> str | None:
        """Why a plan may not progress now (None: it may). A local activity, run before each batch."""
        attrs = OrchestrationMetrics.attributes(check.table_name_with_type, check.task_type)
        try:
            reason = self._gate(check.table_name_with_type, check.task_type, check.plan_id)
        except Exception:
            metrics().orchestration_cycle_failure.add(1, attrs)
            raise
        metrics().task_plan_progression_blocked.set(0 if reason is None else 1, attrs)
        return reason

    @activity.defn(name="record_plan_aborted")
    def record_plan_aborted(self, check: ProgressionCheck) -> None:
        """Count a plan aborted by a failure-threshold breach or by its generator (a local activity)."""
        metrics().task_plan_aborted.add(
            1, OrchestrationMetrics.attributes(check.table_name_with_type, check.task_type)
        )

    @activity.defn(name="generate_next_batch")
    def generate_next_batch(self, request: GenerateBatchInput) -> GeneratedBatch:
        try:
            batch = self._generate_next_batch(request)
            # A batch to run gets its task record; a generator's "no more work" or abort makes none.
            if request.task_name and self._tasks is not None and batch.subtasks and not batch.abort_reason:
                name = self._tasks.record_started(
                    request.task_name,
                    table_name=request.table_name_with_type,
                    plan_id=request.plan_id,
                    batch_sequence=request.batch_sequence,
                    submitted_ms=request.submitted_at_ms or int(time.time() * 1000),
                    batch=batch,
                )
                batch = batch.model_copy(update={"task_name": name})
            return batch
        except Exception:
            attrs = OrchestrationMetrics.attributes(request.table_name_with_type, request.task_type)
            metrics().task_generation_failure_count.add(1, attrs)
            metrics().orchestration_cycle_failure.add(1, attrs)
            raise

    def _generate_next_batch(self, request: GenerateBatchInput) -> GeneratedBatch:
        generator = self.generator(request.task_type)
        table = self._table(request.table_name_with_type)
        previous = request.previous_batch
        try:
            generation = generator.generate_next_batch(
                BatchRequest(
                    plan_id=request.plan_id,
                    table_config=table,
                    properties=dict(request.properties),
                    batch_sequence=request.batch_sequence,
                    cursor=dict(request.cursor),
                    inputs_processed=request.inputs_processed,
                    previous_batch=None
                    if previous is None
                    else PreviousBatch(
                        previous.batch_sequence,
                        previous.task_state.value,
                        previous.num_subtasks,
                        previous.num_failed_subtasks,
                    ),
                )
            )
        except TaskConfigError as exc:
            raise refuse(describe(exc), TASK_CONFIG_ERROR) from exc
        if generation.abort_reason:
            return GeneratedBatch(
                abort_reason=generation.abort_reason, custom_stats=dict(generation.custom_stats)
            )
        if not generation.no_more_work and not generation.subtasks:
            # An empty batch that claims more work would loop forever: treat it as done.
            activity.logger.warning(
                "generator of %s returned an empty batch; taking it as no more work", request.task_type
            )
        batch = _pack(generator, table, request.task_type, generation.subtasks)
        return batch.model_copy(
            update={
                "no_more_work": generation.no_more_work or not generation.subtasks,
                "inputs_in_batch": generation.inputs_in_batch,
                "inputs_to_process": generation.inputs_to_process,
                "input_unit": generation.input_unit,
                "custom_stats": {str(k): str(v) for k, v in generation.custom_stats.items()},
                "cursor": {str(k): str(v) for k, v in generation.cursor.items()},
            }
        )

    @activity.defn(name="next_batch")
    def next_batch(self, step: NextBatchInput) -> NextBatch:
        """A plan's step between batches (a local activity): last batch's end, the gate, the next batch."""
        if step.ended is not None:
            self.record_batch_end(step.ended)
        reason = self.check_progression(step.check)
        if reason is not None:
            return NextBatch(blocked_reason=reason)
        return NextBatch(batch=self.generate_next_batch(step.generate))

    @activity.defn(name="record_plan_end")
    def record_plan_end(self, end: PlanEnd) -> None:
        """A local activity when a plan ends, before its workflow closes: its last batch's end and its final
        snapshot (so it leaves the active listing as it ends), and taskPlanAborted if it was aborted."""
        if end.aborted and activity.info().attempt == 1:  # counted once, whatever the catalog does
            self.record_plan_aborted(
                ProgressionCheck(
                    table_name_with_type=end.plan.table_name_with_type, task_type=end.plan.task_type
                )
            )
        if self._tasks is not None:
            self._tasks.record_plan_end(end)

    @activity.defn(name="record_batch_end")
    def record_batch_end(self, end: BatchEnd) -> None:
        """A local activity when a plan's batch ended: its task record takes the result and reports."""
        if self._tasks is not None and not self._tasks.record_ended(end):
            activity.logger.warning("batch %s ended but has no task record (table dropped?)", end.task_name)

    @activity.defn(name="generate_one_shot")
    def generate_one_shot(self, request: OneShotRequest) -> GeneratedBatch:
        try:
            return self._generate_one_shot(request)
        except Exception:
            for table in request.table_names_with_type:
                metrics().task_generation_failure_count.add(
                    1, OrchestrationMetrics.attributes(table, request.task_type)
                )
            raise

    def _generate_one_shot(self, request: OneShotRequest) -> GeneratedBatch:
        generator = self.generator(request.task_type)
        tables = [self._table(name) for name in request.table_names_with_type]
        try:
            if request.task_configs is None:
                subtasks = generator.generate_tasks(tables)
            else:
                subtasks = generator.generate_adhoc_tasks(tables[0], dict(request.task_configs))
        except TaskConfigError as exc:
            raise refuse(describe(exc), TASK_CONFIG_ERROR) from exc
        return _pack(generator, tables[0], request.task_type, subtasks)

    @activity.defn(name="validate_task_configs")
    def validate_task_configs(self, table_config: TableConfig) -> list[str]:
        """Validate every task type's configs of a table config (the plan's own thresholds, then the task
        type's checks); returns the problems found."""
        problems: list[str] = []
        task = table_config.task
        schema = self._tables.get_schema_for_table(table_config.tableName)
        for task_type, configs in task.taskTypeConfigsMap.items() if task else []:
            problems.extend(f"task.taskTypeConfigsMap.{task_type}: {p}" for p in threshold_problems(configs))
            try:
                self.generator(task_type).validate_task_configs(table_config, schema, configs)
            except TaskConfigError as exc:
                problems.append(f"task.taskTypeConfigsMap.{task_type}: {describe(exc)}")
            except Exception as exc:
                if getattr(exc, "type", None) == UNKNOWN_TASK_TYPE:
                    problems.append(f"task.taskTypeConfigsMap.{task_type}: unknown task type")
                else:
                    raise
        return problems


def _pack(
    generator: TaskGenerator, table: TableConfig, task_type: str, subtasks: Sequence[PinotTaskConfig]
) -> GeneratedBatch:
    if len(subtasks) > MAX_SUBTASKS_PER_BATCH:
        raise refuse(
            f"the {task_type} generator produced {len(subtasks)} subtasks in one batch; at most "
            f"{MAX_SUBTASKS_PER_BATCH} are allowed (lower tableMaxNumTasks)",
            BATCH_TOO_LARGE,
        )
    configs = [dict(t.configs) for t in subtasks]
    for index, task in enumerate(subtasks):
        if task.task_type != task_type:
            raise refuse(
                f"subtask {index} has task type {task.task_type}, expected {task_type}", TASK_CONFIG_ERROR
            )
    common, own = _factor_common(configs)
    tag = generator.get_minion_instance_tag(table)
    batch = GeneratedBatch(
        common=common,
        subtasks=own,
        options=SubtaskOptions(
            task_timeout_ms=generator.get_task_timeout_ms(tag),
            max_attempts_per_task=generator.get_max_attempts_per_task(tag),
            minion_instance_tag=tag,
        ),
    )
    size = len(json.dumps(common)) + sum(len(json.dumps(c)) for c in own)
    if size > MAX_BATCH_PAYLOAD_BYTES:
        raise refuse(
            f"the {task_type} batch of {len(subtasks)} subtasks takes {size} bytes, over the "
            f"{MAX_BATCH_PAYLOAD_BYTES}-byte limit of one Temporal payload (lower tableMaxNumTasks)",
            BATCH_TOO_LARGE,
        )
    return batch


def _factor_common(configs: list[dict[str, str]]) -> tuple[dict[str, str], list[dict[str, str]]]:
    if len(configs) < 2:
        return {}, configs
    first = configs[0]
    common = {k: v for k, v in first.items() if all(c.get(k) == v for c in configs[1:])}
    return common, [{k: v for k, v in c.items() if k not in common} for c in configs]
