"""Deleting parent tasks (Pinot's ``DELETE /tasks/task/{taskName}``, ``DELETE /tasks/{taskType}`` and
``PUT /tasks/{taskType}/cleanup``).

A legacy task is one TaskBatch workflow: deleted whole (terminated first when forced). A plan's batch is not
deleted alone: its plan records it, so deleting it would leave the plan half-deleted; a task type's tasks
go plan by plan, each plan whole (its runs in Temporal, its snapshot and every batch record). What still
runs is refused (TaskStillRunningError, a 409) unless forced, and nothing is deleted then. Without force,
only what had ended when the request came is deleted, so a plan or task started meanwhile is left whole.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from taskplan.catalog.tasks import TaskStore
from taskplan.clock import now_ms
from taskplan.models.errors import TaskNotFoundError, TaskStillRunningError
from taskplan.models.plan import PlanStatus
from taskplan.names import SearchAttributes
from taskplan.plans.deletion import PlanRemover
from taskplan.plans.visibility import BATCH_WORKFLOW_TYPE, PLAN_WORKFLOW_TYPE, quote


class PlanBatchError(TaskStillRunningError):
    """A plan's batch named alone: it goes with its plan (409)."""


@dataclass
class Deleted:
    plans: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)


class TaskDeleter:
    def __init__(self, client: Client, store: TaskStore, remover: PlanRemover) -> None:
        self.client = client
        self.store = store
        self.remover = remover

    async def delete_task(self, name: str, *, force: bool) -> None:
        stored = await asyncio.to_thread(self.store.get, name)
        if stored is not None:
            raise PlanBatchError(
                f"task {name} is batch {stored.batch_sequence} of task plan {stored.plan_id}: "
                "a plan's batches are deleted with their plan "
                f"(DELETE /tasks/{stored.task_type}, or drop the table)"
            )
        try:
            desc = await self.client.get_workflow_handle(name).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise TaskNotFoundError(name) from None
            raise
        if desc.status == WorkflowExecutionStatus.RUNNING and not force:
            raise TaskStillRunningError(
                f"task {name} is still running: delete it with forceDelete=true (its running subtasks are "
                "stopped), or once it ended"
            )
        await self.remover.delete_execution(
            name, desc.run_id, running=desc.status == WorkflowExecutionStatus.RUNNING
        )
        await asyncio.to_thread(self.store.mark_deleted, [name], now_ms())

    async def remove_plans(self, plan_ids: list[str], reason: str) -> None:
        """Delete these (ended) plans whole, and hide them at once."""
        for plan_id in plan_ids:
            await self.remover.remove_plan(plan_id, reason=reason)
        await asyncio.to_thread(self.store.mark_deleted, plan_ids, now_ms())

    async def running(self, task_type: str) -> tuple[list[str], list[str]]:
        """(active plans, running legacy tasks) of a task type."""
        plans = await asyncio.to_thread(self.store.plans_of_type, task_type)
        active = {p for p, status in plans.items() if status.is_active}
        query = f"TaskPlanType = {quote(task_type)} AND ExecutionStatus = 'Running'"
        legacy: list[str] = []
        async for execution in self.client.list_workflows(query):
            if execution.workflow_type == BATCH_WORKFLOW_TYPE:
                legacy.append(execution.id)
            elif execution.workflow_type == PLAN_WORKFLOW_TYPE:
                plan_id = execution.typed_search_attributes.get(SearchAttributes.PLAN_ID)
                if plan_id:
                    active.add(plan_id)
        return sorted(active), sorted(legacy)

    async def delete_task_type(self, task_type: str, *, force: bool) -> Deleted:
        """Every plan and legacy task of a task type (``force``: running ones too, stopped first)."""
        active, legacy = await self.running(task_type)
        if (active or legacy) and not force:
            raise TaskStillRunningError(
                f"{len(active)} task plans and {len(legacy)} legacy tasks of {task_type} are still running "
                f"({', '.join([*active, *legacy][:10])}): "
                "delete with forceDelete=true to stop and delete them"
            )
        return await self._delete(task_type, include_running=force)

    async def clean_up(self, task_type: str) -> Deleted:
        """The plans and legacy tasks of a task type that ended (Pinot's cleanUpTaskQueue)."""
        return await self._delete(task_type, include_running=False)

    async def _delete(self, task_type: str, *, include_running: bool) -> Deleted:
        done = Deleted()
        plans = await asyncio.to_thread(self.store.plans_of_type, task_type)
        active, _ = await self.running(task_type)
        for plan_id in sorted(set(plans) | set(active)):
            ended = plan_id not in active and not plans.get(plan_id, PlanStatus.ACTIVE).is_active
            if include_running or ended:
                await self.remover.remove_plan(plan_id, reason=f"tasks of {task_type} deleted")
                done.plans.append(plan_id)
        await asyncio.to_thread(self.store.mark_deleted, done.plans, now_ms())
        query = f"WorkflowType = '{BATCH_WORKFLOW_TYPE}' AND TaskPlanType = {quote(task_type)}"
        if not include_running:
            query += " AND ExecutionStatus != 'Running'"
        done.tasks = [e.id async for e in self.client.list_workflows(query)]
        await self.remover.delete_executions(query, reason=f"tasks of {task_type} deleted")
        await asyncio.to_thread(self.store.mark_deleted, done.tasks, now_ms())
        return done
