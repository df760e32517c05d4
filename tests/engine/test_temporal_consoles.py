"""The Temporal Web UI and CLI as consoles of a plan: how its workflow closes (Failed, Canceled, Completed as
the plan ended), what `temporal workflow describe` and the `__temporal_workflow_metadata` query show of its
progress, the summaries of its subtask activities and waits, and the `abort` Update through the real CLI."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from taskplan.binaries import temporal_cli
from taskplan.catalog import Catalog
from taskplan.gate import QueueState, set_queue_state
from taskplan.models.errors import PLAN_ENDED, PLAN_FAILED_THRESHOLD
from taskplan.models.plan import PlanSource, PlanStatus, TaskPlan
from taskplan.names import SearchAttributes, parse_plan_id, plan_workflow_id
from taskplan.plans import PlanServices
from taskplan.registry import build_registry
from taskplan.settings import Settings
from taskplan.worker import WorkerOptions, build_workers, run_workers
from taskplan.workflows.models import PlanState
from taskplan.workflows.plan_details import current_details, subtask_summary
from taskplan.workflows.task_plan import TaskPlanWorkflow
from tests.engine.test_operator_signals import running_batch
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.engine import TEST_OPTIONS, add_table, eventually
from tests.support.tasktypes import ALL_SPECS

SLOW = {"numBatches": "50", "subtasksPerBatch": "2", "sleepMs": "1500"}


async def temporal(env: WorkflowEnvironment, *args: str) -> tuple[int, str]:
    """The `temporal` CLI binary, as an operator runs it: its exit code and its output (stdout + stderr)."""
    proc = await asyncio.create_subprocess_exec(
        temporal_cli(),
        *args,
        "--address",
        env.client.service_client.config.target_host,
        "--namespace",
        env.client.namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def replays(engine: Client, workflow_id: str) -> None:
    """Today's code replays the history it just wrote (the new endings, summaries and Updates included)."""
    history = await engine.get_workflow_handle(workflow_id).fetch_history()
    replayer = Replayer(workflows=[TaskPlanWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


async def describe_json(env: WorkflowEnvironment, workflow_id: str) -> dict[str, Any]:
    code, out = await temporal(env, "workflow", "describe", "--workflow-id", workflow_id, "--output", "json")
    assert code == 0, out
    described: dict[str, Any] = json.loads(out)
    return described


async def test_a_failed_plan_fails_its_workflow_with_the_plan(
    engine: Client, temporal_env: WorkflowEnvironment, plans: PlanServices, table: str
) -> None:
    plan_id = await plans.starter.start_plan(
        table,
        COUNTING,
        PlanSource.ADHOC_CONFIG,
        {"numBatches": "3", "fatal": "true", "maxFailedBatches": "1"},
    )
    await wait_for_end(plans.reader, plan_id)
    handle = engine.get_workflow_handle(plan_workflow_id(table, COUNTING))
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    assert cause.type == PLAN_FAILED_THRESHOLD
    assert "failure threshold breached: 2 batches failed" in cause.message
    carried = TaskPlan.model_validate(cause.details[0])
    assert (carried.plan_id, carried.status, carried.num_failed_batches) == (plan_id, PlanStatus.FAILED, 2)

    # Read through the client side (the REST API's path): the plan, from the failure, no query needed.
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.FAILED and len(plan.batches) == 2
    # The operator's filter in the Web UI and the CLI finds it by Temporal's own status.
    code, out = await temporal(
        temporal_env,
        "workflow",
        "list",
        "--query",
        f"ExecutionStatus = 'Failed' AND TaskPlanId = '{plan_id}'",
    )
    assert code == 0 and "Failed" in out, out
    # Its current details say so (what the Web UI shows of a closed workflow: the metadata query, replayed).
    metadata = await handle.query("__temporal_workflow_metadata")
    details = metadata["currentDetails"] if isinstance(metadata, dict) else metadata.current_details
    assert "**Status:** FAILED" in details and "**Last error:**" in details, details
    await replays(engine, plan_workflow_id(table, COUNTING))


async def test_a_temporal_cancel_ends_the_workflow_canceled(
    engine: Client, plans: PlanServices, table: str
) -> None:
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, SLOW)
    await running_batch(plans, plan_id)
    handle = engine.get_workflow_handle(plan_workflow_id(table, COUNTING))
    await handle.cancel()
    await wait_for_end(plans.reader, plan_id)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.CANCELLED
    assert plan.status_message == "aborted: cancelled through Temporal"
    await replays(engine, plan_workflow_id(table, COUNTING))


async def test_a_completed_plan_completes(engine: Client, plans: PlanServices, table: str) -> None:
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "2"})
    await wait_for_end(plans.reader, plan_id)
    handle = engine.get_workflow_handle(plan_workflow_id(table, COUNTING))
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert (await plans.reader.get_plan(plan_id)).status == PlanStatus.COMPLETED


