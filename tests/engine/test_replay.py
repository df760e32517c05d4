"""Determinism guard: histories written by released code replay with today's code.

The workflows run unsandboxed for speed, and a running plan replays its history on every worker restart, so
these tests are what catch non-deterministic code and a change to the commands a workflow issues (a new
activity, timer or child, a renamed activity). ``tests/engine/histories/v<version>/`` holds the histories of
each release (see CHANGELOG.md), ``<WorkflowType>-<scenario>-<run>.json``, one file per run (a plan that
continued as new has several). Every release's histories keep replaying: a change to a workflow's commands
is guarded with ``workflow.patched(...)`` (README, Development), and a release that changes commands records
its own set beside the older ones.

Re-record the histories of the version in pyproject.toml (all scenarios, about a minute; run it alone)::

    TASKPLAN_RECORD_HISTORIES=1 .venv/bin/python -m pytest tests/engine/test_replay.py -k record

This overwrites that version's directory only; histories of a released version are not re-recorded.
"""

from __future__ import annotations

import asyncio
import os
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from taskplan.catalog import Catalog
from taskplan.gate import QueueState, set_queue_state
from taskplan.models.errors import TaskGenerationError
from taskplan.models.plan import PlanSource, PlanStatus, TaskPlan
from taskplan.models.table import TableConfig
from taskplan.names import CONTROLLER_TASK_QUEUE, plan_workflow_id
from taskplan.plans import PlanServices
from taskplan.workflows.batch import BatchWorkflow
from taskplan.workflows.cron_trigger import CronTriggerWorkflow
from taskplan.workflows.models import CronTriggerInput, PlanInput
from taskplan.workflows.task_plan import TaskPlanWorkflow
from taskplan.workflows.validation import ValidateTableConfigWorkflow
from tests.engine.test_batch_record_ends import SLOW_GENERATION, generating, new_table
from tests.engine.test_operator_signals import running_batch
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.engine import TEST_OPTIONS, add_table, eventually

WORKFLOWS = [TaskPlanWorkflow, BatchWorkflow, CronTriggerWorkflow, ValidateTableConfigWorkflow]
HISTORIES = Path(__file__).parent / "histories"
ROOT = Path(__file__).parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
RECORD = "TASKPLAN_RECORD_HISTORIES"
SLOW = {"numBatches": "50", "subtasksPerBatch": "1", "sleepMs": "1500"}
CRON = {"schedule": "0 0 2 * * ?", "enableTaskOrchestration": "true", "numBatches": "1"}

# The first release's scenarios, by the workflow type they record.
RELEASE_SCENARIOS = {
    "TaskPlan": {
        "completed",  # over three runs (continue-as-new), a subtask retried
        "aborted",  # through the API, a batch running
        "abort-bare-string",  # signal abort with a bare string
        "abort-during-generation",  # the batch being generated ends ABORTED
        "cancelled",  # `temporal workflow cancel`, a batch running
        "cancel-during-generation",
        "threshold",  # failed batches over maxFailedBatches
        "generator-abort",
        "generation-retried",  # two generation failures, backoff timers, then on
        "blocked",  # the gate said no (stopped task queue): timers until it said yes
        "stop-batch",  # one batch stopped, the plan goes on
        "signals",  # signals of another name, for another batch, undecodable, two inputs, an object
    },
    "TaskBatch": {"legacy", "legacy-generation-failed"},
    "CronTrigger": {"cron", "cron-failed"},
    "ValidateTableConfig": {"validate"},
}


def history_files() -> list[Path]:
    return sorted(HISTORIES.glob("v*/*.json"))


