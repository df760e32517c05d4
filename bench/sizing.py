"""Scenario `sizing` (issue 22, point 7): what a plan costs, measured per plan, per batch step and per
subtask, to size a deployment on paper (README "Sizing a deployment"). `python -m bench.sizing [--full]`;
`python -m bench.sizing --catalog-url postgresql://postgres@127.0.0.1:5432/postgres` runs it with the catalog
in a fresh PostgreSQL database (created and dropped) to read `pg_total_relation_size`.

Plans are started as in production: each table config carries a cron `schedule` per task type, its Temporal
Schedule (created paused, so the clock never fires it during the run) is triggered by hand, and its
CronTrigger workflow starts the plan. For every plan it measures:

- Temporal: every run's history (fetched through the client): events by type and bytes (the events'
  protobuf size, which is what the history service persists), workflow tasks, activity tasks, and the
  actions Temporal Cloud bills, counted from the event types (bench/costs.py `count_actions`); the growth
  of the dev server's SQLite file;
- the catalog: rows and bytes per table (SQLite `dbstat`, or `pg_total_relation_size`), before and after;
- CPU: the controller's (it runs in this process: `time.process_time`, less its idle rate measured
  first), the minion processes' and the dev server's (`/proc/<pid>/stat`).

Calibration, one plan at a time: the hourly ingestion shape (4 new CSV files a firing) fired 3 times (6
with --full); then per round (3, or 5): the daily purge shape (40 segments, 10 a batch: 4 batches), an
ingestion of 2 and one of 8 files (the per-subtask slope), purges of 16 segments in 1 and in 4 batches (the
per-batch-step slope). The check: N tables (10, or 40) fired at once, ingestion then purge; their totals
against N times the per-plan figures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa
from temporalio.client import ScheduleActionExecutionStartWorkflow

from bench.costs import Cost, Meters, catalog_usage, charge_catalog, run_histories
from bench.data_plane import ROWS_SQL, SCHEMA, make_parquet
from bench.harness import BenchStack, Report, bench_stack, new_raw_name
from taskplan.data.segments import SegmentManager
from taskplan.models.plan import CycleResult
from taskplan.models.segment import SegmentStatus
from taskplan.models.table import Schema, TableConfig
from taskplan.schedules import cron_schedules

PURGE, INGEST = "SegmentPurgeTask", "FileIngestionTask"
DAILY, HOURLY = "0 0 2 * * ?", "0 0 * * * ?"
FILES_PER_HOUR = 4  # the hourly ingestion shape: 4 new files (segments) an hour
FILE_ROWS = 20_000
PURGE_SEGMENTS, PURGE_PER_BATCH = 40, 10  # the daily purge shape: 40 segments, 4 batches of 10
SEGMENT_ROWS = 10_000
TABLES = 10_000  # the deployment sized on paper
DAY = 86_400


# -- tables and firings ------------------------------------------------------------------------------------


def new_table(stack: BenchStack, per_batch: int = PURGE_PER_BATCH) -> str:
    """A table with a daily purge and an hourly ingestion in its config (schedules made by `schedules`)."""
    raw = new_raw_name("size")
    stack.catalog.put_schema(Schema.model_validate({"schemaName": raw, **SCHEMA}))
    input_dir = stack.settings.allowed_input_roots[0] / raw
    input_dir.mkdir(parents=True)
    configs = {
        PURGE: {
            "schedule": DAILY,
            "enableTaskOrchestration": "true",
            "purgeFilter": "country = 'US'",
            "tableMaxNumTasks": str(per_batch),
        },
        INGEST: {
            "schedule": HOURLY,
            "enableTaskOrchestration": "true",
            "inputDirURI": str(input_dir),
            "inputFormat": "csv",
            "tableMaxNumTasks": "10",
        },
    }
    config = TableConfig.model_validate(
        {"tableName": raw, "tableType": "OFFLINE", "task": {"taskTypeConfigsMap": configs}}
    )
    return stack.catalog.create_table(config).tableName


async def schedules(stack: BenchStack, table: str) -> None:
    """The table's cron schedules, as the API makes them, but paused: only `fire` triggers them."""
    for cron in cron_schedules(stack.catalog.require_table(table)):
        schedule = cron.to_temporal()
        schedule.state = dataclasses.replace(schedule.state, paused=True)
        await stack.client.create_schedule(cron.id, schedule)