async def test_progress_shows_in_describe_the_metadata_query_and_the_history(
    engine: Client, temporal_env: WorkflowEnvironment, plans: PlanServices, table: str
) -> None:
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, SLOW)
    workflow_id = plan_workflow_id(table, COUNTING)
    await running_batch(plans, plan_id, after=1)  # the second batch: one batch's inputs processed

    described = json.dumps(await describe_json(temporal_env, workflow_id))
    assert f"{COUNTING} plan for {table}" in described  # static summary
    assert "**Source:** ADHOC_CONFIG" in described and "sleepMs" in described  # static details: configs
    code, out = await temporal(temporal_env, "workflow", "metadata", "--workflow-id", workflow_id)
    assert code == 0, out
    assert "**Status:** ACTIVE" in out and "**Batch:** 1" in out and "IN_PROGRESS" in out, out
    assert "/ 100 items processed" in out, out

    handle = engine.get_workflow_handle(workflow_id)
    metadata = await handle.query("__temporal_workflow_metadata")
    details = metadata["currentDetails"] if isinstance(metadata, dict) else metadata.current_details
    assert "**Status:** ACTIVE" in details and "processed" in details, details
    assert "**Batches:**" in details

    # Each subtask activity carries a summary (what it works on, its name); each wait says why it waits.
    history = await handle.fetch_history()
    summaries = [
        e.user_metadata.summary.data.decode()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and e.HasField("user_metadata")
    ]
    assert summaries and all("subtask Task_" in s for s in summaries), summaries

    code, out = await temporal(
        temporal_env, "workflow", "update", "execute", "--workflow-id", workflow_id, "--name", "abort",
        "--input", '"maintenance"',
    )  # fmt: skip
    assert code == 0 and "ABORTING" in out and "aborting: maintenance" in out, out
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert plan.status == PlanStatus.CANCELLED and plan.status_message == "aborted: maintenance"

    # An ended plan: the Update is refused, saying so; and an unknown Update name is refused by name.
    code, out = await temporal(
        temporal_env, "workflow", "update", "execute", "--workflow-id", workflow_id, "--name", "abort"
    )
    assert code != 0 and "workflow execution already completed" in out, out
    await replays(engine, workflow_id)

    # A later plan of the same table and task type has the same workflow id: --run-id reaches only the
    # ended one (refused as above), and the new plan runs on.
    ended_run = (await handle.describe()).run_id
    later = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, SLOW)
    code, out = await temporal(
        temporal_env, "workflow", "update", "execute", "--workflow-id", workflow_id, "--run-id", ended_run,
        "--name", "abort",
    )  # fmt: skip
    assert code != 0 and "workflow execution already completed" in out, out
    assert (await plans.reader.get_plan(later, live=True)).status == PlanStatus.ACTIVE
    code, out = await temporal(
        temporal_env, "workflow", "update", "execute", "--workflow-id", workflow_id, "--name", "abort"
    )
    assert code == 0 and later in out and "ABORTING" in out, out
    await wait_for_end(plans.reader, later)


async def timer_summaries(engine: Client, workflow_id: str) -> list[str]:
    """The summaries of a workflow's timers: what the Web UI shows of a wait (its event history's Timer
    Started, and the timeline's timer bar)."""
    history = await engine.get_workflow_handle(workflow_id).fetch_history()
    return [
        json.loads(e.user_metadata.summary.data)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED and e.HasField("user_metadata")
    ]


