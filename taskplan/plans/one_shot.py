"""The legacy flow: one generated batch (a TaskBatch workflow named as Pinot names tasks), no plan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from taskplan.clock import now_ms
from taskplan.models.errors import TaskAlreadyExistsError, TaskGenerationError
from taskplan.models.plan import PlanOptions
from taskplan.models.task import TaskState
from taskplan.names import CONTROLLER_TASK_QUEUE, SearchAttributes, task_name
from taskplan.plans.visibility import TASK_TABLES_MEMO
from taskplan.workflows.batch import BatchWorkflow
from taskplan.workflows.models import BatchInput, OneShotRequest


@dataclass(frozen=True)
class OneShotStarted:
    name: str
    num_subtasks: int


class OneShotRunner:
    def __init__(self, client: Client, options: PlanOptions) -> None:
        self.client = client
        self.options = options  # the batch's failure threshold and subtask options

    async def run_one_shot(
        self,
        task_type: str,
        tables: Sequence[str],
        task_configs: dict[str, str] | None,
        options: PlanOptions | None = None,
    ) -> str:
        """Returns the task's name once its subtasks exist. Raises TaskGenerationError."""
        return (await self.start(task_type, tables, task_configs, options)).name

    async def start(
        self,
        task_type: str,
        tables: Sequence[str],
        task_configs: dict[str, str] | None,
        options: PlanOptions | None = None,
        *,
        name: str | None = None,
        minion_instance_tag: str | None = None,
        triggered_by: str | None = None,
    ) -> OneShotStarted:
        """Start the task (named ``name``, else ``Task_<taskType>_<epochMillis>``) and return once its
        subtasks exist. Raises TaskGenerationError, and TaskAlreadyExistsError when ``name`` is taken."""
        request = OneShotRequest(
            task_type=task_type,
            table_names_with_type=list(tables),
            task_configs=task_configs,
            minion_instance_tag=minion_instance_tag,
            triggered_by=triggered_by,
        )
        started_ms = now_ms()
        for offset in range(1 if name else 1000):
            candidate = name or task_name(task_type, started_ms + offset)
            try:
                handle = await self.client.start_workflow(
                    BatchWorkflow.run,
                    BatchInput(
                        task_name=candidate,
                        task_type=task_type,
                        table_names_with_type=list(tables),
                        one_shot=request,
                        options=options or self.options,
                    ),
                    id=candidate,
                    task_queue=CONTROLLER_TASK_QUEUE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    # Every table, for access checks (the search attribute holds the first one only).
                    memo={TASK_TABLES_MEMO: list(tables)},
                    search_attributes=TypedSearchAttributes(
                        [
                            SearchAttributePair(SearchAttributes.TABLE, tables[0]),
                            SearchAttributePair(SearchAttributes.TASK_TYPE, task_type),
                            SearchAttributePair(SearchAttributes.TASK_STATE, TaskState.NOT_STARTED.value),
                        ]
                    ),
                )
            except WorkflowAlreadyStartedError:
                if name:
                    raise TaskAlreadyExistsError(name) from None
                continue
            outcome = await handle.execute_update(BatchWorkflow.generated)
            if outcome.error:
                raise TaskGenerationError(outcome.error, outcome.error_type)
            return OneShotStarted(candidate, outcome.num_subtasks)
        raise RuntimeError("could not find a free task name")  # pragma: no cover - 1000 names in the same ms
