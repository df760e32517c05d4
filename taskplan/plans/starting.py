"""Starting a plan: one running plan per table and task type (its workflow id), listed from its start."""

from __future__ import annotations

import asyncio

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from taskplan.catalog.tasks import TaskStore
from taskplan.clock import now_ms
from taskplan.models.errors import PlanAlreadyActiveError
from taskplan.models.plan import PlanOptions, PlanSource, PlanStatus, TaskPlan
from taskplan.names import CONTROLLER_TASK_QUEUE, SearchAttributes, new_plan_id, plan_workflow_id
from taskplan.plan_configs import with_thresholds
from taskplan.workflows.models import PlanInput
from taskplan.workflows.plan_details import static_details, static_summary
from taskplan.workflows.task_plan import TaskPlanWorkflow


class PlanStarter:
    def __init__(self, client: Client, store: TaskStore, options: PlanOptions) -> None:
        self.client = client
        self.store = store  # the plan's snapshot is saved as it starts
        self.options = options  # the defaults (the properties); a plan's task configs may override some

    async def start_plan(
        self,
        table_name_with_type: str,
        task_type: str,
        source: PlanSource,
        properties: dict[str, str],
        options: PlanOptions | None = None,
    ) -> str:
        """Start the plan and return its id. Raises PlanAlreadyActiveError, PlanConfigError."""
        # The failure thresholds come from the task configs (checked already, as the API triggers a plan),
        # else from the defaults; the plan's properties show them.
        properties, options = with_thresholds(properties, options or self.options)
        plan_id = new_plan_id(table_name_with_type, task_type)
        try:
            await self.client.start_workflow(
                TaskPlanWorkflow.run,
                PlanInput(
                    plan_id=plan_id,
                    table_name_with_type=table_name_with_type,
                    task_type=task_type,
                    source=source,
                    properties=properties,
                    options=options,
                ),
                id=plan_workflow_id(table_name_with_type, task_type),
                task_queue=CONTROLLER_TASK_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SearchAttributes.PLAN_ID, plan_id),
                        SearchAttributePair(SearchAttributes.TABLE, table_name_with_type),
                        SearchAttributePair(SearchAttributes.TASK_TYPE, task_type),
                        SearchAttributePair(SearchAttributes.STATUS, PlanStatus.ACTIVE.value),
                        SearchAttributePair(SearchAttributes.SOURCE, source.value),
                    ]
                ),
                # What the Web UI and `temporal workflow describe` show of the plan from its start.
                static_summary=static_summary(table_name_with_type, task_type),
                static_details=static_details(plan_id, table_name_with_type, task_type, source, properties),
            )
        except WorkflowAlreadyStartedError:
            active = await self.active_plan_id(table_name_with_type, task_type)
            raise PlanAlreadyActiveError(table_name_with_type, task_type, active) from None
        # Listed from the start (the plan saves its own snapshots as its batches end).
        created = TaskPlan(
            plan_id=plan_id,
            table_name_with_type=table_name_with_type,
            task_type=task_type,
            status=PlanStatus.ACTIVE,
            source=source,
            properties=dict(properties),
            status_message="plan created",
            created_at_ms=now_ms(),
        )
        await asyncio.to_thread(self.store.record_plan_started, created)
        return plan_id

    async def active_plan_id(self, table_name_with_type: str, task_type: str) -> str | None:
        """The id of the table's running plan of the task type, if one runs."""
        handle = self.client.get_workflow_handle(plan_workflow_id(table_name_with_type, task_type))
        try:
            desc = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return None
        return desc.typed_search_attributes.get(SearchAttributes.PLAN_ID)
