"""The documented trigger rules: when a trigger creates a plan and when it takes the legacy one-shot flow.

A trigger is orchestrated only if all hold: the cluster switch
``controller.startree.task.manager.enableTaskOrchestration`` is on, the task configs say
``enableTaskOrchestration: "true"``, the task type's generator supports orchestration, and no table of the
trigger sets ``forceLegacyTaskFlow: "true"`` (which wins over enableTaskOrchestration, and for a multi-table
trigger routes the whole cycle to the legacy flow).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from taskplan.models.table import TableConfig
from taskplan.registry import RegisteredTaskType
from taskplan.settings import ENABLE_ORCHESTRATION

ENABLE_TASK_ORCHESTRATION = "enableTaskOrchestration"
FORCE_LEGACY_TASK_FLOW = "forceLegacyTaskFlow"


class Flow(StrEnum):
    ORCHESTRATED = "ORCHESTRATED"
    LEGACY = "LEGACY"


@dataclass(frozen=True)
class FlowDecision:
    flow: Flow
    reason: str


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def orchestration_switch(cluster_configs: Mapping[str, str], default: bool) -> bool:
    value = cluster_configs.get(ENABLE_ORCHESTRATION)
    return default if value is None else _true(value)


def decide_flow(
    task_type: RegisteredTaskType,
    task_configs: Mapping[str, str],
    tables: Sequence[TableConfig],
    *,
    switch_on: bool,
) -> FlowDecision:
    name = task_type.task_type
    forced = [
        t.tableName for t in tables if _true((t.task_type_configs(name) or {}).get(FORCE_LEGACY_TASK_FLOW))
    ]
    if _true(task_configs.get(FORCE_LEGACY_TASK_FLOW)):
        forced.append("the trigger's task configs")
    if forced:
        return FlowDecision(Flow.LEGACY, f"forceLegacyTaskFlow is set for {', '.join(forced)}")
    if not _true(task_configs.get(ENABLE_TASK_ORCHESTRATION)):
        return FlowDecision(Flow.LEGACY, "enableTaskOrchestration is not set")
    if not task_type.supports_orchestration:
        return FlowDecision(Flow.LEGACY, f"task type {name} does not support orchestration")
    if not switch_on:
        return FlowDecision(
            Flow.LEGACY, f"orchestration is disabled cluster-wide ({ENABLE_ORCHESTRATION}=false)"
        )
    return FlowDecision(Flow.ORCHESTRATED, "orchestration enabled")


def legacy_refusal(task_type: RegisteredTaskType, decision: FlowDecision) -> str | None:
    """Why an orchestration-only task type cannot take the legacy flow (None when it can)."""
    if decision.flow is Flow.LEGACY and task_type.orchestration_only:
        return (
            f"task type {task_type.task_type} only runs as an orchestrated task plan and refuses one-shot "
            f'generation ({decision.reason}); set enableTaskOrchestration to "true"'
        )
    return None
