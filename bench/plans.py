"""Shared by the scenarios: running a plan to its end, and the hand-written baseline workflow."""

from __future__ import annotations

import asyncio
import time

from temporalio.service import RPCError

from bench.baseline import BASELINE_QUEUE, BaselineBatch, BaselineBatchesWorkflow, BaselineInput
from bench.harness import BenchStack, new_raw_name
from taskplan.models.plan import PlanQuery, PlanSource, PlanStatus, TaskPlan
from taskplan.names import minion_task_queue

NOOP = "NoOpTask"
NOOP_QUEUE = minion_task_queue("minion_untagged", NOOP)


async def run_plan(stack: BenchStack, table: str, task_type: str, configs: dict[str, str]) -> TaskPlan:
    plan_id = await stack.plans.starter.start_plan(table, task_type, PlanSource.ADHOC_CONFIG, configs)
    while True:
        try:
            plan = await stack.plans.reader.get_plan(plan_id, PlanQuery(batch_limit=1000))
        except RPCError:  # a query that timed out on a starved controller: the timing is the plan's own
            await asyncio.sleep(0.5)
            continue
        if not plan.status.is_active:
            if plan.status != PlanStatus.COMPLETED:
                raise RuntimeError(f"plan {plan_id} ended {plan.status}: {plan.status_message}")
            return plan
        await asyncio.sleep(0.2)


def plan_seconds(plan: TaskPlan) -> float:
    assert plan.finished_at_ms is not None
    return (plan.finished_at_ms - plan.created_at_ms) / 1000


async def run_baseline(
    stack: BenchStack, table: str, batches: int, per_batch: int
) -> tuple[float, list[BaselineBatch]]:
    started = time.monotonic()
    result = await stack.client.execute_workflow(
        BaselineBatchesWorkflow.run,
        BaselineInput(
            num_batches=batches,
            subtasks_per_batch=per_batch,
            task_queue=NOOP_QUEUE,
            table_name_with_type=table,
        ),
        id=new_raw_name("baseline-"),
        task_queue=BASELINE_QUEUE,
    )
    return time.monotonic() - started, result