def input_dir(stack: BenchStack, table: str) -> Path:
    return stack.settings.allowed_input_roots[0] / table.removesuffix("_OFFLINE")


def add_files(stack: BenchStack, table: str, count: int, rows: int = FILE_ROWS) -> None:
    directory = input_dir(stack, table)
    with duckdb.connect() as conn:
        for _ in range(count):
            start = uuid.uuid4().int % 10**12
            query = ROWS_SQL.format(start=start, end=start + rows)
            conn.execute(f"COPY ({query}) TO '{directory / f'{uuid.uuid4().hex}.csv'}' (FORMAT csv, HEADER)")


def add_segments(stack: BenchStack, table: str, count: int, rows: int = SEGMENT_ROWS) -> None:
    """Segments written straight into the deep store and catalog (as bench/data_plane.py does)."""
    config = stack.catalog.require_table(table)
    schema = stack.catalog.require_schema(table.removesuffix("_OFFLINE"))
    manager = SegmentManager.from_settings(stack.settings, stack.catalog)
    for _ in range(count):
        staged = manager.deep_store.staging_path(table)
        make_parquet(staged, 0, rows)
        name = f"{table}_{uuid.uuid4().hex[:12]}"
        segment = manager.describe_file(config, schema, staged, name, SegmentStatus.DONE, None, None, 0)
        manager.deep_store.publish(staged, table, segment.file_name)
        manager.store.add_segment(segment)


async def fire(stack: BenchStack, table: str, task_type: str) -> Cost:
    """Trigger the table's schedule, wait for the plan it starts to end; its Temporal cost (not CPU)."""
    client = stack.client
    handle = client.get_schedule_handle(f"taskplan-cron__{table}__{task_type}")
    before = (await handle.describe()).info.num_actions
    await handle.trigger()
    while True:
        info = (await handle.describe()).info
        if info.num_actions > before and info.recent_actions:
            break
        await asyncio.sleep(0.05)
    action = info.recent_actions[-1].action
    assert isinstance(action, ScheduleActionExecutionStartWorkflow)
    trigger = client.get_workflow_handle(action.workflow_id, run_id=action.first_execution_run_id)
    cycle = CycleResult.model_validate(await trigger.result())
    plan_id = cycle.task_plans[table]
    end = await client.get_workflow_handle(f"{table}__{task_type}").result()
    if end["status"] != "COMPLETED":
        raise RuntimeError(f"plan {plan_id} ended {end['status']}: {end.get('statusMessage')}")
    cost = Cost(plans=1, batches=int(end["numBatches"]))
    cost.subtasks = int(end["report"]["subtasksCompleted"]) + int(end["report"]["subtasksFailed"])
    cost.add_history(list((await trigger.fetch_history()).events))
    for events in await run_histories(client, plan_id):
        cost.add_history(events)
    return cost


async def measured(stack: BenchStack, meters: Meters, firings: list[tuple[str, str]]) -> Cost:
    """Fire these (table, task type) at once; their total cost, CPU and catalog included."""
    catalog_before = catalog_usage(stack.catalog)
    before = meters.read()
    costs = await asyncio.gather(*(fire(stack, table, task_type) for table, task_type in firings))
    total = Cost()
    for cost in costs:
        total = total + cost
    meters.charge(total, before)
    charge_catalog(total, stack.catalog, catalog_before)
    return total


# -- the scenario --------------------------------------------------------------------------------------------

METRICS = (
    ("workflow_runs", "workflow runs (starts)"),
    ("activity_tasks", "activity tasks"),
    ("workflow_tasks", "workflow tasks"),
    ("actions", "Temporal Cloud actions"),
    ("events", "history events"),
    ("history_bytes", "history bytes"),
    ("catalog_rows", "catalog rows"),
    ("catalog_bytes", "catalog bytes"),
    ("controller_cpu_s", "controller CPU s"),
    ("minion_cpu_s", "minion CPU s"),
    ("server_cpu_s", "dev server CPU s"),
    ("server_db_bytes", "dev server database bytes"),
)