async def test_each_wait_says_why_the_plan_waits(
    engine: Client, plans: PlanServices, tables: Catalog, table: str
) -> None:
    # Progression blocked: the task type's queue is stopped (a task type of its own, so no other test waits).
    blocked_type = "TestSingleAttemptTask"
    workflow_id = plan_workflow_id(table, blocked_type)
    set_queue_state(tables, blocked_type, QueueState.STOPPED)
    try:
        blocked = await plans.starter.start_plan(
            table, blocked_type, PlanSource.ADHOC_CONFIG, {"numBatches": "1"}
        )

        async def waits_blocked() -> None:
            summaries = await timer_summaries(engine, workflow_id)
            assert f"progression blocked: the task queue of {blocked_type} is stopped" in " ".join(
                summaries
            ), summaries

        await eventually(waits_blocked, timeout=30)
    finally:
        set_queue_state(tables, blocked_type, QueueState.IN_PROGRESS)
    await wait_for_end(plans.reader, blocked)

    # A failed generation: the backoff before the next attempt says so.
    retried = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "1", "failGenerations": "1"}
    )
    await wait_for_end(plans.reader, retried)
    assert (await plans.reader.get_plan(retried)).status == PlanStatus.COMPLETED
    summaries = await timer_summaries(engine, plan_workflow_id(table, COUNTING))
    assert "generation backoff after failed attempt 1" in summaries, summaries


async def test_the_abort_update_refuses_an_unknown_name_and_answers_without_input(
    temporal_env: WorkflowEnvironment, plans: PlanServices, table: str
) -> None:
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, SLOW)
    workflow_id = plan_workflow_id(table, COUNTING)
    await running_batch(plans, plan_id)
    code, out = await temporal(
        temporal_env, "workflow", "update", "execute", "--workflow-id", workflow_id, "--name", "abrot"
    )
    assert code != 0 and "update 'abrot' unknown: a task plan takes the update 'abort'" in out, out
    code, out = await temporal(
        temporal_env, "workflow", "update", "execute", "--workflow-id", workflow_id, "--name", "abort"
    )
    assert code == 0 and "ABORTING" in out, out
    code, out = await temporal(
        temporal_env, "workflow", "update", "execute", "--workflow-id", workflow_id, "--name", "abort"
    )
    assert code == 0 and "ABORTING" in out, out  # twice: the same answer

    async def ended() -> None:
        assert (await plans.reader.get_plan(plan_id)).status == PlanStatus.CANCELLED

    await eventually(ended, timeout=30)


def test_the_abort_update_validator_refuses_a_plan_that_ended_or_is_ending() -> None:
    """The window before the workflow closes (the plan records its end): the plan refuses the Update itself,
    saying so (once the workflow closed, Temporal answers for it: see the CLI test above)."""
    plan = TaskPlan(
        plan_id="t_OFFLINE__X__u",
        table_name_with_type="t_OFFLINE",
        task_type="X",
        status=PlanStatus.ACTIVE,
        source=PlanSource.ADHOC_CONFIG,
        status_message="batch 3 running",
    )
    running = TaskPlanWorkflow()
    running._state = PlanState(plan=plan)
    running.check_update("abort", [])  # an active plan takes it
    running._ending = True  # COMPLETED is being recorded
    with pytest.raises(
        ApplicationError, match=r"plan t_OFFLINE__X__u already ended \(ACTIVE: batch 3 running\)"
    ):
        running.check_update("abort", [])
    ended = TaskPlanWorkflow()
    ended._state = PlanState(
        plan=plan.model_copy(update={"status": PlanStatus.FAILED, "status_message": "boom"})
    )
    with pytest.raises(
        ApplicationError, match="already ended \\(FAILED: boom\\): nothing to abort"
    ) as refused:
        ended.check_update("abort", [])
    assert refused.value.type == PLAN_ENDED and refused.value.non_retryable


