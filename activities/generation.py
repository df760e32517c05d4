"""Controller activities that run task generators (plugin code): a plan's batches (through the plan's step,
activities/plans.py), the legacy one-shot flow, and config validation."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from temporalio import activity

from taskplan.metrics import OrchestrationMetrics, metrics
from taskplan.models.errors import (
    BATCH_TOO_LARGE,
    TABLE_NOT_FOUND,
    TASK_CONFIG_ERROR,
    UNKNOWN_TASK_TYPE,
    describe,
    refuse,
)
from taskplan.models.table import TableConfig, TableConfigSource
from taskplan.models.task import (
    ADHOC_TRIGGER,
    MANUAL_TRIGGER,
    TRIGGERED_BY_KEY,
    GeneratedBatch,
    SubtaskOptions,
)
from taskplan.plan_configs import threshold_problems
from taskplan.plugin import (
    MINION_INSTANCE_TAG_KEY,
    BatchRequest,
    PinotTaskConfig,
    PluginContext,
    PreviousBatch,
    TaskConfigError,
    TaskGenerator,
)
from taskplan.registry import TaskTypeRegistry, UnknownTaskTypeError
from taskplan.workflows.activity_defs import GenerationActivityDefs
from taskplan.workflows.models import GenerateBatchInput, OneShotRequest

# Temporal refuses payloads over 2 MB; keep a margin for headers and the rest of the input.
MAX_BATCH_PAYLOAD_BYTES = 1_500_000
MAX_SUBTASKS_PER_BATCH = 10_000


class GenerationActivities(GenerationActivityDefs):
    """Built once per controller worker; generators are created once per task type and reused."""

    def __init__(self, registry: TaskTypeRegistry, context: PluginContext, tables: TableConfigSource) -> None:
        self._registry = registry
        self._context = context
        self._tables = tables
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

    def generate_next_batch(self, request: GenerateBatchInput) -> GeneratedBatch:
        """A plan's next batch, as its generator makes it (run by the plan's step, ``next_batch``)."""
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
                # An ad hoc trigger on a raw name whose table has both types generates for both (Pinot).
                subtasks = [
                    task
                    for table in tables
                    for task in generator.generate_adhoc_tasks(table, dict(request.task_configs))
                ]
        except TaskConfigError as exc:
            raise refuse(describe(exc), TASK_CONFIG_ERROR) from exc
        # The minion tag: the schedule's override, else (ad hoc, as Pinot) the trigger's minionInstanceTag,
        # else the table's.
        tag = request.minion_instance_tag or (request.task_configs or {}).get(MINION_INSTANCE_TAG_KEY)
        triggered_by = request.triggered_by or (
            ADHOC_TRIGGER if request.task_configs is not None else MANUAL_TRIGGER
        )
        return _pack(generator, tables[0], request.task_type, subtasks, tag, triggered_by)

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
    generator: TaskGenerator,
    table: TableConfig,
    task_type: str,
    subtasks: Sequence[PinotTaskConfig],
    minion_instance_tag: str | None = None,
    triggered_by: str | None = None,
) -> GeneratedBatch:
    if len(subtasks) > MAX_SUBTASKS_PER_BATCH:
        raise refuse(
            f"the {task_type} generator produced {len(subtasks)} subtasks in one batch; at most "
            f"{MAX_SUBTASKS_PER_BATCH} are allowed (lower tableMaxNumTasks)",
            BATCH_TOO_LARGE,
        )
    configs = [dict(t.configs) for t in subtasks]
    if triggered_by:
        for config in configs:
            config.setdefault(TRIGGERED_BY_KEY, triggered_by)  # Pinot's computeIfAbsent
    for index, task in enumerate(subtasks):
        if task.task_type != task_type:
            raise refuse(
                f"subtask {index} has task type {task.task_type}, expected {task_type}", TASK_CONFIG_ERROR
            )
    common, own = _factor_common(configs)
    tag = minion_instance_tag or generator.get_minion_instance_tag(table)
    batch = GeneratedBatch(
        common=common,
        subtasks=own,
        options=SubtaskOptions(
            task_timeout_ms=generator.get_task_timeout_ms(tag),
            max_attempts_per_task=generator.get_max_attempts_per_task(tag),
            minion_instance_tag=tag,
            num_concurrent_tasks_per_instance=generator.get_num_concurrent_tasks_per_instance(tag),
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
