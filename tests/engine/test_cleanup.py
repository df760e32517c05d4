"""The cleanup sweep: plans of tables gone from the catalog are removed; ended plans expire."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from taskplan.catalog import Catalog
from taskplan.cleanup import PlanJanitor
from taskplan.models.plan import PlanSource
from taskplan.names import plan_workflow_id
from taskplan.plans import PlanServices
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.engine import add_table, eventually


async def gone(client: Client, workflow_id: str) -> None:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return
    raise AssertionError(f"{workflow_id} still exists")


async def test_plans_of_a_table_removed_by_hand_are_reaped(
    plans: PlanServices, tables: Catalog, engine: Client
) -> None:
    table = add_table(tables, f"orph{uuid.uuid4().hex[:8]}_OFFLINE")
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "20", "sleepMs": "500"}
    )

    async def running() -> None:
        assert (await plans.reader.get_plan(plan_id)).batches

    await eventually(running)
    await asyncio.to_thread(tables.delete_table, table)  # by hand: no API, the plan keeps running
    janitor = PlanJanitor(engine, plans.remover, tables, interval_s=1, retention_s=10**9)

    async def reaped() -> None:
        report = await janitor.sweep_once()
        assert report.orphans.get(table, 0) >= 2  # the plan and its batch(es)

    await eventually(reaped, timeout=30)
    plan = await engine.get_workflow_handle(plan_workflow_id(table, COUNTING)).describe()
    assert plan.status == WorkflowExecutionStatus.TERMINATED  # stopped at once
    # Deletion is asynchronous in Temporal (about 30 s on the dev server).
    await eventually(lambda: gone(engine, plan_workflow_id(table, COUNTING)), timeout=90, interval=2)


async def test_ended_plans_expire_after_the_retention(
    plans: PlanServices, tables: Catalog, engine: Client
) -> None:
    done_table = add_table(tables, f"old{uuid.uuid4().hex[:8]}_OFFLINE")
    done = await plans.starter.start_plan(done_table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "1"})
    await wait_for_end(plans.reader, done)
    live_table = add_table(tables, f"live{uuid.uuid4().hex[:8]}_OFFLINE")
    live = await plans.starter.start_plan(
        live_table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "30", "sleepMs": "300"}
    )
    await asyncio.sleep(1.5)  # visibility records the first plan's close time
    janitor = PlanJanitor(engine, plans.remover, tables, interval_s=1, retention_s=0)

    async def expired() -> None:
        report = await janitor.sweep_once()
        assert report.expired.get(done_table, 0) >= 2

    await eventually(expired, timeout=30)
    assert (await plans.reader.get_plan(live)).status.is_active  # a running plan is not touched
    await plans.aborter.abort_plan(live)
