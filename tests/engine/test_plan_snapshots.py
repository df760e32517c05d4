"""The catalog's plan snapshots, which the active-plans listing reads: a plan's own end is recorded before its
workflow closes, and the controller's orchestration poll corrects what a plan cannot record itself."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import delete
from temporalio.client import Client, WorkflowExecutionStatus

from taskplan.catalog import Catalog
from taskplan.catalog.schema import plan_snapshots
from taskplan.models.plan import AbortRequest, PlanQuery, PlanSource, PlanStatus, TaskPlan
from taskplan.names import plan_workflow_id
from taskplan.plans import PlanServices
from taskplan.workflows import signals
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.engine import TEST_OPTIONS, add_table, eventually

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


def lose_the_snapshot(tables: Catalog, plan_id: str) -> None:
    """As if the catalog was out of reach as the plan started: Temporal runs it, no snapshot lists it."""
    with tables.engine.begin() as conn:
        conn.execute(delete(plan_snapshots).where(plan_snapshots.c.plan_id == plan_id))


def snapshot(tables: Catalog, plan_id: str) -> TaskPlan:
    return tables.tasks.plan_snapshots([plan_id], 0)[plan_id]


async def test_a_plan_leaves_the_active_listing_before_its_workflow_closes(
    engine: Client, plans: PlanServices, tables: Catalog, table: str
) -> None:
    """Whenever Temporal shows the plan closed, the listing no longer has it (its end is recorded first)."""
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "4", "sleepMs": "50"}
    )
    handle = engine.get_workflow_handle(plan_workflow_id(table, COUNTING))
    checks = 0
    while True:
        closed = (await handle.describe()).status != WorkflowExecutionStatus.RUNNING
        listed = await plans.reader.list_active_plan_ids(table)
        checks += 1
        if closed:
            assert listed == []
            break
        assert listed in ([plan_id], [])  # [] only while its end is being recorded
    assert checks > 1
    final = await plans.reader.get_plan(plan_id)
    saved = snapshot(tables, plan_id)
    assert (saved.status, saved.status_message) == (PlanStatus.COMPLETED, final.status_message)
    assert saved.finished_at_ms == final.finished_at_ms and saved.num_batches == final.num_batches == 4
    assert saved.inputs_processed == final.inputs_processed
    assert [p.plan_id for p in await plans.reader.list_active_plans(table)] == []


async def test_the_orchestration_poll_corrects_what_a_plan_cannot_record(
    engine: Client, tables: Catalog
) -> None:
    plans = PlanServices.build(engine, tables, TEST_OPTIONS, reconcile_grace_s=0)
    terminated, signalled, unrecorded, vanished = (new_table(tables) for _ in range(4))
    terminated_id = await plans.starter.start_plan(terminated, COUNTING, PlanSource.ADHOC_CONFIG, LONG)
    signalled_id = await plans.starter.start_plan(signalled, COUNTING, PlanSource.ADHOC_CONFIG, SLOW)
    unrecorded_id = await plans.starter.start_plan(unrecorded, COUNTING, PlanSource.ADHOC_CONFIG, SLOW)
    lose_the_snapshot(tables, unrecorded_id)
    vanished_id = record_a_plan_temporal_never_had(tables, vanished, started_ms_ago=60_000)
    ours = {terminated_id, signalled_id, vanished_id}
    assert ours <= set(await plans.reader.list_active_plan_ids()) and unrecorded_id not in ours

    assert await plans.reader.list_active_plan_ids(unrecorded) == []

    async def listed_by_temporal() -> None:  # a page of batches further back asks Temporal and the plans
        further_back = PlanQuery(batch_offset=0)
        assert [p.plan_id for p in await plans.reader.list_active_plans(unrecorded, query=further_back)] == [
            unrecorded_id
        ]

    await eventually(listed_by_temporal)

    # What a plan cannot record: terminated, aborted through Temporal (not the API), started elsewhere.
    await engine.get_workflow_handle(plan_workflow_id(terminated, COUNTING)).terminate(
        reason="by an operator"
    )
    await engine.get_workflow_handle(plan_workflow_id(signalled, COUNTING)).signal(
        signals.ABORT, AbortRequest(reason="from the CLI")
    )

    async def corrected() -> None:
        await plans.reconciler.reconcile_plan_snapshots()
        listed = {p.plan_id: p for p in await plans.reader.list_active_plans()}
        assert terminated_id not in listed and vanished_id not in listed
        assert listed[signalled_id].status == PlanStatus.ABORTING
        assert listed[unrecorded_id].status == PlanStatus.ACTIVE

    await eventually(corrected, timeout=30)
    assert snapshot(tables, terminated_id).status == PlanStatus.FAILED
    assert snapshot(tables, terminated_id).status_message == "plan workflow terminated"
    assert (await plans.reader.get_plan(terminated_id)).status == PlanStatus.FAILED
    assert snapshot(tables, vanished_id).status == PlanStatus.FAILED
    assert snapshot(tables, vanished_id).status_message == "plan workflow not found in Temporal"

    # The aborted plan records its own end; the other one is aborted through the API.
    await plans.aborter.abort_plan(unrecorded_id)
    for plan_id in (signalled_id, unrecorded_id):
        await wait_for_end(plans.reader, plan_id)
        assert snapshot(tables, plan_id).status == PlanStatus.CANCELLED
    assert not ({signalled_id, unrecorded_id} & set(await plans.reader.list_active_plan_ids()))


async def test_a_recent_snapshot_is_not_corrected_from_a_lagging_listing(
    engine: Client, tables: Catalog
) -> None:
    """A plan just started may not be in the visibility listing yet: its snapshot is left alone."""
    plans = PlanServices.build(engine, tables, TEST_OPTIONS)  # the default grace: 10 s
    table = new_table(tables)
    plan_id = record_a_plan_temporal_never_had(tables, table, started_ms_ago=0)
    await plans.reconciler.reconcile_plan_snapshots()
    assert await plans.reader.list_active_plan_ids(table) == [plan_id]
    tables.tasks.delete_plans([plan_id])
