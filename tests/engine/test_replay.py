"""Determinism guard: real histories (abort, continue-as-new, retries, failures) replay without error.

The workflows run unsandboxed for speed, so this test is what catches non-deterministic code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from taskplan.catalog import Catalog
from taskplan.models.plan import PlanSource, PlanStatus
from taskplan.names import plan_workflow_id
from taskplan.plans import PlanServices
from tests.engine.test_batch_record_ends import SLOW_GENERATION, generating, new_table
from tests.engine.test_operator_signals import running_batch
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.engine import TEST_OPTIONS, eventually
from workflows.batch import BatchWorkflow
from workflows.task_plan import TaskPlanWorkflow


async def test_plan_and_batch_histories_replay(engine: Client, tables: Catalog, table: str) -> None:
    options = TEST_OPTIONS.model_copy(update={"max_batches_per_run": 2})
    service = PlanServices.build(engine, tables, options)
    plan_id = await service.starter.start_plan(
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
        assert (await service.reader.get_plan(plan_id)).num_batches >= 4

    await eventually(three_batches, timeout=60)
    await service.aborter.abort_plan(plan_id, "replay test")
    await wait_for_end(service.reader, plan_id)

    legacy = await service.one_shot.run_one_shot("TestLegacyTask", [table], {"subtasksPerBatch": "3"})
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


async def test_a_history_from_before_raw_signals_with_an_abort_during_generation_still_replays() -> None:
    """Recorded with commit f9eb361 (typed signal handlers, no "cancel-during-generation"): an abort seen
    while the step between batches ran. Today's code ends that batch ABORTED, which changes the input of the
    plan's last local activity (record_plan_end), not its commands."""
    files = sorted((HISTORIES / "final-snapshot").glob("*.json"))
    assert [f.name for f in files] == ["TaskPlan-abort-during-generation-0.json"]
    replayer = Replayer(workflows=[TaskPlanWorkflow, BatchWorkflow], data_converter=pydantic_data_converter)
    for file in files:
        history = WorkflowHistory.from_json(file.stem, file.read_text())
        await replayer.replay_workflow(history)


SIGNALS_AND_BATCH_ENDS = HISTORIES / "signals-and-batch-ends"
RECORD = "TASKPLAN_RECORD_HISTORIES"


async def test_histories_of_raw_signals_and_aborts_during_generation_still_replay() -> None:
    """Plans recorded after signals were read raw (one dynamic handler) and "cancel-during-generation":
    operator signals with every kind of input (another name, a batch not running, no input, an undecodable
    payload, two inputs, an object), an abort and a Temporal cancel while the step between batches ran."""
    files = sorted(SIGNALS_AND_BATCH_ENDS.glob("*.json"))
    assert {f.stem.split("-", 1)[1].rsplit("-", 1)[0] for f in files} == {
        "signals",
        "abort-during-generation",
        "cancel-during-generation",
    }
    replayer = Replayer(workflows=[TaskPlanWorkflow, BatchWorkflow], data_converter=pydantic_data_converter)
    for file in files:
        history = WorkflowHistory.from_json(file.stem, file.read_text())
        await replayer.replay_workflow(history)


@pytest.mark.skipif(not os.environ.get(RECORD), reason=f"records the histories above: {RECORD}=1")
async def test_record_histories_of_raw_signals_and_aborts_during_generation(
    engine: Client, tables: Catalog
) -> None:
    """Writes tests/engine/histories/signals-and-batch-ends/ anew from today's code (run it alone)."""
    service = PlanServices.build(engine, tables, TEST_OPTIONS)
    plans: dict[str, str] = {}

    table = new_table(tables)
    three = {"numBatches": "3", "subtasksPerBatch": "1", "sleepMs": "3000"}
    plans["signals"] = plan_id = await service.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, three
    )
    handle = engine.get_workflow_handle(plan_workflow_id(table, COUNTING))
    first = await running_batch(service, plan_id)
    await handle.signal("Abort", "typo")
    await handle.signal("stop_batch", "Task_Other_1")
    await handle.signal("stop_batch")  # no input: the running batch
    second = await running_batch(service, plan_id, after=1)
    assert second != first
    unknown = RawValue(Payload(metadata={"encoding": b"text/x-unknown"}, data=b"power cut"))
    await handle.signal("abort", args=[unknown, "second"])
    await handle.signal("stop_batch", {"taskName": second})

    table = new_table(tables)
    plans["abort-during-generation"] = plan_id = await service.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, SLOW_GENERATION
    )
    await generating(tables, table)
    await engine.get_workflow_handle(plan_workflow_id(table, COUNTING)).signal("abort", "maintenance")

    table = new_table(tables)
    plans["cancel-during-generation"] = plan_id = await service.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, SLOW_GENERATION
    )
    await generating(tables, table)
    await engine.get_workflow_handle(plan_workflow_id(table, COUNTING)).cancel()

    SIGNALS_AND_BATCH_ENDS.mkdir(parents=True, exist_ok=True)
    for old in SIGNALS_AND_BATCH_ENDS.glob("*.json"):
        old.unlink()
    for scenario, plan_id in plans.items():
        await wait_for_end(service.reader, plan_id)
        assert (await service.reader.get_plan(plan_id)).status == PlanStatus.CANCELLED
        runs = [e async for e in engine.list_workflows(f"TaskPlanId = '{plan_id}'")]
        for index, run in enumerate(sorted(runs, key=lambda e: e.start_time)):
            history = await engine.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
            (SIGNALS_AND_BATCH_ENDS / f"TaskPlan-{scenario}-{index}.json").write_text(history.to_json())
