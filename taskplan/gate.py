"""The cluster's rules for letting a plan take its next batch (asked before every batch).

A plan may not progress while: orchestration is switched off cluster-wide; its task type's queue is stopped
(``PUT /tasks/{taskType}/stop``); the subtasks of running batches of its table, or of the whole cluster, are
at or above ``taskplan.limits.maxInFlightSubtasksPerTable`` / ``taskplan.limits.maxInFlightSubtasks``
(0: no limit; a cluster config of the same name overrides the property at run time). The plan then waits
durably, says why in its statusMessage and sets ``taskPlanProgressionBlocked``; it asks again every few
seconds and goes on by itself once the cause clears.

In-flight subtasks are the subtasks of running batches: those of plans from their task records in the
catalog (taskplan/catalog/tasks.py), those of legacy tasks (TaskBatch workflows) from Temporal visibility,
where each running one carries its subtask count in the search attribute ``TaskPlanBatchSubtasks``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from enum import StrEnum

from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.cluster_configs import runtime_int
from taskplan.names import SearchAttributes
from taskplan.settings import ENABLE_ORCHESTRATION, MAX_IN_FLIGHT, MAX_IN_FLIGHT_PER_TABLE, Settings
from taskplan.triggers import orchestration_switch

QUEUE_STATE_SCOPE = "taskQueue"
PER_TABLE_LIMIT = MAX_IN_FLIGHT_PER_TABLE
CLUSTER_LIMIT = MAX_IN_FLIGHT
RUNNING_BATCHES = "WorkflowType = 'TaskBatch' AND ExecutionStatus = 'Running'"


class QueueState(StrEnum):
    """Pinot's task queue states, as GET /tasks/{taskType}/state answers them."""

    IN_PROGRESS = "IN_PROGRESS"
    STOPPED = "STOPPED"


def queue_state(catalog: Catalog, task_type: str) -> QueueState:
    value = catalog.get_state(QUEUE_STATE_SCOPE, task_type)
    return QueueState(value) if value else QueueState.IN_PROGRESS


def set_queue_state(catalog: Catalog, task_type: str, state: QueueState) -> None:
    catalog.set_state(QUEUE_STATE_SCOPE, task_type, state.value)


async def in_flight_subtasks(client: Client) -> dict[str, int]:
    """Subtasks of running legacy tasks (TaskBatch workflows) per table, from visibility."""
    per_table: dict[str, int] = defaultdict(int)
    async for execution in client.list_workflows(RUNNING_BATCHES):
        attributes = execution.typed_search_attributes
        table = attributes.get(SearchAttributes.TABLE)
        size = attributes.get(SearchAttributes.BATCH_SUBTASKS)
        if table and size:
            per_table[table] += size
    return dict(per_table)


class ClusterGate:
    """Callable as the controller's ProgressionGate (run in an activity thread)."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        client: Client | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.client = client
        self.loop = loop

    def __call__(self, table_name_with_type: str, task_type: str, plan_id: str | None = None) -> str | None:
        configs = self.catalog.cluster_configs()
        if not orchestration_switch(configs, self.settings.enable_task_orchestration):
            return f"orchestration is disabled cluster-wide ({ENABLE_ORCHESTRATION}=false)"
        if queue_state(self.catalog, task_type) is QueueState.STOPPED:
            return f"the task queue of {task_type} is stopped (PUT /tasks/{task_type}/resume resumes it)"
        return self._limits(table_name_with_type, configs, plan_id)

    def _limits(self, table: str, configs: dict[str, str], plan_id: str | None) -> str | None:
        # The cluster configs (read before every batch, so changeable at run time), else the properties.
        settings = self.settings
        per_table_limit = runtime_int(configs, PER_TABLE_LIMIT, settings.max_in_flight_subtasks_per_table)
        cluster_limit = runtime_int(configs, CLUSTER_LIMIT, settings.max_in_flight_subtasks)
        if not (per_table_limit or cluster_limit) or self.client is None or self.loop is None:
            return None
        counts = asyncio.run_coroutine_threadsafe(in_flight_subtasks(self.client), self.loop).result(
            timeout=30
        )
        for name, count in self.catalog.tasks.in_flight(except_plan_id=plan_id).items():
            counts[name] = counts.get(name, 0) + count
        if per_table_limit and counts.get(table, 0) >= per_table_limit:
            return (
                f"{counts[table]} subtasks of {table} are in flight; the limit per table is "
                f"{per_table_limit} ({PER_TABLE_LIMIT})"
            )
        total = sum(counts.values())
        if cluster_limit and total >= cluster_limit:
            return (
                f"{total} subtasks are in flight in the cluster; the limit is {cluster_limit} "
                f"({CLUSTER_LIMIT})"
            )
        return None
