"""A batch record of an ended plan ends too, whoever ended the plan: no batch of a plan that is over stays
IN_PROGRESS in the task listings or counts against the in-flight limits of other plans.

The plan records its own batches' ends (an abort during generation included); the orchestration poll
(SnapshotReconciler.reconcile_plan_snapshots) ends those of a plan that could not: terminated or deleted in
Temporal, or whose end missed the catalog."""

from __future__ import annotations

import time
import uuid

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus

from taskplan.catalog import Catalog
from taskplan.catalog.tasks import TaskStore
from taskplan.models.plan import BatchEnd, PlanEnd, PlanSource, PlanStatus, TaskPlan
from taskplan.models.task import BatchResult, GeneratedBatch, SubtaskState, TaskState
from taskplan.names import plan_workflow_id, task_name
from taskplan.plans import PlanServices
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.engine import TEST_OPTIONS, add_table, eventually

# Generating the second batch takes 12 s: longer than the 8 s after which the SDK heartbeats the workflow task
# that runs the step's local activity, so the plan sees an abort (or a cancel) while the step still runs.
# (One that comes and goes within a workflow task is seen once the batch started.)
SLOW_GENERATION = {
    "numBatches": "50",
    "subtasksPerBatch": "2",
    "slowGenerationAt": "1",
    "generationSleepMs": "12000",
}
LONG_BATCH = {"numBatches": "5", "subtasksPerBatch": "2", "sleepMs": "20000"}


def new_table(tables: Catalog) -> str:
    return add_table(tables, f"b{uuid.uuid4().hex[:12]}_OFFLINE")


def records(tables: Catalog, table: str) -> dict[str, TaskState]:
    """The table's batch records (task name -> state)."""
    listed = tables.tasks.list_tasks(COUNTING, 10_000)
    return {name: state for name, (state, t) in listed.items() if t == table}


async def generating(tables: Catalog, table: str) -> int:
    """Wait until the plan ran a batch and is generating the next one; returns how many batches it ran.

    Read from the catalog: the step between batches records the last batch's end, then generates the next
    one and records it. (The plan cannot be asked: a query waits for its workflow task.)"""

    async def between_batches() -> int:
        states = list(records(tables, table).values())
        assert states and all(state == TaskState.COMPLETED for state in states)
        return len(states)

    return await eventually(between_batches, timeout=30, interval=0.05)


async def running_batch(plans: PlanServices, tables: Catalog, table: str, plan_id: str) -> str:
    async def running() -> str:
        plan = await plans.reader.get_plan(plan_id, live=True)
        assert plan.batches and plan.batches[-1].task_state == TaskState.IN_PROGRESS
        name = plan.batches[-1].submitted_task_name
        assert records(tables, table)[name] == TaskState.IN_PROGRESS
        return name

    return await eventually(running, timeout=30)


async def test_an_abort_during_generation_ends_the_batch_it_recorded(
    plans: PlanServices, tables: Catalog
) -> None:
    table = new_table(tables)
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, SLOW_GENERATION)
    ran = await generating(tables, table)
    await plans.aborter.abort_plan(plan_id, "during generation")
    await wait_for_end(plans.reader, plan_id)

    plan = await plans.reader.get_plan(plan_id)
    assert (plan.status, plan.status_message) == (PlanStatus.CANCELLED, "aborted: during generation")
    # The batch being generated was recorded as running: it ends ABORTED, in the plan and in its record.
    assert plan.num_batches == ran + 1 and plan.num_failed_batches == 0
    aborted = plan.batches[-1]
    assert (aborted.batch_sequence, aborted.task_state) == (ran, TaskState.ABORTED)
    assert aborted.finished_at_ms is not None
    assert all(b.task_state == TaskState.COMPLETED for b in plan.batches[:-1])
    name = aborted.submitted_task_name
    assert records(tables, table)[name] == TaskState.ABORTED
    assert TaskState.IN_PROGRESS not in records(tables, table).values()
    assert table not in tables.tasks.in_flight()
    details = await plans.task_reader.batch_details(name)
    assert details.task_state == TaskState.ABORTED
    assert details.status_message == "not started: the plan was aborted (during generation)"
    assert [s.state for s in details.subtasks] == [SubtaskState.STOPPED] * 2
    assert tables.tasks.plan_snapshots([plan_id], 0)[plan_id].num_batches == plan.num_batches


async def test_the_poll_ends_the_batch_of_a_terminated_plan_and_leaves_running_ones_alone(
    engine: Client, tables: Catalog
) -> None:
    plans = PlanServices.build(engine, tables, TEST_OPTIONS, reconcile_grace_s=0)
    terminated, running = new_table(tables), new_table(tables)
    terminated_id = await plans.starter.start_plan(terminated, COUNTING, PlanSource.ADHOC_CONFIG, LONG_BATCH)
    running_id = await plans.starter.start_plan(running, COUNTING, PlanSource.ADHOC_CONFIG, LONG_BATCH)
    name = await running_batch(plans, tables, terminated, terminated_id)
    other = await running_batch(plans, tables, running, running_id)

    await plans.reconciler.reconcile_plan_snapshots()  # both plans run: their batches are left alone
    assert records(tables, terminated)[name] == records(tables, running)[other] == TaskState.IN_PROGRESS
    assert {terminated, running} <= set(tables.tasks.in_flight())

    handle = engine.get_workflow_handle(plan_workflow_id(terminated, COUNTING))
    await handle.terminate(reason="by an operator")

    async def ended() -> None:
        await plans.reconciler.reconcile_plan_snapshots()
        assert records(tables, terminated)[name] == TaskState.ABORTED

    await eventually(ended, timeout=30)
    assert terminated not in tables.tasks.in_flight() and running in tables.tasks.in_flight()
    details = await plans.task_reader.batch_details(name)
    assert details.status_message == "its plan ended FAILED: plan workflow terminated"
    assert [s.state for s in details.subtasks] == [SubtaskState.STOPPED] * 2  # their outcome is unknown
    assert details.counts.unknown == 2 and details.counts.running == 0
    assert records(tables, running)[other] == TaskState.IN_PROGRESS

    await plans.aborter.abort_plan(running_id, "test over")
    await engine.get_workflow_handle(plan_workflow_id(running, COUNTING)).signal("stop_batch")
    await wait_for_end(plans.reader, running_id)
    assert records(tables, running)[other] == TaskState.STOPPED


