"""Cron schedules as real Temporal Schedules: next fire times, lifecycle, firings, reconcile."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleBackfill,
    ScheduleOverlapPolicy,
    ScheduleSpec,
    ScheduleState,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError

from taskplan.catalog import Catalog
from taskplan.models.plan import CycleResult
from taskplan.quartz import translate
from taskplan.schedules import ScheduleManager, schedule_id
from tests.api.test_metrics import scrape
from tests.api.test_tables_and_triggers_api import COUNTING, create_table, new_name, wait_inactive
from tests.schedules.test_quartz import EXPRESSIONS
from tests.support.engine import add_table, eventually
from tests.support.quartz_reference import next_fire_times

ORCHESTRATED_ONLY = "TestOrchestratedOnlyTask"


@pytest.mark.parametrize(
    ("expression", "zone"),
    [(e, "UTC") for e in EXPRESSIONS]
    + [
        ("0 0 2 * * ?", "America/New_York"),
        ("0 30 1 ? * SUN", "Europe/Berlin"),
        ("0 0 12 ? * 6#3", "Asia/Kolkata"),
    ],
)
async def test_temporal_computes_the_fire_times_quartz_would(
    temporal_client: Client, expression: str, zone: str
) -> None:
    sid = f"quartz-check-{abs(hash((expression, zone)))}"
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    handle = await temporal_client.create_schedule(
        sid,
        Schedule(
            action=ScheduleActionStartWorkflow("Nothing", id=sid, task_queue="nobody-polls-this"),
            spec=ScheduleSpec(calendars=translate(expression), time_zone_name=zone),
            state=ScheduleState(paused=True),
        ),
    )
    try:
        temporal_times = (await handle.describe()).info.next_action_times
    finally:
        await handle.delete()
    assert temporal_times, expression
    expected = next_fire_times(expression, before, len(temporal_times) + 2, ZoneInfo(zone))
    expected_utc = [t.astimezone(UTC) for t in expected]
    # Temporal counts from the moment it created the schedule; the reference from just before.
    offset = expected_utc.index(temporal_times[0])
    assert offset <= 2, (expression, temporal_times[0], expected_utc[:3])
    assert temporal_times == expected_utc[offset : offset + len(temporal_times)]


async def describe(client: Client, sid: str) -> Any:
    return await client.get_schedule_handle(sid).describe()


async def test_schedules_follow_table_configs(http: httpx.AsyncClient, engine: Client) -> None:
    name = new_name()
    table = await create_table(http, name, {COUNTING: {"schedule": "0 0 2 * * ?"}})
    sid = schedule_id(table, COUNTING)
    assert sid == f"taskplan-cron__{table}__{COUNTING}"
    created = await describe(engine, sid)
    assert created.schedule.action.workflow == "CronTrigger"
    assert created.schedule.spec.time_zone_name == "UTC"
    assert created.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert created.info.next_action_times[0].hour == 2

    # An operator pauses it (temporal schedule toggle --pause); a config change keeps the pause.
    await engine.get_schedule_handle(sid).pause(note="maintenance")
    update = {
        "tableName": name,
        "tableType": "OFFLINE",
        "task": {
            "taskTypeConfigsMap": {COUNTING: {"schedule": "0 30 4 ? * MON", "scheduleTimeZone": "Asia/Tokyo"}}
        },
    }
    assert (await http.put(f"/tables/{name}", json=update)).status_code == 200
    changed = await describe(engine, sid)
    assert changed.schedule.state.paused is True
    assert changed.schedule.spec.time_zone_name == "Asia/Tokyo"
    first = changed.info.next_action_times[0].astimezone(ZoneInfo("Asia/Tokyo"))
    assert (first.weekday(), first.hour, first.minute) == (0, 4, 30)

    # A refused expression changes nothing: the 400 names the field, the old schedule and config stay.
    bad = {**update, "task": {"taskTypeConfigsMap": {COUNTING: {"schedule": "0 0 2 31W * ?"}}}}
    response = await http.put(f"/tables/{name}", json=bad)
    assert response.status_code == 400
    assert f"task.taskTypeConfigsMap.{COUNTING}.schedule" in response.json()["error"]
    assert "W is translated for days 1-28 only" in response.json()["error"]
    assert (await describe(engine, sid)).schedule.spec.time_zone_name == "Asia/Tokyo"
    stored = (await http.get(f"/tables/{name}")).json()["OFFLINE"]
    assert stored["task"]["taskTypeConfigsMap"][COUNTING]["schedule"] == "0 30 4 ? * MON"

    # Removing the schedule key deletes the schedule; adding it back creates it.
    plain = {**update, "task": {"taskTypeConfigsMap": {COUNTING: {"numBatches": "1"}}}}
    assert (await http.put(f"/tables/{name}", json=plain)).status_code == 200
    with pytest.raises(RPCError):
        await describe(engine, sid)
    assert (await http.put(f"/tables/{name}", json=update)).status_code == 200
    assert (await describe(engine, sid)).schedule.state.paused is False

    # Dropping the table drops its schedules.
    assert (await http.delete(f"/tables/{name}")).status_code == 200
    with pytest.raises(RPCError):
        await describe(engine, sid)


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        ({"schedule": "0 0 2 * * *"}, "exactly one of day-of-month and day-of-week must be '?'"),
        ({"schedule": "0 0 2 * *"}, "has 5 fields"),
        ({"schedule": "0 0 2 * * ?", "scheduleTimeZone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
async def test_a_table_with_a_bad_schedule_is_refused_whole(
    http: httpx.AsyncClient, engine: Client, configs: dict[str, str], message: str
) -> None:
    name = new_name()
    schema = {"schemaName": name, "dimensionFieldSpecs": [{"name": "country", "dataType": "STRING"}]}
    assert (await http.post("/schemas", json=schema)).status_code == 200
    body = {"tableName": name, "tableType": "OFFLINE", "task": {"taskTypeConfigsMap": {COUNTING: configs}}}
    response = await http.post("/tables", json=body)
    assert response.status_code == 400 and message in response.json()["error"], response.text
    assert f"task.taskTypeConfigsMap.{COUNTING}." in response.json()["error"]
    assert (await http.get(f"/tables/{name}")).status_code == 404
    with pytest.raises(RPCError):
        await describe(engine, schedule_id(f"{name}_OFFLINE", COUNTING))


async def cron_triggers(client: Client, table: str) -> list[Any]:
    query = f"WorkflowType = 'CronTrigger' AND TaskPlanTable = '{table}'"
    return [w async for w in client.list_workflows(query)]


async def test_firings_create_a_plan_then_skip_while_it_is_active(
    http: httpx.AsyncClient, engine: Client
) -> None:
    name = new_name()
    configs = {
        "schedule": "0 0 2 * * ?",
        "enableTaskOrchestration": "true",
        "numBatches": "3",
        "subtasksPerBatch": "1",
        "sleepMs": "2000",
    }
    table = await create_table(http, name, {COUNTING: configs})
    handle = engine.get_schedule_handle(schedule_id(table, COUNTING))
    # Three daily firings at once, run one after another: the time-skipped equivalent of three nights.
    now = datetime.now(UTC)
    await handle.backfill(
        ScheduleBackfill(
            start_at=now - timedelta(days=3), end_at=now, overlap=ScheduleOverlapPolicy.BUFFER_ALL
        )
    )

    async def three_done() -> list[Any]:
        runs = await cron_triggers(engine, table)
        assert len(runs) == 3 and all(r.status == WorkflowExecutionStatus.COMPLETED for r in runs)
        return runs

    runs = await eventually(three_done, timeout=60)
    results = [
        await engine.get_workflow_handle(r.id, run_id=r.run_id, result_type=CycleResult).result()
        for r in runs
    ]
    created = [r for r in results if r.task_plans]
    skipped = [r for r in results if r.skipped]
    assert len(created) == 1 and len(skipped) == 2
    plan_id = created[0].task_plans[table]
    assert all(r.skipped[table] == plan_id for r in skipped)
    plan = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    assert plan["source"] == "TABLE_CONFIG" and plan["status"] == "ACTIVE"
    assert await scrape(http, "scheduledTriggerActivePlanConflict", table) == 2
    await wait_inactive(http, plan_id)
    assert (await http.get(f"/tasks/taskPlans/{plan_id}")).json()["status"] == "COMPLETED"

    # A later firing, with the plan done, starts a new one.
    await handle.trigger()

    async def fourth() -> None:
        runs = await cron_triggers(engine, table)
        assert len(runs) == 4 and all(r.status == WorkflowExecutionStatus.COMPLETED for r in runs)

    await eventually(fourth, timeout=30)
    plans = (await http.get(f"/tasks/taskPlans?tableNameWithType={table}&taskType={COUNTING}")).json()
    assert isinstance(plans, list) and len(plans) == 2, plans


async def test_a_legacy_firing_is_pinots_cron_trigger(http: httpx.AsyncClient, engine: Client) -> None:
    """A firing of a table without orchestration runs a legacy task whose subtasks say triggeredBy
    CRON_TRIGGER, as Pinot's (POST /tasks/schedule: MANUAL_TRIGGER; POST /tasks/execute: ADHOC_TRIGGER)."""
    table = await create_table(
        http, new_name(), {COUNTING: {"schedule": "0 0 2 * * ?", "subtasksPerBatch": "2"}}
    )
    await engine.get_schedule_handle(schedule_id(table, COUNTING)).trigger()

    async def fired() -> CycleResult:
        runs = await cron_triggers(engine, table)
        assert len(runs) == 1 and runs[0].status == WorkflowExecutionStatus.COMPLETED
        handle = engine.get_workflow_handle(runs[0].id, run_id=runs[0].run_id, result_type=CycleResult)
        result: CycleResult = await handle.result()
        return result

    cycle = await eventually(fired, timeout=30)
    configs = (await http.get(f"/tasks/task/{cycle.legacy_tasks[table]}/config")).json()
    assert [c["configs"]["triggeredBy"] for c in configs] == ["CRON_TRIGGER", "CRON_TRIGGER"]


