"""An abort through the API (`DELETE /tasks/taskPlans/{planId}`: what the plan page's Abort and `taskplan
plans abort` call) ends the plan CANCELLED with its reason and its workflow Canceled in Temporal, whatever the
plan was doing: running a batch (which still finishes), paused, or waiting on a blocked progression."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from taskplan.catalog import Catalog
from taskplan.gate import QueueState, set_queue_state
from taskplan.models.plan import PlanSource
from taskplan.names import plan_workflow_id
from taskplan.plans import PlanServices
from tests.engine.test_operator_signals import running_batch
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.engine import eventually

REASON = "aborted: aborted through the API"  # DELETE takes no reason: the API's own


async def _plan(http: httpx.AsyncClient, plan_id: str) -> dict[str, Any]:
    answer = await http.get(f"/tasks/taskPlans/{plan_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _abort(http: httpx.AsyncClient, plan_id: str) -> dict[str, Any]:
    answer = await http.delete(f"/tasks/taskPlans/{plan_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    # As before: ABORTING at once (CANCELLED when the plan had nothing to wait for and ended first).
    assert body["status"] in ("ABORTING", "CANCELLED"), body
    return body


async def _closed_canceled(handle: WorkflowHandle[Any, Any]) -> None:
    """The workflow ends Canceled (the catalog has the plan's end a moment before the workflow closes)."""

    async def canceled() -> None:
        assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED

    await eventually(canceled, timeout=30)
    events = [e.event_type async for e in handle.fetch_history_events()]
    # The abort signal came first (its reason is the plan's), then the cancel request.
    signalled = events.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    assert signalled < events.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)


async def test_a_rest_abort_of_a_running_plan_ends_it_canceled_after_its_batch(
    http: httpx.AsyncClient, engine: Client, plans: PlanServices, table: str
) -> None:
    configs = {"numBatches": "50", "subtasksPerBatch": "2", "sleepMs": "1500"}
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, configs)
    name = await running_batch(plans, plan_id)
    answer = await _abort(http, plan_id)
    assert answer["status"] == "ABORTING" and answer["statusMessage"] == "aborting: aborted through the API"
    await wait_for_end(plans.reader, plan_id)
    await _closed_canceled(engine.get_workflow_handle(plan_workflow_id(table, COUNTING)))

    plan = await _plan(http, plan_id)
    assert (plan["status"], plan["statusMessage"]) == ("CANCELLED", REASON), plan
    # The running batch finished (its subtasks were not cancelled), and no new one started.
    assert plan["numBatches"] == answer["numBatches"]
    last = plan["batches"][-1]
    assert (last["submittedTaskName"], last["taskState"]) == (name, "COMPLETED"), last
    assert plan["report"]["subtasksCompleted"] == 2 * plan["numBatches"]
    # Its task record too; an abort of the ended plan changes nothing.
    assert (await http.get(f"/tasks/task/{name}/state")).json() == "COMPLETED"
    again = await http.delete(f"/tasks/taskPlans/{plan_id}")
    assert again.status_code == 200 and again.json()["status"] == "CANCELLED"


async def test_a_rest_abort_of_a_paused_plan_ends_it_canceled(
    http: httpx.AsyncClient, engine: Client, plans: PlanServices, table: str
) -> None:
    configs = {"numBatches": "50", "subtasksPerBatch": "1", "sleepMs": "300"}
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, configs)
    await running_batch(plans, plan_id)
    assert (await http.put(f"/tasks/taskPlans/{plan_id}/pause")).status_code == 200

    async def paused_between_batches() -> None:
        plan = await _plan(http, plan_id)
        assert plan["paused"] and plan["statusMessage"] == "paused: paused through the API", plan

    await eventually(paused_between_batches)
    await _abort(http, plan_id)
    await wait_for_end(plans.reader, plan_id)
    await _closed_canceled(engine.get_workflow_handle(plan_workflow_id(table, COUNTING)))
    plan = await _plan(http, plan_id)
    assert (plan["status"], plan["statusMessage"], plan["paused"]) == ("CANCELLED", REASON, False), plan


async def test_a_rest_abort_of_a_blocked_plan_ends_it_canceled(
    http: httpx.AsyncClient, engine: Client, plans: PlanServices, tables: Catalog, table: str
) -> None:
    task_type = "TestSingleAttemptTask"  # a task type of its own: its stopped queue blocks no other test
    set_queue_state(tables, task_type, QueueState.STOPPED)
    try:
        plan_id = await plans.starter.start_plan(
            table, task_type, PlanSource.ADHOC_CONFIG, {"numBatches": "2"}
        )

        async def blocked() -> None:
            plan = await _plan(http, plan_id)
            assert plan["statusMessage"].startswith("progression blocked"), plan

        await eventually(blocked, timeout=30)
        await _abort(http, plan_id)
        await wait_for_end(plans.reader, plan_id)
    finally:
        set_queue_state(tables, task_type, QueueState.IN_PROGRESS)
    await _closed_canceled(engine.get_workflow_handle(plan_workflow_id(table, task_type)))
    plan = await _plan(http, plan_id)
    assert (plan["status"], plan["statusMessage"], plan["numBatches"]) == ("CANCELLED", REASON, 0), plan