async def test_the_poll_ends_the_batch_of_a_plan_deleted_in_temporal(engine: Client, tables: Catalog) -> None:
    plans = PlanServices.build(engine, tables, TEST_OPTIONS, reconcile_grace_s=0)
    table = new_table(tables)
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, LONG_BATCH)
    name = await running_batch(plans, tables, table, plan_id)
    await engine.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=engine.namespace,
            workflow_execution=WorkflowExecution(workflow_id=plan_workflow_id(table, COUNTING)),
        )
    )

    async def ended() -> None:
        await plans.reconciler.reconcile_plan_snapshots()
        assert records(tables, table)[name] == TaskState.ABORTED

    await eventually(ended, timeout=30)
    assert table not in tables.tasks.in_flight()
    details = await plans.task_reader.batch_details(name)
    assert details.status_message == "its plan ended FAILED: plan workflow not found in Temporal"


async def test_a_temporal_cancel_during_generation_ends_the_plan_and_leaves_no_batch_running(
    engine: Client, tables: Catalog
) -> None:
    """A cancel is an abort, also while the step between batches runs: the step finishes (patch
    plan-cancel-finishes-steps), the batch it generated and recorded ends ABORTED, recorded by the plan
    itself (no orchestration poll needed), and the workflow ends Canceled."""
    plans = PlanServices.build(engine, tables, TEST_OPTIONS)
    table = new_table(tables)
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, SLOW_GENERATION)
    ran = await generating(tables, table)
    handle = engine.get_workflow_handle(plan_workflow_id(table, COUNTING))
    await handle.cancel()
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert (plan.status, plan.status_message) == (PlanStatus.CANCELLED, "aborted: cancelled through Temporal")
    assert plan.num_batches == ran + 1
    assert plan.batches[-1].task_state == TaskState.ABORTED
    name = plan.batches[-1].submitted_task_name
    # Ended by the plan's own end, not by the poll (never run here).
    assert records(tables, table)[name] == TaskState.ABORTED
    assert TaskState.IN_PROGRESS not in records(tables, table).values()
    assert table not in tables.tasks.in_flight()
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED


# ---------------------------------------------------------------- the catalog's side, on both databases


def started(store: TaskStore, plan_id: str, table: str, sequence: int, submitted_ms: int) -> str:
    return store.record_started(
        task_name(COUNTING, submitted_ms),
        table_name=table,
        plan_id=plan_id,
        batch_sequence=sequence,
        submitted_ms=submitted_ms,
        batch=GeneratedBatch(subtasks=[{"i": "0"}, {"i": "1"}]),
    )


def test_a_plans_end_ends_every_batch_record_it_left_running(catalog: Catalog) -> None:
    store = catalog.tasks
    now = int(time.time() * 1000)
    plan_id, other_id = f"t_OFFLINE__{COUNTING}__a", f"u_OFFLINE__{COUNTING}__b"
    first = started(store, plan_id, "t_OFFLINE", 0, now)
    ended = BatchEnd(
        task_name=first,
        finished_at_ms=now + 5,
        result=BatchResult(
            task_name=first, task_state=TaskState.COMPLETED, num_subtasks=2, num_completed=2, num_failed=0
        ),
    )
    assert store.record_ended(ended)
    left = started(store, plan_id, "t_OFFLINE", 1, now + 10)
    others = started(store, other_id, "u_OFFLINE", 0, now + 20)
    assert store.plans_with_open_batches(now + 11) == [plan_id]
    assert store.plans_with_open_batches(now + 21) == sorted([plan_id, other_id])
    assert store.in_flight() == {"t_OFFLINE": 2, "u_OFFLINE": 2}

    plan = TaskPlan(
        plan_id=plan_id,
        table_name_with_type="t_OFFLINE",
        task_type=COUNTING,
        status=PlanStatus.CANCELLED,
        source=PlanSource.ADHOC_CONFIG,
        status_message="aborted: by hand",
        finished_at_ms=now + 30,
    )
    store.record_plan_end(PlanEnd(plan=plan))
    states = {name: stored.state for name in (first, left, others) if (stored := store.get(name))}
    assert states == {first: TaskState.COMPLETED, left: TaskState.ABORTED, others: TaskState.IN_PROGRESS}
    closed = store.get(left)
    assert closed is not None and closed.finished_ms == now + 30
    assert closed.message == "its plan ended CANCELLED: aborted: by hand"
    assert store.in_flight() == {"u_OFFLINE": 2}
    assert store.plans_with_open_batches(now + 21) == [other_id]

    assert store.end_open_batches(other_id, now + 40, "its plan is not in Temporal") == 1
    assert store.end_open_batches(other_id, now + 50, "again") == 0  # ended ones stay as they ended
    assert store.in_flight() == {} and store.plans_with_open_batches(now + 100) == []
    gone = store.get(others)
    assert gone is not None and (gone.state, gone.finished_ms) == (TaskState.ABORTED, now + 40)