def test_summaries_and_details_are_one_line_or_markdown_of_the_plan() -> None:
    assert subtask_summary("Task_X_1_0", {"inputFileURI": "/in/a.csv", "segmentName": "s"}) == (
        "file /in/a.csv (Task_X_1_0)"
    )
    assert subtask_summary("Task_X_1_0", {"segmentName": "a,b,c"}) == "3 segments a..c (Task_X_1_0)"
    assert subtask_summary("Task_X_1_0", {"other": "x\ny"}) == "subtask Task_X_1_0"
    assert len(subtask_summary("T", {"segmentName": "s" * 500})) == 200
    plan = TaskPlan(
        plan_id="t_OFFLINE__X__u",
        table_name_with_type="t_OFFLINE",
        task_type="X",
        status=PlanStatus.ACTIVE,
        source=PlanSource.ADHOC_CONFIG,
        status_message="a `tick` and **bold**",
        inputs_to_process=40,
        inputs_processed=10,
        input_unit="segments",
    )
    text = current_details(
        plan, batch_state=None, batch_done=0, batch_failed=0, blocked_reason="switch off", last_error="e`x"
    )
    assert "**Progress:** 10 / 40 segments processed (25%)" in text
    assert "**Message:** `a 'tick' and **bold**`" in text  # inline code: shown as typed, never Markdown
    assert "**Blocked:** `switch off`" in text and "**Last error:** `e'x`" in text


async def test_ended_plans_read_without_a_worker(tmp_path: Path) -> None:
    """Failed, Canceled and Completed plans read as they ended once no worker runs (a query of a closed
    workflow would need one): on a dev server of its own, whose workers stop before the reads."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SearchAttributes.ALL,
        dev_server_log_level="error",
    )
    try:
        client = await Client.connect(
            env.client.service_client.config.target_host, data_converter=pydantic_data_converter
        )
        catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
        catalog.migrate()
        settings = Settings.model_validate({"taskplan.dataDir": str(tmp_path)})
        options = WorkerOptions(role="both", max_concurrent_subtasks=4, graceful_shutdown_seconds=1)
        workers = build_workers(
            client,
            settings,
            build_registry(ALL_SPECS, entry_points_group=None),
            catalog,
            options,
            catalog=catalog,
        )
        stop = asyncio.Event()
        running = asyncio.create_task(run_workers(workers, stop))
        plans = PlanServices.build(client, catalog, TEST_OPTIONS)
        failed, cancelled, completed = (
            add_table(catalog, f"r{n}{uuid.uuid4().hex[:6]}_OFFLINE") for n in range(3)
        )
        ids = {
            PlanStatus.FAILED: await plans.starter.start_plan(
                failed, COUNTING, PlanSource.ADHOC_CONFIG, {"fatal": "true", "maxFailedBatches": "0"}
            ),
            PlanStatus.CANCELLED: await plans.starter.start_plan(
                cancelled, COUNTING, PlanSource.ADHOC_CONFIG, SLOW
            ),
            PlanStatus.COMPLETED: await plans.starter.start_plan(
                completed, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "1"}
            ),
        }
        await running_batch(plans, ids[PlanStatus.CANCELLED])
        await client.get_workflow_handle(plan_workflow_id(cancelled, COUNTING)).cancel()
        for plan_id in ids.values():
            await wait_for_end(plans.reader, plan_id)
        stop.set()
        await running  # no worker from here on
        closed = {
            PlanStatus.FAILED: WorkflowExecutionStatus.FAILED,
            PlanStatus.CANCELLED: WorkflowExecutionStatus.CANCELED,
            PlanStatus.COMPLETED: WorkflowExecutionStatus.COMPLETED,
        }
        for status, plan_id in ids.items():
            table = parse_plan_id(plan_id)[0]
            described = await client.get_workflow_handle(plan_workflow_id(table, COUNTING)).describe()
            assert described.status == closed[status]
            plan = await asyncio.wait_for(plans.reader.get_plan(plan_id), timeout=10)
            assert plan.status == status, plan.status_message
        assert (await plans.reader.get_plan(ids[PlanStatus.FAILED])).batches  # the failure carries the plan
    finally:
        await env.shutdown()
