"""The catalog's plan snapshots, which the active-plans listing reads: a plan's own end is recorded before its
workflow closes, and the controller's orchestration poll corrects what a plan cannot record itself."""

from __future__ import annotations

import time
import uuid

from temporalio.client import Client, WorkflowExecutionStatus

from taskplan.catalog import Catalog
from taskplan.models.plan import AbortRequest, PlanSource, PlanStatus, TaskPlan
from taskplan.names import plan_workflow_id
from taskplan.service import TaskPlanService
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.engine import TEST_OPTIONS, add_table, eventually
from workflows import signals

LONG = {"numBatches": "50", "sleepMs": "400"}
SLOW = {"numBatches": "50", "sleepMs": "8000"}  # no batch ends (and saves a snapshot) during the checks


def new_table(tables: Catalog) -> str:
    return add_table(tables, f"s{uuid.uuid4().hex[:12]}_OFFLINE")


def record_a_plan_temporal_never_had(tables: Catalog, table: str, *, started_ms_ago: int) -> str:
    plan_id = f"{table}__{COUNTING}__{uuid.uuid4()}"
    tables.tasks.record_plan_started(
        TaskPlan(
            plan_id=plan_id,
            table_name_with_type=table,
            task_type=COUNTING,
            status=PlanStatus.ACTIVE,
            source=PlanSource.ADHOC_CONFIG,
            created_at_ms=int(time.time() * 1000) - started_ms_ago,
        )
    )
    return plan_id


def snapshot(tables: Catalog, plan_id: str) -> TaskPlan:
    return tables.tasks.plan_snapshots([plan_id], 0)[plan_id]


async def test_a_plan_leaves_the_active_listing_before_its_workflow_closes(
    engine: Client, service: TaskPlanService, tables: Catalog, table: str
) -> None:
    """Whenever Temporal shows the plan closed, the listing no longer has it (its end is recorded first)."""
    plan_id = await service.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "4", "sleepMs": "50"}
    )
    handle = engine.get_workflow_handle(plan_workflow_id(table, COUNTING))
    checks = 0
    while True:
        closed = (await handle.describe()).status != WorkflowExecutionStatus.RUNNING
        listed = await service.list_active_plan_ids(table)
        checks += 1
        if closed:
            assert listed == []
            break
        assert listed in ([plan_id], [])  # [] only while its end is being recorded
    assert checks > 1
    final = await service.get_plan(plan_id)
    saved = snapshot(tables, plan_id)
    assert (saved.status, saved.status_message) == (PlanStatus.COMPLETED, final.status_message)
    assert saved.finished_at_ms == final.finished_at_ms and saved.num_batches == final.num_batches == 4
    assert saved.inputs_processed == final.inputs_processed
    assert [p.plan_id for p in await service.list_active_plans(table)] == []


async def test_the_orchestration_poll_corrects_what_a_plan_cannot_record(
    engine: Client, tables: Catalog
) -> None:
    service = TaskPlanService(engine, TEST_OPTIONS, tables.tasks, reconcile_grace_s=0)
    without_catalog = TaskPlanService(engine, TEST_OPTIONS)
    terminated, signalled, unrecorded, vanished = (new_table(tables) for _ in range(4))
    terminated_id = await service.start_plan(terminated, COUNTING, PlanSource.ADHOC_CONFIG, LONG)
    signalled_id = await service.start_plan(signalled, COUNTING, PlanSource.ADHOC_CONFIG, SLOW)
    unrecorded_id = await without_catalog.start_plan(unrecorded, COUNTING, PlanSource.ADHOC_CONFIG, SLOW)
    vanished_id = record_a_plan_temporal_never_had(tables, vanished, started_ms_ago=60_000)
    ours = {terminated_id, signalled_id, vanished_id}
    assert ours <= set(await service.list_active_plan_ids()) and unrecorded_id not in ours

    async def listed_without_catalog() -> None:  # a service without a catalog asks Temporal and the plans
        assert await without_catalog.list_active_plan_ids(unrecorded) == [unrecorded_id]
        assert [p.plan_id for p in await without_catalog.list_active_plans(unrecorded)] == [unrecorded_id]

    await eventually(listed_without_catalog)

    # What a plan cannot record: terminated, aborted through Temporal (not the API), started elsewhere.
    await engine.get_workflow_handle(plan_workflow_id(terminated, COUNTING)).terminate(
        reason="by an operator"
    )
    await engine.get_workflow_handle(plan_workflow_id(signalled, COUNTING)).signal(
        signals.ABORT, AbortRequest(reason="from the CLI")
    )

    async def corrected() -> None:
        await service.reconcile_plan_snapshots()
        listed = {p.plan_id: p for p in await service.list_active_plans()}
        assert terminated_id not in listed and vanished_id not in listed
        assert listed[signalled_id].status == PlanStatus.ABORTING
        assert listed[unrecorded_id].status == PlanStatus.ACTIVE

    await eventually(corrected, timeout=30)
    assert snapshot(tables, terminated_id).status == PlanStatus.FAILED
    assert snapshot(tables, terminated_id).status_message == "plan workflow terminated"
    assert (await service.get_plan(terminated_id)).status == PlanStatus.FAILED
    assert snapshot(tables, vanished_id).status == PlanStatus.FAILED
    assert snapshot(tables, vanished_id).status_message == "plan workflow not found in Temporal"

    # The aborted plan records its own end; the other one is aborted through the API.
    await service.abort_plan(unrecorded_id)
    for plan_id in (signalled_id, unrecorded_id):
        await wait_for_end(service, plan_id)
        assert snapshot(tables, plan_id).status == PlanStatus.CANCELLED
    assert not ({signalled_id, unrecorded_id} & set(await service.list_active_plan_ids()))


async def test_a_recent_snapshot_is_not_corrected_from_a_lagging_listing(
    engine: Client, tables: Catalog
) -> None:
    """A plan just started may not be in the visibility listing yet: its snapshot is left alone."""
    service = TaskPlanService(engine, TEST_OPTIONS, tables.tasks)  # the default grace: 10 s
    table = new_table(tables)
    plan_id = record_a_plan_temporal_never_had(tables, table, started_ms_ago=0)
    await service.reconcile_plan_snapshots()
    assert await service.list_active_plan_ids(table) == [plan_id]
    tables.tasks.delete_plans([plan_id])