def typical(costs: list[Cost]) -> dict[str, float]:
    """The median of each metric over the runs; the mean for the catalog's, counted in whole pages."""
    out = {name: sorted(c.metric(name) for c in costs)[len(costs) // 2] for name, _ in METRICS}
    for name in ("catalog_rows", "catalog_bytes", "server_db_bytes"):
        out[name] = sum(c.metric(name) for c in costs) / len(costs)
    return out


def slopes(pairs: list[tuple[Cost, Cost]], units: str) -> dict[str, float]:
    """The median over rounds of (b - a) / (b.units - a.units), metric by metric."""
    return {
        name: sorted(
            (b.metric(name) - a.metric(name)) / (getattr(b, units) - getattr(a, units)) for a, b in pairs
        )[len(pairs) // 2]
        for name, _ in METRICS
    }


def fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def sizing_model(ingest: dict[str, float], purge: dict[str, float], tables: int) -> dict[str, float]:
    """Per day for `tables` tables, each with 24 ingestion plans and one purge plan: the per-plan
    constants times the plans; rates per second are averages over the day."""
    daily = {k: tables * (24 * ingest[k] + purge[k]) for k in ingest}
    return {
        "workflow starts/s": daily["workflow_runs"] / DAY,
        "activity tasks/s": daily["activity_tasks"] / DAY,
        "workflow tasks/s": daily["workflow_tasks"] / DAY,
        "Temporal Cloud actions/s": daily["actions"] / DAY,
        "Temporal Cloud actions/day": daily["actions"],
        "history events/s": daily["events"] / DAY,
        "history GB/day": daily["history_bytes"] / 1e9,
        "catalog rows/day": daily["catalog_rows"],
        "catalog GB/day": daily["catalog_bytes"] / 1e9,
        "controller CPU cores, day average": daily["controller_cpu_s"] / DAY,
        "minion CPU cores, day average": daily["minion_cpu_s"] / DAY,
        "hh:00 burst: controller CPU s for the hour's ingestion plans": tables * ingest["controller_cpu_s"],
        "hh:00 burst: Temporal Cloud actions": tables * ingest["actions"],
    }


def dump(c: Cost) -> dict[str, Any]:
    fields = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
    return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in fields.items()}


async def sizing(stack: BenchStack, report: Report, full: bool) -> None:
    hours, rounds, tables = (6, 5, 40) if full else (3, 3, 10)
    stack.start_minions(1)
    meters = Meters(stack)
    # Warm-up: the minion imports, the first DuckDB connections, the dev server's caches.
    warm = new_table(stack)
    await schedules(stack, warm)
    add_files(stack, warm, 2)
    await fire(stack, warm, INGEST)
    await meters.measure_idle(10)

    async def one(table: str, task_type: str) -> Cost:
        return await measured(stack, meters, [(table, task_type)])

    async def purge_table(segments: int, per_batch: int) -> Cost:
        t = new_table(stack, per_batch)
        await schedules(stack, t)
        add_segments(stack, t, segments)
        return await one(t, PURGE)

    # Calibration, one plan at a time: the two shapes, and pairs that differ in subtasks or in steps only.
    table = new_table(stack)
    await schedules(stack, table)
    hourly: list[Cost] = []
    for _ in range(hours):
        add_files(stack, table, FILES_PER_HOUR)
        hourly.append(await one(table, INGEST))
    daily: list[Cost] = []
    subtask_pairs: list[tuple[Cost, Cost]] = []
    step_pairs: list[tuple[Cost, Cost]] = []
    for _ in range(rounds):
        daily.append(await purge_table(PURGE_SEGMENTS, PURGE_PER_BATCH))
        add_files(stack, table, 2)
        small = await one(table, INGEST)
        add_files(stack, table, 8)
        subtask_pairs.append((small, await one(table, INGEST)))
        step_pairs.append((await purge_table(16, 16), await purge_table(16, 4)))
    ingest_plan, purge_plan = typical(hourly), typical(daily)
    per_subtask, per_step = slopes(subtask_pairs, "subtasks"), slopes(step_pairs, "steps")

    # The check: `tables` tables fired at once, ingestion then purge, against the per-plan figures.
    batch = [new_table(stack) for _ in range(tables)]
    for t in batch:
        await schedules(stack, t)
        add_files(stack, t, FILES_PER_HOUR)
        add_segments(stack, t, PURGE_SEGMENTS - FILES_PER_HOUR)
    ingest_all = await measured(stack, meters, [(t, INGEST) for t in batch])
    purge_all = await measured(stack, meters, [(t, PURGE) for t in batch])

    where = stack.catalog.engine.dialect.name
    shapes = (
        f"hourly ingestion = {FILES_PER_HOUR} CSV files x {FILE_ROWS:,} rows "
        f"({hourly[0].batches} batch, {hourly[0].steps} steps, {hourly[0].subtasks} subtasks; {hours} "
        f"firings); daily purge = {PURGE_SEGMENTS} segments x {SEGMENT_ROWS:,} rows, {PURGE_PER_BATCH} a "
        f"batch ({daily[0].batches} batches, {daily[0].steps} steps, {daily[0].subtasks} subtasks; "
        f"{rounds} plans); catalog {where}"
    )
    for name, label in METRICS:
        report.add(
            "8 sizing",
            f"{label}: per ingestion plan / per purge plan / per subtask / per batch step",
            f"{fmt(ingest_plan[name])} / {fmt(purge_plan[name])} / {fmt(per_subtask[name])} / "
            f"{fmt(per_step[name])}",
        )
    checks = {}
    for name, label in METRICS:
        predicted = tables * (ingest_plan[name] + purge_plan[name])
        actual = ingest_all.metric(name) + purge_all.metric(name)
        checks[name] = {"predicted": predicted, "measured": actual}
        report.add(
            "8 sizing",
            f"{tables} tables fired at once (ingestion, then purge): {label}, measured vs predicted",
            f"{fmt(actual)} vs {fmt(predicted)} ({actual / predicted if predicted else float('nan'):.2f})",
        )
    loaded_ingest = {name: ingest_all.metric(name) / tables for name, _ in METRICS}
    loaded_purge = {name: purge_all.metric(name) / tables for name, _ in METRICS}
    model = sizing_model(ingest_plan, purge_plan, TABLES)
    loaded = sizing_model(loaded_ingest, loaded_purge, TABLES)
    for key, value in model.items():
        report.add(
            "8 sizing",
            f"{TABLES:,} tables, 24 ingestion + 1 purge plan a day each: {key} (from one plan at a time / "
            f"from the {tables} tables at once)",
            f"{fmt(value)} / {fmt(loaded[key])}",
        )
    report.data["sizing"] = {
        "shapes": shapes,
        "idle_controller_cpu_per_s": meters.idle_cpu_per_s,
        "hourly_ingestion": [dump(c) for c in hourly],
        "daily_purge": [dump(c) for c in daily],
        "subtask_pairs": [[dump(a), dump(b)] for a, b in subtask_pairs],
        "step_pairs": [[dump(a), dump(b)] for a, b in step_pairs],
        "per_ingestion_plan": ingest_plan,
        "per_purge_plan": purge_plan,
        "per_subtask": per_subtask,
        "per_step": per_step,
        "check": {
            "tables": tables,
            "ingestion": dump(ingest_all),
            "purge": dump(purge_all),
            "totals": checks,
        },
        "model": model,
        "model_from_check": loaded,
    }
    print(f"   {shapes}; idle controller CPU {meters.idle_cpu_per_s:.4f} s/s", flush=True)
    stack.stop_minions()


async def with_postgres(base_url: str, full: bool) -> None:
    """The scenario with the catalog in a fresh PostgreSQL database, dropped afterwards."""
    name = f"taskplan_sizing_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(base_url).set(database=name).render_as_string(hide_password=False)
    try:
        report = Report()
        async with bench_stack({"taskplan.catalog.url": url}) as stack:
            await sizing(stack, report, full)
            stack.catalog.close()
        path = report.write("sizing-postgresql")
        print(report.table())
        print(f"\nresults: {path}")
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="more firings and 40 tables in the validation")
    parser.add_argument(
        "--catalog-url", help="a PostgreSQL URL: run with the catalog in a new database there"
    )
    args = parser.parse_args()
    if args.catalog_url:
        logging.basicConfig(level=logging.WARNING)
        asyncio.run(with_postgres(args.catalog_url, args.full))
    else:
        from bench.run import main

        main(only="sizing")