async def test_a_stopped_queue_holds_a_legacy_firing(http: httpx.AsyncClient, engine: Client) -> None:
    """PUT /tasks/{taskType}/stop stops the legacy flow of a cron firing too: Pinot's scheduling error,
    no task; the next firing after the resume runs one."""
    contract = "TestContractTask"  # the contract tests' own type: stopping it touches no other test
    table = await create_table(
        http, new_name(), {contract: {"schedule": "0 0 2 * * ?", "subtasksPerBatch": "1"}}
    )
    handle = engine.get_schedule_handle(schedule_id(table, contract))

    async def cycle(count: int) -> CycleResult:
        runs = await cron_triggers(engine, table)
        assert len(runs) == count and all(r.status == WorkflowExecutionStatus.COMPLETED for r in runs)
        last = max(runs, key=lambda r: r.start_time)
        result: CycleResult = await engine.get_workflow_handle(
            last.id, run_id=last.run_id, result_type=CycleResult
        ).result()
        return result

    assert (await http.put(f"/tasks/{contract}/stop")).status_code == 200
    try:
        await handle.trigger()
        held = await eventually(lambda: cycle(1), timeout=30)
    finally:
        assert (await http.put(f"/tasks/{contract}/resume")).status_code == 200
    assert held.legacy_tasks == {} and "task queue may be stopped" in held.scheduling_errors[0]
    await handle.trigger()
    ran = await eventually(lambda: cycle(2), timeout=30)
    assert set(ran.legacy_tasks) == {table} and ran.scheduling_errors == []


