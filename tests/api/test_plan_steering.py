"""Pausing and resuming one plan through REST, and its report (counters summed over its batches), against a
real dev server and workers. Each batch continues the plan as new, so the pause is carried across runs."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx
from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.models.plan import PlanSource
from taskplan.plans import PlanServices
from tests.engine.test_plans import COUNTING, wait_for_end
from tests.support.engine import TEST_OPTIONS, eventually

BATCHES, PER_BATCH = 6, 2


async def _plan(http: httpx.AsyncClient, plan_id: str) -> dict[str, Any]:
    answer = await http.get(f"/tasks/taskPlans/{plan_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_pause_stops_new_batches_resume_completes_and_the_report_sums_them(
    http: httpx.AsyncClient, engine: Client, tables: Catalog, table: str
) -> None:
    plans = PlanServices.build(engine, tables, TEST_OPTIONS.model_copy(update={"max_batches_per_run": 1}))
    configs = {"numBatches": str(BATCHES), "subtasksPerBatch": str(PER_BATCH), "sleepMs": "400"}
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, configs)

    async def first_batch_running() -> None:
        assert (await _plan(http, plan_id))["numBatches"] >= 1

    await eventually(first_batch_running)
    paused = await http.put(f"/tasks/taskPlans/{plan_id}/pause", params={"reason": "disk maintenance"})
    assert paused.status_code == 200, paused.text
    body = paused.json()
    assert body["paused"] is True and body["pauseReason"] == "disk maintenance"
    assert "paused: disk maintenance" in body["statusMessage"] and body["status"] == "ACTIVE"

    async def batch_ended() -> dict[str, Any]:
        plan = await _plan(http, plan_id)
        assert all(b["taskState"] != "IN_PROGRESS" for b in plan["batches"]), plan["batches"]
        assert plan["statusMessage"] == "paused: disk maintenance"
        return plan

    at_pause = await eventually(batch_ended)
    page = (await http.get("/ui", params={"plan": plan_id})).text
    assert 'data-testid="resume"' in page and 'data-testid="paused">disk maintenance<' in page, page
    await asyncio.sleep(1.5)  # unpaused, 2 or 3 more batches would have started by now
    still = await _plan(http, plan_id)
    assert still["numBatches"] == at_pause["numBatches"] < BATCHES and still["paused"] is True
    done = still["numBatches"]
    # The report sums the ended batches' counters (the counting task type reports items: 1 per subtask).
    assert still["report"]["counters"]["items"] == done * PER_BATCH
    assert still["report"]["subtasksCompleted"] == done * PER_BATCH

    again = await http.put(f"/tasks/taskPlans/{plan_id}/resume")
    assert again.status_code == 200 and again.json()["paused"] is False
    assert not again.json()["statusMessage"].startswith("paused")  # "resumed: ...", or the next batch's
    await wait_for_end(plans.reader, plan_id)
    ended = await _plan(http, plan_id)
    assert ended["status"] == "COMPLETED" and ended["numBatches"] == BATCHES
    assert ended["report"]["counters"]["items"] == BATCHES * PER_BATCH
    assert ended["report"]["subtasksFailed"] == 0 and ended["paused"] is False

    for verb in ("pause", "resume"):
        refused = await http.put(f"/tasks/taskPlans/{plan_id}/{verb}")
        assert refused.status_code == 409, refused.text
        assert "COMPLETED" in refused.json()["error"] and "only an ACTIVE plan" in refused.json()["error"]
    unknown = f"{table}__{COUNTING}__{uuid.uuid4()}"
    missing = await http.put(f"/tasks/taskPlans/{unknown}/pause")
    assert missing.status_code == 404 and unknown in missing.json()["error"]


async def test_signals_pause_and_resume_take_any_input_and_resume_needs_a_pause(
    http: httpx.AsyncClient, engine: Client, plans: PlanServices, table: str
) -> None:
    configs = {"numBatches": "20", "subtasksPerBatch": "1", "sleepMs": "300"}
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, configs)
    refused = await http.put(f"/tasks/taskPlans/{plan_id}/resume")
    assert refused.status_code == 409 and "is not paused" in refused.json()["error"], refused.text
    handle = engine.get_workflow_handle(f"{table}__{COUNTING}")  # what `temporal workflow signal` sends
    await handle.signal("pause", "operator said so")  # a bare string, not {"reason": ...}

    async def paused() -> None:
        plan = await _plan(http, plan_id)
        assert plan["paused"] is True and plan["pauseReason"] == "operator said so", plan

    await eventually(paused)
    await handle.signal("resume")  # no input at all

    async def resumed() -> None:
        plan = await _plan(http, plan_id)
        assert plan["paused"] is False and plan["pauseReason"] is None, plan

    await eventually(resumed)
    assert (await http.delete(f"/tasks/taskPlans/{plan_id}")).status_code == 200
    await wait_for_end(plans.reader, plan_id)


async def test_the_report_counts_the_running_batchs_ended_subtasks(
    http: httpx.AsyncClient, engine: Client, tables: Catalog, table: str
) -> None:
    one_at_a_time = TEST_OPTIONS.model_copy(update={"max_pending_subtasks": 1})
    plans = PlanServices.build(engine, tables, one_at_a_time)
    configs = {"numBatches": "1", "subtasksPerBatch": "4", "sleepMs": "500"}
    plan_id = await plans.starter.start_plan(table, COUNTING, PlanSource.ADHOC_CONFIG, configs)

    async def part_way() -> None:
        page = (await http.get("/ui", params={"plan": plan_id})).text  # read first: it can only lag
        plan = await _plan(http, plan_id)
        assert plan["batches"] and plan["batches"][0]["taskState"] == "IN_PROGRESS", plan
        report = plan["report"]
        assert 1 <= report["subtasksCompleted"] <= 3, report
        assert report["counters"]["items"] == report["subtasksCompleted"]
        shown = re.search(r'data-testid="report-subtasks-completed">([0-9]+)<', page)
        assert shown is not None, page
        assert 1 <= int(shown.group(1)) <= report["subtasksCompleted"]  # /ui shows the live report too

    await eventually(part_way, interval=0.1)
    await wait_for_end(plans.reader, plan_id)
    report = (await _plan(http, plan_id))["report"]
    assert report["subtasksCompleted"] == 4 and report["counters"]["items"] == 4
