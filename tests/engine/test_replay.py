"""Determinism guard: real histories (abort, continue-as-new, retries, failures) replay without error.

The workflows run unsandboxed for speed, so this test is what catches non-deterministic code."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from taskplan.service import TaskPlanService
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.engine import TEST_OPTIONS, eventually
from workflows.batch import BatchWorkflow
from workflows.models import PlanSource
from workflows.task_plan import TaskPlanWorkflow


async def test_plan_and_batch_histories_replay(engine: Client, table: str) -> None:
    service = TaskPlanService(engine, TEST_OPTIONS.model_copy(update={"max_batches_per_run": 2}))
    plan_id = await service.start_plan(
        table,
        COUNTING,
        PlanSource.ADHOC_CONFIG,
        {
            "numBatches": "30",
            "subtasksPerBatch": "3",
            "failAttempts": "1",
            "failingBatch": "1",
            "sleepMs": "100",
        },
    )

    async def three_batches() -> None:
        assert (await service.get_plan(plan_id)).num_batches >= 4

    await eventually(three_batches, timeout=60)
    await service.abort_plan(plan_id, "replay test")
    await wait_for_end(service, plan_id)

    legacy = await service.run_one_shot("TestLegacyTask", [table], {"subtasksPerBatch": "3"})
    await engine.get_workflow_handle(legacy).result()

    histories = [
        await engine.get_workflow_handle(e.id, run_id=e.run_id).fetch_history()
        async for e in engine.list_workflows(f"TaskPlanId = '{plan_id}' OR WorkflowId = '{legacy}'")
    ]
    workflow_types = {
        h.events[0].workflow_execution_started_event_attributes.workflow_type.name for h in histories
    }
    assert workflow_types == {"TaskPlan", "TaskBatch"}
    assert len(histories) >= 3
    replayer = Replayer(workflows=[TaskPlanWorkflow, BatchWorkflow], data_converter=pydantic_data_converter)
    for history in histories:
        await replayer.replay_workflow(history)  # raises on any non-determinism


HISTORIES = Path(__file__).parent / "histories"


async def test_histories_of_plans_that_ran_batches_as_child_workflows_still_replay() -> None:
    """Plans started before "inline-batches" (commit c02ffbb: a TaskBatch child per batch, an abort,
    continue-as-new, a retried subtask) replay with today's code: a running one can carry on."""
    files = sorted((HISTORIES / "child-batches").glob("*.json"))
    assert {f.name.split("-")[0] for f in files} == {"TaskPlan", "TaskBatch"}
    replayer = Replayer(workflows=[TaskPlanWorkflow, BatchWorkflow], data_converter=pydantic_data_converter)
    for file in files:
        history = WorkflowHistory.from_json(file.stem, file.read_text())
        await replayer.replay_workflow(history)


async def test_histories_of_plans_from_before_final_snapshots_still_replay() -> None:
    """Plans started before "final-snapshot" (commit 1e1e05d: batches inline, no final snapshot recorded as
    the plan ends), over continue-as-new runs: completed, aborted through the API, cancelled through
    Temporal, failed on the failure threshold, aborted by the generator."""
    files = sorted((HISTORIES / "inline-batches").glob("*.json"))
    assert {f.name.split("-")[1] for f in files} == {
        "completed",
        "aborted",
        "cancelled",
        "threshold",
        "generator",
    }
    replayer = Replayer(workflows=[TaskPlanWorkflow, BatchWorkflow], data_converter=pydantic_data_converter)
    for file in files:
        history = WorkflowHistory.from_json(file.stem, file.read_text())
        await replayer.replay_workflow(history)