async def test_a_firing_that_cannot_generate_fails_visibly(http: httpx.AsyncClient, engine: Client) -> None:
    # An orchestration-only task type forced to the legacy flow fails generation: the trigger run FAILS.
    name = new_name()
    configs = {"schedule": "0 0 2 * * ?", "forceLegacyTaskFlow": "true"}
    table = await create_table(http, name, {ORCHESTRATED_ONLY: configs})
    await engine.get_schedule_handle(schedule_id(table, ORCHESTRATED_ONLY)).trigger()

    async def failed() -> Any:
        runs = await cron_triggers(engine, table)
        assert len(runs) == 1 and runs[0].status == WorkflowExecutionStatus.FAILED
        return runs[0]

    await eventually(failed, timeout=30)
    assert await scrape(http, "taskGenerationFailureCount", table) >= 1


async def test_reconcile_creates_missing_and_removes_left_over_schedules(
    engine: Client, tables: Catalog
) -> None:
    # A table saved while Temporal was unreachable, and a schedule whose table is gone.
    table = add_table(tables, f"{new_name()}_OFFLINE", {COUNTING: {"schedule": "0 0 3 * * ?"}})
    ghost = schedule_id(f"{new_name()}_OFFLINE", COUNTING)
    await engine.create_schedule(
        ghost,
        Schedule(
            action=ScheduleActionStartWorkflow("CronTrigger", id=ghost, task_queue="nobody"),
            spec=ScheduleSpec(calendars=translate("0 0 3 * * ?")),
            state=ScheduleState(paused=True),
        ),
    )
    manager = ScheduleManager(engine)

    async def visible() -> None:
        assert ghost in await manager.existing_ids()

    await eventually(visible, timeout=30)
    report = await manager.reconcile(await asyncio.to_thread(tables.list_tables))
    assert schedule_id(table, COUNTING) in report.created
    assert ghost in report.deleted
    assert (await describe(engine, schedule_id(table, COUNTING))).info.next_action_times[0].hour == 3
    again = await manager.reconcile(await asyncio.to_thread(tables.list_tables))
    assert not again.created and not again.deleted
    await manager.delete(schedule_id(table, COUNTING))
    await asyncio.to_thread(tables.delete_table, table)