def read(file: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(file.stem, file.read_text())


@pytest.mark.parametrize("file", history_files(), ids=lambda f: f"{f.parent.name}/{f.stem}")
async def test_released_histories_replay(file: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(read(file))  # raises on any non-determinism


def test_the_first_release_has_a_history_of_every_scenario() -> None:
    files = sorted((HISTORIES / "v0.2.0").glob("*.json"))
    found: dict[str, set[str]] = {}
    for file in files:
        workflow_type, scenario = file.stem.split("-", 1)
        found.setdefault(workflow_type, set()).add(scenario.rsplit("-", 1)[0])
    assert found == RELEASE_SCENARIOS
    assert sum(f.stem.startswith("TaskPlan-completed-") for f in files) >= 2  # continued as new


@workflow.defn(name="TaskPlan", sandboxed=False)
class TaskPlanWithAnExtraTimer(TaskPlanWorkflow):
    """Today's plan with one more command (a timer) before its loop: what an unguarded change does."""

    @workflow.run
    async def run(self, request: PlanInput) -> TaskPlan:
        await workflow.sleep(0.01)
        return await super().run(request)


async def test_a_change_to_the_commands_does_not_replay() -> None:
    """The guard has teeth: a plan that issues one more command fails on every released history of it."""
    replayer = Replayer(workflows=[TaskPlanWithAnExtraTimer], data_converter=pydantic_data_converter)
    plans = [f for f in history_files() if f.stem.startswith("TaskPlan-")]
    assert plans
    for file in plans:
        with pytest.raises(workflow.NondeterminismError):
            await replayer.replay_workflow(read(file))


async def test_todays_plan_and_batch_histories_replay(engine: Client, tables: Catalog, table: str) -> None:
    """Histories just written by today's code (not only the recorded ones) replay."""
    service = PlanServices.build(engine, tables, TEST_OPTIONS.model_copy(update={"max_batches_per_run": 2}))
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

    async def four_batches() -> None:
        assert (await service.reader.get_plan(plan_id)).num_batches >= 4

    await eventually(four_batches, timeout=60)
    # A pause and a resume in the history: a worker that restarts (replays it) rebuilds the paused state,
    # else it would generate a batch the history does not have.
    await service.aborter.pause_plan(plan_id, "replay test pause")

    async def paused_between_batches() -> None:
        plan = await service.reader.get_plan(plan_id)
        assert plan.paused and plan.status_message == "paused: replay test pause", plan.status_message

    await eventually(paused_between_batches, timeout=60)
    await service.aborter.resume_plan(plan_id)
    await eventually(four_batches)
    await service.aborter.abort_plan(plan_id, "replay test")
    await wait_for_end(service.reader, plan_id)
    legacy = await service.one_shot.run_one_shot("TestLegacyTask", [table], {"subtasksPerBatch": "3"})
    await engine.get_workflow_handle(legacy).result()
    # A legacy task FAILING (patch batch-failing-state) while its other subtask runs, then FAILED.
    failing = await service.one_shot.run_one_shot(
        "TestLegacyTask", [table], {"subtasksPerBatch": "2", "fatalIndex": "0", "sleepMs": "500"}
    )
    await engine.get_workflow_handle(failing).result()
    marked = await engine.get_workflow_handle(failing).fetch_history()
    assert any(e.HasField("marker_recorded_event_attributes") for e in marked.events)

    histories = [
        await engine.get_workflow_handle(e.id, run_id=e.run_id).fetch_history()
        async for e in engine.list_workflows(
            f"TaskPlanId = '{plan_id}' OR WorkflowId = '{legacy}' OR WorkflowId = '{failing}'"
        )
    ]
    workflow_types = {
        h.events[0].workflow_execution_started_event_attributes.workflow_type.name for h in histories
    }
    assert workflow_types == {"TaskPlan", "TaskBatch"}
    assert len(histories) >= 3
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    for history in histories:
        await replayer.replay_workflow(history)


# ------------------------------------------------------------------------------------------ recording

Scenario = Callable[["Recording"], Awaitable[str]]  # runs one scenario, returns the visibility query


class Recording:
    """The session's engine and catalog, for the scenarios below."""

    def __init__(self, engine: Client, tables: Catalog) -> None:
        self.engine = engine
        self.tables = tables
        self.service = PlanServices.build(engine, tables, TEST_OPTIONS)

    async def plan(self, properties: dict[str, str], task_type: str = COUNTING) -> tuple[str, str]:
        """Start a plan on a table of its own; returns (table, plan id)."""
        table = new_table(self.tables)
        plan_id = await self.service.starter.start_plan(table, task_type, PlanSource.ADHOC_CONFIG, properties)
        return table, plan_id

    async def ended(self, plan_id: str, status: PlanStatus) -> str:
        await wait_for_end(self.service.reader, plan_id, timeout=120)
        plan = await self.service.reader.get_plan(plan_id)
        assert plan.status == status, plan.status_message
        return f"TaskPlanId = '{plan_id}'"


async def completed(r: Recording) -> str:
    service = PlanServices.build(
        r.engine, r.tables, TEST_OPTIONS.model_copy(update={"max_batches_per_run": 2})
    )
    table = new_table(r.tables)
    properties = {"numBatches": "5", "subtasksPerBatch": "2", "failAttempts": "1"}
    plan_id = await service.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, properties)
    return await r.ended(plan_id, PlanStatus.COMPLETED)


async def aborted(r: Recording) -> str:
    _, plan_id = await r.plan(SLOW)
    await running_batch(r.service, plan_id, after=1)
    await r.service.aborter.abort_plan(plan_id, "replay: aborted through the API")
    return await r.ended(plan_id, PlanStatus.CANCELLED)


async def abort_bare_string(r: Recording) -> str:
    table, plan_id = await r.plan(SLOW)
    await running_batch(r.service, plan_id)
    await r.engine.get_workflow_handle(plan_workflow_id(table, COUNTING)).signal("abort", "maintenance")
    return await r.ended(plan_id, PlanStatus.CANCELLED)


async def abort_during_generation(r: Recording) -> str:
    table, plan_id = await r.plan(SLOW_GENERATION)
    await generating(r.tables, table)
    await r.engine.get_workflow_handle(plan_workflow_id(table, COUNTING)).signal("abort", "maintenance")
    return await r.ended(plan_id, PlanStatus.CANCELLED)


async def cancelled(r: Recording) -> str:
    table, plan_id = await r.plan(SLOW)
    await running_batch(r.service, plan_id)
    await r.engine.get_workflow_handle(plan_workflow_id(table, COUNTING)).cancel()
    return await r.ended(plan_id, PlanStatus.CANCELLED)


async def cancel_during_generation(r: Recording) -> str:
    table, plan_id = await r.plan(SLOW_GENERATION)
    await generating(r.tables, table)
    await r.engine.get_workflow_handle(plan_workflow_id(table, COUNTING)).cancel()
    return await r.ended(plan_id, PlanStatus.CANCELLED)


async def threshold(r: Recording) -> str:
    _, plan_id = await r.plan({"numBatches": "20", "fatal": "true"})
    return await r.ended(plan_id, PlanStatus.FAILED)


async def generator_abort(r: Recording) -> str:
    _, plan_id = await r.plan({"numBatches": "5", "generatorAbortAt": "1"})
    return await r.ended(plan_id, PlanStatus.FAILED)


async def generation_retried(r: Recording) -> str:
    _, plan_id = await r.plan({"numBatches": "2", "failGenerations": "2"})
    return await r.ended(plan_id, PlanStatus.COMPLETED)


async def blocked(r: Recording) -> str:
    # A task type of its own: its stopped queue blocks no other scenario.
    task_type = "TestSingleAttemptTask"
    set_queue_state(r.tables, task_type, QueueState.STOPPED)
    try:
        _, plan_id = await r.plan({"numBatches": "2"}, task_type)

        async def waiting() -> None:
            plan = await r.service.reader.get_plan(plan_id, live=True)
            assert plan.status_message.startswith("progression blocked"), plan.status_message

        await eventually(waiting, timeout=30)
        await asyncio.sleep(2.5)  # a few more asks, a timer each
    finally:
        set_queue_state(r.tables, task_type, QueueState.IN_PROGRESS)
    return await r.ended(plan_id, PlanStatus.COMPLETED)


async def stop_batch(r: Recording) -> str:
    table, plan_id = await r.plan({"numBatches": "2", "subtasksPerBatch": "1", "sleepMs": "4000"})
    name = await running_batch(r.service, plan_id)
    await r.engine.get_workflow_handle(plan_workflow_id(table, COUNTING)).signal("stop_batch", name)
    return await r.ended(plan_id, PlanStatus.COMPLETED)


async def signals(r: Recording) -> str:
    table, plan_id = await r.plan({"numBatches": "3", "subtasksPerBatch": "1", "sleepMs": "3000"})
    handle = r.engine.get_workflow_handle(plan_workflow_id(table, COUNTING))
    first = await running_batch(r.service, plan_id)
    await handle.signal("Abort", "typo")
    await handle.signal("stop_batch", "Task_Other_1")
    await handle.signal("stop_batch")  # no input: the running batch
    second = await running_batch(r.service, plan_id, after=1)
    assert second != first
    unknown = RawValue(Payload(metadata={"encoding": b"text/x-unknown"}, data=b"power cut"))
    await handle.signal("abort", args=[unknown, "second"])
    await handle.signal("stop_batch", {"taskName": second})
    return await r.ended(plan_id, PlanStatus.CANCELLED)


async def legacy(r: Recording) -> str:
    table = new_table(r.tables)
    name = await r.service.one_shot.run_one_shot("TestLegacyTask", [table], {"subtasksPerBatch": "3"})
    await r.engine.get_workflow_handle(name).result()
    return f"WorkflowId = '{name}'"


async def legacy_generation_failed(r: Recording) -> str:
    table = new_table(r.tables)
    with pytest.raises(TaskGenerationError):
        await r.service.one_shot.run_one_shot("TestOrchestratedOnlyTask", [table], {})
    query = f"WorkflowType = 'TaskBatch' AND TaskPlanTable = '{table}' AND ExecutionStatus = 'Completed'"

    async def closed() -> None:
        assert [e async for e in r.engine.list_workflows(query)]

    await eventually(closed, timeout=30)
    return query


async def cron(r: Recording) -> str:
    table = add_table(r.tables, f"c{uuid.uuid4().hex[:12]}_OFFLINE", {COUNTING: CRON})
    workflow_id = f"cron-replay-{uuid.uuid4()}"
    result = await r.engine.execute_workflow(
        CronTriggerWorkflow.run,
        CronTriggerInput(table_name_with_type=table, task_type=COUNTING),
        id=workflow_id,
        task_queue=CONTROLLER_TASK_QUEUE,
    )
    await r.ended(result.task_plans[table], PlanStatus.COMPLETED)
    return f"WorkflowId = '{workflow_id}'"


async def cron_failed(r: Recording) -> str:
    configs = {"schedule": "0 0 2 * * ?", "forceLegacyTaskFlow": "true"}
    table = add_table(r.tables, f"c{uuid.uuid4().hex[:12]}_OFFLINE", {"TestOrchestratedOnlyTask": configs})
    workflow_id = f"cron-replay-{uuid.uuid4()}"
    with pytest.raises(WorkflowFailureError):
        await r.engine.execute_workflow(
            CronTriggerWorkflow.run,
            CronTriggerInput(table_name_with_type=table, task_type="TestOrchestratedOnlyTask"),
            id=workflow_id,
            task_queue=CONTROLLER_TASK_QUEUE,
        )
    return f"WorkflowId = '{workflow_id}'"


async def validate(r: Recording) -> str:
    config = TableConfig.model_validate(
        {
            "tableName": "replay",
            "tableType": "OFFLINE",
            "task": {"taskTypeConfigsMap": {COUNTING: {"maxFailedBatches": "-1"}, "NoSuchTask": {}}},
        }
    )
    workflow_id = f"validate-replay-{uuid.uuid4()}"
    problems = await r.engine.execute_workflow(
        ValidateTableConfigWorkflow.run, config, id=workflow_id, task_queue=CONTROLLER_TASK_QUEUE
    )
    assert len(problems) == 2, problems
    return f"WorkflowId = '{workflow_id}'"


SCENARIOS: dict[str, Scenario] = {
    "completed": completed,
    "aborted": aborted,
    "abort-bare-string": abort_bare_string,
    "abort-during-generation": abort_during_generation,
    "cancelled": cancelled,
    "cancel-during-generation": cancel_during_generation,
    "threshold": threshold,
    "generator-abort": generator_abort,
    "generation-retried": generation_retried,
    "blocked": blocked,
    "stop-batch": stop_batch,
    "signals": signals,
    "legacy": legacy,
    "legacy-generation-failed": legacy_generation_failed,
    "cron": cron,
    "cron-failed": cron_failed,
    "validate": validate,
}


@pytest.mark.skipif(
    not os.environ.get(RECORD),
    reason=f"a release step, not a check: it rewrites the recorded histories; run with {RECORD}=1",
)
async def test_record_histories(engine: Client, tables: Catalog) -> None:
    """Runs every scenario with today's code and writes tests/engine/histories/v<version>/ anew."""
    recording = Recording(engine, tables)
    queries = await asyncio.gather(*(scenario(recording) for scenario in SCENARIOS.values()))
    target = HISTORIES / f"v{VERSION}"
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.json"):
        old.unlink()
    for scenario, query in zip(SCENARIOS, queries, strict=True):
        runs = [e async for e in engine.list_workflows(query)]
        assert runs, scenario
        for index, run in enumerate(sorted(runs, key=lambda e: e.start_time)):
            history = await engine.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
            (target / f"{run.workflow_type}-{scenario}-{index}.json").write_text(history.to_json())
