"""A plan's failure thresholds, set by its task configs (maxFailedBatches, maxFailedSubtasksPerBatch) over the
properties' defaults: tolerated at the threshold, breached one past it."""

from __future__ import annotations

import pytest

from taskplan.bootstrap import plan_options
from taskplan.models.plan import PlanSource, PlanStatus
from taskplan.models.task import SubtaskState, TaskState
from taskplan.plan_configs import PlanConfigError, with_thresholds
from taskplan.plans import PlanServices
from taskplan.settings import Settings
from tests.engine.test_plans import COUNTING, wait_for_end

ALL_FAIL = {"numBatches": "3", "fatal": "true"}  # three batches whose two subtasks all fail


@pytest.mark.parametrize(("tolerated", "status"), [("3", PlanStatus.COMPLETED), ("2", PlanStatus.FAILED)])
async def test_max_failed_batches_from_the_task_configs(
    plans: PlanServices, table: str, tolerated: str, status: PlanStatus
) -> None:
    assert plans.starter.options.max_failed_batches == 3  # the default: the task config decides here
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {**ALL_FAIL, "maxFailedBatches": tolerated}
    )
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == status, plan.status_message
    assert plan.num_batches == plan.num_failed_batches == 3
    assert plan.properties["maxFailedBatches"] == tolerated
    if status == PlanStatus.FAILED:
        assert plan.status_message == ("failure threshold breached: 3 batches failed (the plan tolerates 2)")


@pytest.mark.parametrize(("tolerated", "state"), [("3", TaskState.COMPLETED), ("2", TaskState.FAILED)])
async def test_max_failed_subtasks_per_batch_from_the_task_configs(
    plans: PlanServices, table: str, tolerated: str, state: TaskState
) -> None:
    assert plans.starter.options.max_failed_subtasks_per_batch == 0
    configs = {"numBatches": "1", "subtasksPerBatch": "3", "failingBatch": "0"}  # its 3 subtasks fail
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {**configs, "maxFailedSubtasksPerBatch": tolerated}
    )
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.COMPLETED  # one failed batch is tolerated either way
    assert plan.properties["maxFailedSubtasksPerBatch"] == tolerated
    batch = plan.batches[0]
    assert (batch.task_state, batch.num_failed_subtasks) == (state, 3)
    details = await plans.task_reader.batch_details(batch.submitted_task_name)
    assert [s.state for s in details.subtasks] == [SubtaskState.TASK_ABORTED] * 3
    if state == TaskState.FAILED:
        assert details.status_message == "3 of 3 subtasks failed (the batch tolerates 2)"


async def test_a_plan_shows_the_thresholds_it_runs_with(plans: PlanServices, table: str) -> None:
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "1"})
    await wait_for_end(plans.reader, plan_id)
    properties = (await plans.reader.get_plan(plan_id)).properties
    assert properties == {"numBatches": "1", "maxFailedBatches": "3", "maxFailedSubtasksPerBatch": "0"}


@pytest.mark.parametrize("value", ["-1", "1.5", "x", "", "2147483648", "٣", "1_0"])
async def test_a_plan_with_a_bad_threshold_is_not_started(
    plans: PlanServices, table: str, value: str
) -> None:
    for key in ("maxFailedBatches", "maxFailedSubtasksPerBatch"):
        with pytest.raises(PlanConfigError, match=key):
            await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, {key: value})
    assert await plans.reader.list_plan_ids(table, COUNTING) == []


def test_the_properties_are_the_defaults() -> None:
    settings = Settings.model_validate(
        {"taskplan.plan.maxFailedBatches": "5", "taskplan.batch.maxFailedSubtasksPerBatch": "2"}
    )
    defaults = plan_options(settings)
    properties, options = with_thresholds({"numBatches": "1"}, defaults)
    assert (options.max_failed_batches, options.max_failed_subtasks_per_batch) == (5, 2)
    assert properties == {"numBatches": "1", "maxFailedBatches": "5", "maxFailedSubtasksPerBatch": "2"}
    properties, options = with_thresholds({"maxFailedSubtasksPerBatch": "0"}, defaults)
    assert (options.max_failed_batches, options.max_failed_subtasks_per_batch) == (5, 0)
    assert options.heartbeat_timeout_s == defaults.heartbeat_timeout_s  # the rest as the defaults
