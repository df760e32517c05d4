"""One scheduled trigger cycle for a task type over table configs (POST /tasks/schedule, and cron firings).

Per the documented rules: if any table of the cycle forces the legacy flow, the whole cycle is legacy (one
one-shot batch over every table, Pinot's generateTasks(tableConfigs)); otherwise each table whose configs
enable orchestration (and whose task type supports it, with the cluster switch on) gets a plan with source
TABLE_CONFIG, and a table whose plan is still active is skipped, not rejected. Tables that do not enable
orchestration share one legacy batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskplan.metrics import OrchestrationMetrics, metrics
from taskplan.models.errors import PlanAlreadyActiveError, TaskGenerationError
from taskplan.models.plan import CycleResult, PlanSource
from taskplan.models.table import TableConfig
from taskplan.models.task import MANUAL_TRIGGER
from taskplan.plans import OneShotRunner, PlanStarter
from taskplan.registry import RegisteredTaskType
from taskplan.triggers import FORCE_LEGACY_TASK_FLOW, Flow, decide_flow


async def run_trigger_cycle(
    starter: PlanStarter,
    one_shot: OneShotRunner,
    task_type: RegisteredTaskType,
    tables: Sequence[TableConfig],
    *,
    switch_on: bool,
    queue_stopped: bool = False,
    minion_instance_tag: str | None = None,
    triggered_by: str = MANUAL_TRIGGER,
) -> CycleResult:
    """``queue_stopped``: the task type's queue is stopped (``PUT /tasks/{taskType}/stop``): the legacy flow
    schedules nothing (a scheduling error says why), plans are created and wait for the queue to resume.
    ``minion_instance_tag`` overrides the tables' (``POST /tasks/schedule?minionInstanceTag=``)."""
    name = task_type.task_type
    result = CycleResult(task_type=name)
    configured = [t for t in tables if t.task_type_configs(name) is not None]
    forced = [
        t.tableName
        for t in configured
        if _true((t.task_type_configs(name) or {}).get(FORCE_LEGACY_TASK_FLOW))
    ]
    legacy: list[TableConfig] = []
    if forced:
        result.legacy_reason = (
            f"forceLegacyTaskFlow is set for {', '.join(forced)}: the whole cycle is legacy"
        )
        legacy = configured
    else:
        for table in configured:
            configs = table.task_type_configs(name) or {}
            decision = decide_flow(task_type, configs, [table], switch_on=switch_on)
            if decision.flow is not Flow.ORCHESTRATED:
                legacy.append(table)
                continue
            try:
                plan_configs = dict(configs)
                if minion_instance_tag:
                    plan_configs[MINION_INSTANCE_TAG] = minion_instance_tag
                plan_id = await starter.start_plan(
                    table.tableName, name, PlanSource.TABLE_CONFIG, plan_configs
                )
            except PlanAlreadyActiveError as exc:
                result.skipped[table.tableName] = exc.active_plan_id or ""
                metrics().scheduled_trigger_active_plan_conflict.add(
                    1, OrchestrationMetrics.attributes(table.tableName, name)
                )
            else:
                result.task_plans[table.tableName] = plan_id
    if legacy and queue_stopped:
        result.scheduling_errors.append(
            f"Unable to start scheduling for task type {name} as task queue may be stopped. "
            "Please check the task queue status."
        )
    elif legacy:
        tables_named = [t.tableName for t in legacy]
        try:
            started = await one_shot.start(
                name, tables_named, None, minion_instance_tag=minion_instance_tag, triggered_by=triggered_by
            )
            task_name = started.name
        except TaskGenerationError as exc:
            result.errors.update({t: str(exc) for t in tables_named})
        else:
            result.legacy_tasks.update({t: task_name for t in tables_named})
    return result


MINION_INSTANCE_TAG = "minionInstanceTag"


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"
