"""The plan's signals as operators send them, through the `temporal` CLI binary, whatever input they type.

No input, a bare string, a JSON object or any other payload must all act (or say in the plan's status message
why not): a signal the SDK cannot decode must never be dropped unseen."""

from __future__ import annotations

import asyncio
import logging

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from taskplan.binaries import temporal_cli
from taskplan.models.plan import PlanSource, PlanStatus
from taskplan.models.task import TaskState
from taskplan.names import plan_workflow_id
from taskplan.plans import PlanServices
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.engine import eventually

SLOW = {"numBatches": "50", "subtasksPerBatch": "1", "sleepMs": "1500"}


async def signal(env: WorkflowEnvironment, workflow_id: str, name: str, *args: str) -> None:
    """`temporal workflow signal --name <name> [args...]`, as an operator types it."""
    proc = await asyncio.create_subprocess_exec(
        temporal_cli(),
        "workflow",
        "signal",
        "--address",
        env.client.service_client.config.target_host,
        "--namespace",
        env.client.namespace,
        "--workflow-id",
        workflow_id,
        "--name",
        name,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out + err).decode()


async def running_batch(plans: PlanServices, plan_id: str, after: int = 0) -> str:
    """The name of the plan's running batch (the first one from batch sequence ``after``)."""

    async def found() -> str:
        plan = await plans.reader.get_plan(plan_id, live=True)
        assert plan.batches and plan.batches[-1].batch_sequence >= after
        assert plan.batches[-1].task_state == TaskState.IN_PROGRESS
        return plan.batches[-1].submitted_task_name

    return await eventually(found, timeout=30)


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ((), "aborted by request"),
        (("--input", '"maintenance"'), "maintenance"),
        (("--input", '{"reason":"x"}'), "x"),
        (("--input", "42"), "42"),
        (("--input", '{"why":"disk full"}'), '{"why":"disk full"}'),
        (("--input", '"first"', "--input", '"second"'), "first"),
        (("--input-meta", "encoding=binary/plain", "--input", "quoted nothing"), "quoted nothing"),
    ],
    ids=["no-input", "bare-string", "object", "number", "other-object", "two-inputs", "binary"],
)
async def test_abort_through_the_cli_aborts_whatever_the_input(
    temporal_env: WorkflowEnvironment,
    plans: PlanServices,
    table: str,
    inputs: tuple[str, ...],
    reason: str,
) -> None:
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, SLOW)
    await running_batch(plans, plan_id)
    await signal(temporal_env, plan_workflow_id(table, COUNTING), "abort", *inputs)

    async def aborting() -> None:
        plan = await plans.reader.get_plan(plan_id, live=True)
        assert plan.status in (PlanStatus.ABORTING, PlanStatus.CANCELLED)
        assert plan.status_message.endswith(reason), plan.status_message

    await eventually(aborting, timeout=15)
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert (plan.status, plan.status_message) == (PlanStatus.CANCELLED, f"aborted: {reason}")


async def test_an_abort_the_converter_cannot_decode_aborts_and_is_logged_with_the_plan_id(
    temporal_env: WorkflowEnvironment,
    plans: PlanServices,
    table: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, SLOW)
    await running_batch(plans, plan_id)
    caplog.set_level(logging.WARNING)
    await signal(
        temporal_env,
        plan_workflow_id(table, COUNTING),
        "abort",
        "--input-meta",
        "encoding=text/x-unknown",
        "--input",
        "power cut",
    )
    await wait_for_end(plans.reader, plan_id)
    plan = await plans.reader.get_plan(plan_id)
    assert (plan.status, plan.status_message) == (PlanStatus.CANCELLED, "aborted: power cut")
    logged = [r.getMessage() for r in caplog.records if plan_id in r.getMessage()]
    assert any("abort" in m and "text/x-unknown" in m for m in logged), logged


@pytest.mark.parametrize(
    "form", ["bare-string", "object", "no-input"], ids=["bare-string", "object", "no-input"]
)
async def test_stop_batch_through_the_cli_stops_the_running_batch(
    temporal_env: WorkflowEnvironment, plans: PlanServices, table: str, form: str
) -> None:
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "2", "sleepMs": "30000"}
    )
    name = await running_batch(plans, plan_id)
    inputs = {
        "bare-string": ("--input", f'"{name}"'),
        "object": ("--input", f'{{"taskName":"{name}"}}'),
        "no-input": (),
    }[form]
    await signal(temporal_env, plan_workflow_id(table, COUNTING), "stop_batch", *inputs)

    async def stopped() -> None:
        assert await plans.task_reader.task_state(name) == TaskState.STOPPED

    await eventually(stopped, timeout=30)
    second = await running_batch(plans, plan_id, after=1)  # the plan goes on
    assert second != name
    await plans.aborter.abort_plan(plan_id, "test over")
    await signal(temporal_env, plan_workflow_id(table, COUNTING), "stop_batch", "--input", f'"{second}"')
    await wait_for_end(plans.reader, plan_id)


async def test_stop_batch_for_another_batch_says_so_and_leaves_the_running_one(
    temporal_env: WorkflowEnvironment,
    engine: Client,
    plans: PlanServices,
    table: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "1", "sleepMs": "4000"}
    )
    name = await running_batch(plans, plan_id)
    caplog.set_level(logging.WARNING)
    await signal(temporal_env, plan_workflow_id(table, COUNTING), "stop_batch", "--input", '"Task_Other_1"')

    async def noted() -> None:
        plan = await plans.reader.get_plan(plan_id, live=True)
        assert "stop_batch Task_Other_1 ignored" in plan.status_message, plan.status_message
        assert name in plan.status_message

    await eventually(noted, timeout=15)
    assert any(plan_id in r.getMessage() and "Task_Other_1" in r.getMessage() for r in caplog.records)
    await wait_for_end(plans.reader, plan_id)
    assert await plans.task_reader.task_state(name) == TaskState.COMPLETED
    assert (await plans.reader.get_plan(plan_id)).status == PlanStatus.COMPLETED


async def test_a_signal_of_another_name_says_so_and_changes_nothing(
    temporal_env: WorkflowEnvironment, plans: PlanServices, table: str
) -> None:
    plan_id = await plans.starter.start_plan(
        table, COUNTING, PlanSource.ADHOC_CONFIG, {"numBatches": "1", "sleepMs": "3000"}
    )
    await running_batch(plans, plan_id)
    await signal(temporal_env, plan_workflow_id(table, COUNTING), "Abort", "--input", '"typo"')

    async def noted() -> None:
        plan = await plans.reader.get_plan(plan_id, live=True)
        assert (
            plan.status_message
            == "signal 'Abort' ignored: a task plan takes abort, stop_batch, pause or resume"
        )
        assert plan.status == PlanStatus.ACTIVE

    await eventually(noted, timeout=15)
    await wait_for_end(plans.reader, plan_id)
    assert (await plans.reader.get_plan(plan_id)).status == PlanStatus.COMPLETED
