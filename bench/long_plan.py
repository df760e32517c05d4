"""Scenario 5: a plan of 20,000 batches: history events per run, controller memory, reading the plan.
`python -m bench.long_plan [--full]`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio.client import WorkflowHandle

from bench.harness import BenchStack, Report, new_raw_name, rss_mb
from bench.plans import NOOP, plan_seconds
from taskplan.models.plan import PlanQuery, PlanSource


async def long_plan(stack: BenchStack, report: Report, full: bool) -> None:
    batches = 20_000 if full else 300
    stack.start_minions(1)
    table = stack.add_table(new_raw_name("long"))
    plan_id = await stack.plans.starter.start_plan(
        table, NOOP, PlanSource.ADHOC_CONFIG, {"numBatches": str(batches)}
    )
    memory: list[float] = []
    while True:
        plan = await stack.plans.reader.get_plan(plan_id, PlanQuery(batch_limit=0))
        memory.append(rss_mb())
        if not plan.status.is_active:
            break
        await asyncio.sleep(2)
    runs = [
        e
        async for e in stack.client.list_workflows(f"WorkflowType = 'TaskPlan' AND TaskPlanId = '{plan_id}'")
    ]
    lengths = []
    for run in runs:
        handle: WorkflowHandle[Any, Any] = stack.client.get_workflow_handle(run.id, run_id=run.run_id)
        lengths.append((await handle.describe()).raw_description.workflow_execution_info.history_length)
    async with stack.api() as (http, _):
        t0 = time.monotonic()
        response = await http.get(f"/tasks/taskPlans/{plan_id}")
        get_ms = (time.monotonic() - t0) * 1000
    body = response.json()
    report.add(
        "5 long plan",
        f"{batches} batches: duration, runs (continue-as-new)",
        f"{plan_seconds(plan):.0f} s, {len(runs)} runs",
    )
    report.add(
        "5 long plan",
        "history events per run (max)",
        f"{max(lengths)}",
        "bounded (< 10,240)",
        max(lengths) < 10_240,
    )
    report.add(
        "5 long plan",
        "controller peak memory after 10% / at the end",
        f"{memory[max(0, len(memory) // 10)]:.0f} / {memory[-1]:.0f} MB",
    )
    report.add(
        "5 long plan",
        "GET /tasks/taskPlans/{planId}: time, size, batch records",
        f"{get_ms:.0f} ms, {len(response.content) // 1024} KB, "
        f"{len(body['batches'])} of {body['numBatches']}",
    )
    report.data["long_plan"] = {"history_lengths": lengths, "memory_mb": memory}
    stack.stop_minions()


if __name__ == "__main__":
    from bench.run import main

    main(only="long")
