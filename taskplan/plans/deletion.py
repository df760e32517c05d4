"""Removing plans: a dropped table's (every task type, every run, their task records), an expired plan's,
and any workflow executions a visibility query finds (terminated first if running)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from taskplan.catalog.tasks import TaskStore
from taskplan.names import SearchAttributes, plan_workflow_id
from taskplan.plans.visibility import quote


class PlanRemover:
    def __init__(self, client: Client, store: TaskStore) -> None:
        self.client = client
        self.store = store  # the plans' snapshots and task records go with their executions

    async def remove_table_plans(self, table_name_with_type: str) -> int:
        """Stop and delete every plan (all task types, all runs) and batch of a table. Returns how many."""
        removed = await self.delete_executions(
            f"TaskPlanTable = {quote(table_name_with_type)}", reason=f"table {table_name_with_type} dropped"
        )
        records = await asyncio.to_thread(self.store.delete_tables, [table_name_with_type])
        return removed + records.get(table_name_with_type, 0)

    async def stop_table_plans(self, table_name_with_type: str, task_types: Sequence[str]) -> int:
        """Terminate the table's running plan of each task type by its workflow id, then remove the table's
        plans again: for a plan started while a drop ran, which a visibility listing may not show yet."""
        for task_type in task_types:
            handle = self.client.get_workflow_handle(plan_workflow_id(table_name_with_type, task_type))
            with contextlib.suppress(RPCError):  # none running: nothing to stop
                await handle.terminate(reason=f"table {table_name_with_type} dropped")
        return await self.remove_table_plans(table_name_with_type)

    async def remove_plan(self, plan_id: str, reason: str) -> int:
        """Delete every run of one plan and its records. Returns how many executions and records."""
        removed = await self.delete_executions(f"TaskPlanId = {quote(plan_id)}", reason)
        return removed + await asyncio.to_thread(self.store.delete_plans, [plan_id])

    async def delete_execution(self, workflow_id: str, run_id: str | None, *, running: bool) -> None:
        """Terminate (if running) and delete one workflow execution."""
        if running:
            with contextlib.suppress(RPCError):
                await self.client.get_workflow_handle(workflow_id, run_id=run_id).terminate(reason="deleted")
        await self.client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=self.client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id or ""),
            )
        )

    async def delete_executions(self, query: str, reason: str = "cleanup") -> int:
        """Terminate (if running) and delete every workflow execution the visibility query finds."""
        return sum((await self.delete_executions_by_table(query, reason)).values())

    async def delete_executions_by_table(self, query: str, reason: str = "cleanup") -> dict[str, int]:
        """As delete_executions; how many per table (its TaskPlanTable search attribute)."""
        executions = [
            (e.id, e.run_id, e.status, e.typed_search_attributes.get(SearchAttributes.TABLE) or "")
            async for e in self.client.list_workflows(query)
        ]
        for workflow_id, run_id, status, _ in executions:
            if status == WorkflowExecutionStatus.RUNNING:
                with contextlib.suppress(RPCError):
                    await self.client.get_workflow_handle(workflow_id, run_id=run_id).terminate(reason=reason)
        removed: dict[str, int] = {}
        for workflow_id, run_id, _, table in executions:
            with contextlib.suppress(RPCError):
                await self.client.workflow_service.delete_workflow_execution(
                    DeleteWorkflowExecutionRequest(
                        namespace=self.client.namespace,
                        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id or ""),
                    )
                )
                removed[table] = removed.get(table, 0) + 1
        return removed
