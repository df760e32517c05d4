"""The plan loop on a real dev server: chaining, abort, cancel, thresholds, retries, uniqueness."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from taskplan.catalog import Catalog
from taskplan.models.errors import PlanAlreadyActiveError
from taskplan.models.plan import PlanSource, PlanStatus
from taskplan.models.task import SubtaskState, TaskState
from taskplan.names import SearchAttributes, parse_task_name, plan_workflow_id
from taskplan.plans import PlanReader, PlanServices
from tests.support.engine import eventually

COUNTING = "TestCountingTask"


async def wait_for_end(reader: PlanReader, plan_id: str, timeout: float = 60.0) -> None:
    async def ended() -> None:
        assert not await reader.is_active(plan_id)

    await eventually(ended, timeout=timeout)


async def test_plan_chains_batches_until_no_more_work(plans: PlanServices, table: str) -> None:
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "6", "subtasksPerBatch": "3"}
    )
    assert plan_id.startswith(f"{table}__{COUNTING}__")
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)

    assert plan.status == PlanStatus.COMPLETED
    assert plan.source == PlanSource.ADHOC_CONFIG
    # with the failure thresholds it runs with (the defaults here)
    assert plan.properties == {
        "numBatches": "6",
        "subtasksPerBatch": "3",
        "maxFailedBatches": "3",
        "maxFailedSubtasksPerBatch": "0",
    }
    assert [b.batch_sequence for b in plan.batches] == list(range(6))
    assert all(b.task_state == TaskState.COMPLETED for b in plan.batches)
    assert all(b.num_subtasks == 3 for b in plan.batches)
    times = [b.submitted_at_ms for b in plan.batches]
    assert times == sorted(times)
    for batch in plan.batches:
        assert parse_task_name(batch.submitted_task_name)[0] == COUNTING
    assert (plan.inputs_to_process, plan.inputs_processed, plan.inputs_being_processed) == (18, 18, 0)
    assert plan.input_unit == "items"
    assert plan.custom_stats == {"batchesGenerated": "6"}
    assert plan.num_batches == 6
    assert "no more work" in plan.status_message

    details = await plans.task_reader.batch_details(plan.batches[2].submitted_task_name)
    assert details.plan_id == plan_id and details.batch_sequence == 2
    assert [s.state for s in details.subtasks] == [SubtaskState.COMPLETED] * 3
    assert details.totals["items"] == 3


async def test_status_search_attribute_follows_the_plan(
    plans: PlanServices, engine: Client, table: str
) -> None:
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.TABLE_CONFIG, {"numBatches": "1"})
    await wait_for_end(plans.reader, plan_id)
    desc = await engine.get_workflow_handle(plan_workflow_id(table, COUNTING)).describe()
    attrs = desc.typed_search_attributes
    assert attrs.get(SearchAttributes.PLAN_ID) == plan_id
    assert attrs.get(SearchAttributes.STATUS) == "COMPLETED"
    assert attrs.get(SearchAttributes.TABLE) == table
    assert attrs.get(SearchAttributes.SOURCE) == "TABLE_CONFIG"


async def test_abort_lets_the_running_batch_finish_and_starts_no_new_one(
    plans: PlanServices, table: str
) -> None:
    plan_id = await plans.starter.start_plan(
        table,
        COUNTING,
        PlanSource.ADHOC_CONFIG,
        {"numBatches": "50", "subtasksPerBatch": "2", "sleepMs": "1500"},
    )

    async def second_batch_running() -> None:
        plan = await plans.reader.get_plan(plan_id)
        assert plan.num_batches >= 2 and plan.batches[-1].task_state == TaskState.IN_PROGRESS

    await eventually(second_batch_running)
    aborted = await plans.aborter.abort_plan(plan_id, "operator says stop")
    assert aborted.status == PlanStatus.ABORTING
    assert await plans.reader.is_active(plan_id)
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.CANCELLED
    assert "operator says stop" in plan.status_message
    assert plan.num_batches == aborted.num_batches
    assert plan.batches[-1].task_state == TaskState.COMPLETED


async def test_temporal_cancel_is_an_abort(plans: PlanServices, engine: Client, table: str) -> None:
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "50", "sleepMs": "1000"}
    )

    async def batch_running() -> None:
        assert (await plans.reader.get_plan(plan_id)).num_batches >= 1

    await eventually(batch_running)
    await engine.get_workflow_handle(plan_workflow_id(table, COUNTING)).cancel()
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.CANCELLED
    assert "cancelled through Temporal" in plan.status_message
    assert plan.batches[-1].task_state == TaskState.COMPLETED


async def test_failed_batches_over_the_threshold_fail_the_plan(plans: PlanServices, table: str) -> None:
    # Every subtask fails fatally; the plan tolerates 3 failed batches, so the 4th ends it.
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "20", "fatal": "true"}
    )
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.FAILED
    assert "failure threshold" in plan.status_message
    assert plan.num_batches == 4 and plan.num_failed_batches == 4
    assert all(b.task_state == TaskState.FAILED for b in plan.batches)


async def test_flaky_subtask_succeeds_on_retry(plans: PlanServices, table: str) -> None:
    plan_id = await plans.starter.start_plan(
        table,
        COUNTING,
        PlanSource.ADHOC_CONFIG,
        {"numBatches": "1", "subtasksPerBatch": "2", "failAttempts": "1"},
    )
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.COMPLETED
    details = await plans.task_reader.batch_details(plan.batches[0].submitted_task_name)
    assert [(s.state, s.attempts) for s in details.subtasks] == [(SubtaskState.COMPLETED, 2)] * 2


async def test_fatal_subtask_is_not_retried(plans: PlanServices, table: str) -> None:
    plan_id = await plans.starter.start_plan(
        table,
        COUNTING,
        PlanSource.ADHOC_CONFIG,
        {"numBatches": "2", "failingBatch": "0", "subtasksPerBatch": "1"},
    )
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.COMPLETED  # one failed batch is tolerated
    assert [b.task_state for b in plan.batches] == [TaskState.FAILED, TaskState.COMPLETED]
    details = await plans.task_reader.batch_details(plan.batches[0].submitted_task_name)
    record = details.subtasks[0]
    assert (record.state, record.attempts) == (SubtaskState.TASK_ABORTED, 1)
    assert record.error is not None and "fatal failure injected" in record.error


async def test_twenty_concurrent_starts_make_exactly_one_plan(plans: PlanServices, table: str) -> None:
    results = await asyncio.gather(
        *(
            plans.starter.start_plan(
                table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "2", "sleepMs": "300"}
            )
            for _ in range(20)
        ),
        return_exceptions=True,
    )
    started = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, PlanAlreadyActiveError)]
    assert len(started) == 1 and len(refused) == 19
    assert all(r.active_plan_id == started[0] for r in refused)
    await wait_for_end(plans.reader, started[0])
    # Once it has ended, a new plan may start for the same table and task type.
    second = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "1"})
    assert second != started[0]
    await wait_for_end(plans.reader, second)
    assert await plans.reader.list_plan_ids(table, COUNTING) == [started[0], second]
    assert (await plans.reader.get_plan(started[0])).status == PlanStatus.COMPLETED


async def test_generation_errors_are_retried_with_backoff(plans: PlanServices, table: str) -> None:
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "1", "failGenerations": "2"}
    )

    async def shows_the_error() -> None:
        plan = await plans.reader.get_plan(plan_id)
        assert "generation failure injected" in plan.status_message or plan.status == PlanStatus.COMPLETED

    await eventually(shows_the_error)
    await wait_for_end(plans.reader, plan_id)
    assert (await plans.reader.get_plan(plan_id)).status == PlanStatus.COMPLETED


async def test_bad_config_from_the_generator_fails_the_plan_at_once(plans: PlanServices, table: str) -> None:
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, {"badConfig": "x"})
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.FAILED
    assert "badConfig is not allowed" in plan.status_message
    assert "after 1 attempt" in plan.status_message


async def test_generator_abort_fails_the_plan(plans: PlanServices, table: str) -> None:
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "5", "generatorAbortAt": "2"}
    )
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.FAILED
    assert plan.num_batches == 2
    assert "generator found the table in a bad state" in plan.status_message


async def test_unknown_plan_is_not_found(plans: PlanServices, table: str) -> None:
    from taskplan.models.errors import PlanNotFoundError

    with pytest.raises(PlanNotFoundError):
        await plans.reader.get_plan(f"{table}__{COUNTING}__00000000-0000-0000-0000-000000000000")


async def test_continue_as_new_keeps_plan_id_and_batch_history(
    engine: Client, tables: Catalog, table: str
) -> None:
    from tests.support.engine import TEST_OPTIONS

    plans = PlanServices.build(engine, tables, TEST_OPTIONS.model_copy(update={"max_batches_per_run": 2}))
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "7"})
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.COMPLETED
    assert plan.plan_id == plan_id
    assert [b.batch_sequence for b in plan.batches] == list(range(7))
    runs = [e async for e in engine.list_workflows(f"TaskPlanId = '{plan_id}' AND WorkflowType = 'TaskPlan'")]
    statuses = sorted(r.status.name for r in runs if r.status is not None)
    assert statuses.count(WorkflowExecutionStatus.CONTINUED_AS_NEW.name) == 3
    assert statuses.count(WorkflowExecutionStatus.COMPLETED.name) == 1
    assert await plans.reader.list_plan_ids(table, COUNTING) == [plan_id]


async def test_legacy_flow_runs_one_batch_without_a_plan(plans: PlanServices, table: str) -> None:
    name = await plans.one_shot.run_one_shot("TestLegacyTask", [table], {"subtasksPerBatch": "4"})
    assert parse_task_name(name)[0] == "TestLegacyTask"

    async def completed() -> None:
        details = await plans.task_reader.batch_details(name)
        assert details.task_state == TaskState.COMPLETED

    await eventually(completed)
    details = await plans.task_reader.batch_details(name)
    assert details.plan_id is None and details.num_subtasks == 4
    assert await plans.reader.list_plan_ids(table, "TestLegacyTask") == []


async def test_orchestration_only_type_refuses_the_legacy_flow(plans: PlanServices, table: str) -> None:
    from taskplan.models.errors import TaskGenerationError

    with pytest.raises(TaskGenerationError) as info:
        await plans.one_shot.run_one_shot("TestOrchestratedOnlyTask", [table], {})
    assert info.value.error_type == "TaskConfigError"
    assert "only runs orchestrated" in str(info.value)


async def test_running_batch_is_read_live_and_can_be_stopped_alone(
    plans: PlanServices, engine: Client, table: str
) -> None:
    """A plan runs its batches itself: the running one answers live through the task APIs' service, its
    task record says IN_PROGRESS, and the `stop_batch` signal stops it while the plan goes on."""
    plan_id = await plans.starter.start_plan(
        table,
        COUNTING,
        PlanSource.ADHOC_CONFIG,
        {"numBatches": "2", "subtasksPerBatch": "2", "sleepMs": "30000"},
    )

    async def first_batch_running() -> str:
        plan = await plans.reader.get_plan(plan_id)
        assert plan.batches, "no batch yet"
        name = plan.batches[0].submitted_task_name
        details = await plans.task_reader.batch_details(name)
        assert [s.state for s in details.subtasks] == [SubtaskState.RUNNING] * 2
        return name

    name = await eventually(first_batch_running, timeout=30)
    assert await plans.task_reader.task_state(name) == TaskState.IN_PROGRESS
    assert name in await plans.task_reader.list_tasks(COUNTING)
    assert (await plans.task_reader.task_counts(name)).running == 2

    plan_handle = engine.get_workflow_handle(plan_workflow_id(table, COUNTING))
    await plan_handle.signal("stop_batch", name)

    async def second_batch_started() -> None:
        plan = await plans.reader.get_plan(plan_id)
        assert plan.num_batches == 2
        assert plan.batches[0].task_state == TaskState.STOPPED

    await eventually(second_batch_started, timeout=30)
    stopped = await plans.task_reader.batch_details(name)
    assert stopped.task_state == TaskState.STOPPED
    assert [s.state for s in stopped.subtasks] == [SubtaskState.STOPPED] * 2
    assert await plans.task_reader.task_state(name) == TaskState.STOPPED
    await plans.aborter.abort_plan(plan_id, "test over")
    await plan_handle.signal(
        "stop_batch", (await plans.reader.get_plan(plan_id)).batches[1].submitted_task_name
    )
    await wait_for_end(plans.reader, plan_id)
    assert (await plans.reader.get_plan(plan_id)).status == PlanStatus.CANCELLED
