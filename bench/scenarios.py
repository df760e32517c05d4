"""The benchmark scenarios (issue #7). Each compares taskplan with a baseline in the same run."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
from temporalio.client import WorkflowHandle

from bench.baseline import BASELINE_QUEUE, BaselineBatch, BaselineBatchesWorkflow, BaselineInput
from bench.harness import BenchStack, Report, median, new_raw_name, percentile, rss_mb
from taskplan.catalog.segments import SegmentStatus
from taskplan.data.segments import SegmentManager
from taskplan.models.table import Schema
from taskplan.names import minion_task_queue
from workflows.models import PlanQuery, PlanSource, PlanStatus, TaskPlan

NOOP = "NoOpTask"
NOOP_QUEUE = minion_task_queue("minion_untagged", NOOP)


async def run_plan(stack: BenchStack, table: str, task_type: str, configs: dict[str, str]) -> TaskPlan:
    plan_id = await stack.service.start_plan(table, task_type, PlanSource.ADHOC_CONFIG, configs)
    while True:
        plan = await stack.service.get_plan(plan_id, PlanQuery(batch_limit=1000))
        if not plan.status.is_active:
            if plan.status != PlanStatus.COMPLETED:
                raise RuntimeError(f"plan {plan_id} ended {plan.status}: {plan.status_message}")
            return plan
        await asyncio.sleep(0.2)


def plan_seconds(plan: TaskPlan) -> float:
    assert plan.finished_at_ms is not None
    return (plan.finished_at_ms - plan.created_at_ms) / 1000


async def run_baseline(
    stack: BenchStack, table: str, batches: int, per_batch: int
) -> tuple[float, list[BaselineBatch]]:
    started = time.monotonic()
    result = await stack.client.execute_workflow(
        BaselineBatchesWorkflow.run,
        BaselineInput(
            num_batches=batches,
            subtasks_per_batch=per_batch,
            task_queue=NOOP_QUEUE,
            table_name_with_type=table,
        ),
        id=new_raw_name("baseline-"),
        task_queue=BASELINE_QUEUE,
    )
    return time.monotonic() - started, result


async def overhead(stack: BenchStack, report: Report, full: bool) -> None:
    batches, per_batch, rounds = (200, 10, 3) if full else (40, 10, 5)
    stack.start_minions(1)
    table = stack.add_table(new_raw_name("overhead"))
    await run_baseline(stack, table, 2, per_batch)  # warm up workers and caches
    plan_times: list[float] = []
    base_times: list[float] = []
    last: TaskPlan | None = None
    for _ in range(rounds):
        elapsed, _ = await run_baseline(stack, table, batches, per_batch)
        base_times.append(elapsed)
        last = await run_plan(
            stack, table, NOOP, {"numBatches": str(batches), "numSubtasksPerBatch": str(per_batch)}
        )
        plan_times.append(plan_seconds(last))
    # Each round runs the baseline and the plan back to back: the median of the rounds' ratios.
    ratios = [p / b for p, b in zip(plan_times, base_times, strict=True)]
    ratio = median(ratios)
    shape = f"{batches} batches x {per_batch} no-op subtasks"
    report.add(
        "1 overhead",
        f"plan vs hand-written workflow ({shape}), median of {rounds} rounds",
        f"{ratio:.2f} ({median(plan_times):.1f} s vs {median(base_times):.1f} s; "
        f"rounds {min(ratios):.2f}-{max(ratios):.2f})",
        "<= 1.3",
        ratio <= 1.3,
    )
    assert last is not None
    gaps = await batch_gaps(stack, last)
    report.add(
        "2 batch gap",
        "median / p99 (last subtask end -> next first subtask start)",
        f"{median(gaps):.0f} ms / {percentile(gaps, 99):.0f} ms",
        "<= 100 / <= 400 ms",
        median(gaps) <= 100 and percentile(gaps, 99) <= 400,
    )
    report.data["overhead"] = {
        "plan_s": plan_times,
        "baseline_s": base_times,
        "ratios": ratios,
        "gaps_ms": gaps,
    }
    stack.stop_minions()


async def batch_gaps(stack: BenchStack, plan: TaskPlan) -> list[float]:
    spans: list[tuple[int, int]] = []
    for record in plan.batches:
        details = await stack.service.batch_details(record.submitted_task_name)
        starts = [s.started_at_ms for s in details.subtasks if s.started_at_ms]
        ends = [s.finished_at_ms for s in details.subtasks if s.finished_at_ms]
        if starts and ends:
            spans.append((min(starts), max(ends)))
    return [float(spans[i][0] - spans[i - 1][1]) for i in range(1, len(spans))]


async def throughput(stack: BenchStack, report: Report, full: bool) -> None:
    total = 4000 if full else 1000
    per_batch = 1000
    batches = total // per_batch
    table = stack.add_table(new_raw_name("throughput"))
    for count in (1, 2, 4):
        stack.start_minions(count)
        await run_baseline(stack, table, 1, 50)  # every minion polling
        await asyncio.sleep(1)
        bare: list[float] = []
        planned: list[float] = []
        for _ in range(2):  # back to back, twice: the median of the two rounds' ratios
            bare.append((await run_baseline(stack, table, batches, per_batch))[0])
            plan = await run_plan(
                stack, table, NOOP, {"numBatches": str(batches), "numSubtasksPerBatch": str(per_batch)}
            )
            planned.append(plan_seconds(plan))
        ratio = median([b / p for b, p in zip(bare, planned, strict=True)])
        bare_s, plan_s = median(bare), median(planned)
        report.add(
            "3 throughput",
            f"{count} minion process{'es' if count > 1 else ''}: subtasks/s, plan vs bare activities",
            f"{total / plan_s:.0f} vs {total / bare_s:.0f} ({ratio:.2f})",
            ">= 0.8",
            ratio >= 0.8,
        )
        report.data[f"throughput_{count}"] = {"plan_s": planned, "bare_s": bare, "subtasks": total}
        stack.stop_minions()


async def many_plans(stack: BenchStack, report: Report, full: bool) -> None:
    count = 500 if full else 100
    stack.start_minions(2)
    tables = [stack.add_table(new_raw_name("many")) for _ in range(count)]
    list_ms: list[float] = []
    burst_ms: list[float] = []  # the listing's times while the plans are being submitted
    after_ms: list[float] = []
    get_ms: list[float] = []
    async with stack.api() as (http, api_pid):
        started = time.monotonic()

        async def execute(table: str) -> str:
            body = {
                "taskType": NOOP,
                "tableName": table,
                "taskConfigs": {
                    "enableTaskOrchestration": "true",
                    "numBatches": "2",
                    "numSubtasksPerBatch": "2",
                },
            }
            response = await http.post("/tasks/execute", json=body)
            response.raise_for_status()
            return str(response.json()["taskPlanId"])

        submitting = asyncio.gather(*(execute(t) for t in tables))
        seen: list[str] = []
        done = asyncio.Event()

        async def poll_listing() -> None:
            # From the first submission on (the burst included) until every plan is done.
            while True:
                t0 = time.monotonic()
                in_burst = not submitting.done()
                active = (await poll.get("/tasks/taskPlans/active", params={"batchLimit": 0})).json()
                list_ms.append((time.monotonic() - t0) * 1000)
                (burst_ms if in_burst else after_ms).append(list_ms[-1])
                seen[:] = [p["planId"] for p in active]
                if submitting.done() and not active:
                    done.set()
                    return
                await asyncio.sleep(0.2)

        async def poll_plans() -> None:
            while not done.is_set():
                if seen:
                    t0 = time.monotonic()
                    (await poll.get(f"/tasks/taskPlans/{random.choice(seen)}")).raise_for_status()
                    get_ms.append((time.monotonic() - t0) * 1000)
                await asyncio.sleep(0.2)

        # The polls have connections of their own: in the submitting client's pool (100 connections) they
        # would queue behind the submissions.
        async with httpx.AsyncClient(base_url=http.base_url, timeout=120) as poll:
            pollers = asyncio.gather(poll_listing(), poll_plans())
            await submitting
            submitted = time.monotonic() - started
            await pollers
        elapsed = time.monotonic() - started
        api_mb = rss_mb(api_pid)
    minion_mb = max(rss_mb(p.pid) for p in stack.minions)
    report.add(
        "4 many plans",
        f"{count} plans started at once through the API",
        f"all done in {elapsed:.1f} s (submitted in {submitted:.1f} s)",
    )
    report.add(
        "4 many plans",
        f"GET /tasks/taskPlans/active p50 / p99 ({len(list_ms)} calls from the first submission on)",
        f"{median(list_ms):.0f} / {percentile(list_ms, 99):.0f} ms",
        "p99 <= 500 ms",
        percentile(list_ms, 99) <= 500,
    )
    report.add(
        "4 many plans",
        "the same, while the plans are submitted / after",
        f"{median(burst_ms):.0f} / {percentile(burst_ms, 99):.0f} ms; "
        f"{median(after_ms):.0f} / {percentile(after_ms, 99):.0f} ms",
    )
    report.add(
        "4 many plans",
        "GET /tasks/taskPlans/{planId} p50 / p99",
        f"{median(get_ms):.0f} / {percentile(get_ms, 99):.0f} ms",
    )
    report.add(
        "4 many plans",
        "peak memory: controller process / API process / a minion",
        f"{rss_mb():.0f} MB / {api_mb:.0f} MB / {minion_mb:.0f} MB",
    )
    report.data["many_plans"] = {
        "list_ms": list_ms,
        "burst_ms": burst_ms,
        "after_ms": after_ms,
        "get_ms": get_ms,
        "elapsed_s": elapsed,
    }
    stack.stop_minions()


async def long_plan(stack: BenchStack, report: Report, full: bool) -> None:
    batches = 20_000 if full else 300
    stack.start_minions(1)
    table = stack.add_table(new_raw_name("long"))
    plan_id = await stack.service.start_plan(
        table, NOOP, PlanSource.ADHOC_CONFIG, {"numBatches": str(batches)}
    )
    memory: list[float] = []
    while True:
        plan = await stack.service.get_plan(plan_id, PlanQuery(batch_limit=0))
        memory.append(rss_mb())
        if not plan.status.is_active:
            break
        await asyncio.sleep(2)
    runs = [
        e
        async for e in stack.client.list_workflows(f"WorkflowType = 'TaskPlan' AND TaskPlanId = '{plan_id}'")
    ]
    lengths = []
    for run in runs:
        handle: WorkflowHandle[Any, Any] = stack.client.get_workflow_handle(run.id, run_id=run.run_id)
        lengths.append((await handle.describe()).raw_description.workflow_execution_info.history_length)
    async with stack.api() as (http, _):
        t0 = time.monotonic()
        response = await http.get(f"/tasks/taskPlans/{plan_id}")
        get_ms = (time.monotonic() - t0) * 1000
    body = response.json()
    report.add(
        "5 long plan",
        f"{batches} batches: duration, runs (continue-as-new)",
        f"{plan_seconds(plan):.0f} s, {len(runs)} runs",
    )
    report.add(
        "5 long plan",
        "history events per run (max)",
        f"{max(lengths)}",
        "bounded (< 10,240)",
        max(lengths) < 10_240,
    )
    report.add(
        "5 long plan",
        "controller peak memory after 10% / at the end",
        f"{memory[max(0, len(memory) // 10)]:.0f} / {memory[-1]:.0f} MB",
    )
    report.add(
        "5 long plan",
        "GET /tasks/taskPlans/{planId}: time, size, batch records",
        f"{get_ms:.0f} ms, {len(response.content) // 1024} KB, "
        f"{len(body['batches'])} of {body['numBatches']}",
    )
    report.data["long_plan"] = {"history_lengths": lengths, "memory_mb": memory}
    stack.stop_minions()


SCHEMA = {
    "dimensionFieldSpecs": [{"name": "id", "dataType": "LONG"}, {"name": "country", "dataType": "STRING"}],
    "metricFieldSpecs": [{"name": "amount", "dataType": "DOUBLE"}],
    "dateTimeFieldSpecs": [{"name": "ts", "dataType": "LONG", "format": "1:MILLISECONDS:EPOCH"}],
}
ROWS_SQL = (
    "SELECT i AS id, CASE WHEN i % 3 = 0 THEN 'US' ELSE 'FR' END AS country, (i % 1000) / 10.0 AS amount, "
    "1700000000000 + i AS ts FROM range({start}, {end}) t(i)"
)


def make_parquet(path: Path, start: int, rows: int) -> None:
    with duckdb.connect() as conn:
        conn.execute(f"COPY ({ROWS_SQL.format(start=start, end=start + rows)}) TO '{path}' (FORMAT parquet)")


@dataclass(frozen=True)
class DataRun:
    plan_s: float
    direct_s: float
    rows: int


async def purge(stack: BenchStack, segments: int, rows: int, per_subtask: int = 1) -> DataRun:
    """Rewrite the same segments without the rows matching a predicate: DuckDB directly, then a plan."""
    raw = new_raw_name("purge")
    stack.catalog.put_schema(Schema.model_validate({"schemaName": raw, **SCHEMA}))
    table = stack.add_table(raw)
    config = stack.catalog.require_table(table)
    schema = stack.catalog.require_schema(raw)
    manager = SegmentManager.from_settings(stack.settings, stack.catalog)
    direct_dir = stack.data_dir / f"direct-{raw}"
    direct_dir.mkdir()
    for s in range(segments):
        make_parquet(direct_dir / f"s{s}.parquet", s * rows, rows)
        staged = manager.deep_store.staging_path(table)
        make_parquet(staged, s * rows, rows)
        segment = manager.describe_file(
            config, schema, staged, f"{raw}_{s}", SegmentStatus.DONE, None, None, 0
        )
        manager.deep_store.publish(staged, table, segment.file_name)
        manager.store.add_segment(segment)
    predicate = "country = 'US'"
    t0 = time.monotonic()
    with duckdb.connect() as conn:
        for s in range(segments):
            source, target = direct_dir / f"s{s}.parquet", direct_dir / f"p{s}.parquet"
            conn.execute(
                f"COPY (SELECT * FROM read_parquet('{source}') WHERE NOT coalesce(({predicate}), false)) "
                f"TO '{target}' (FORMAT parquet)"
            )
    direct_s = time.monotonic() - t0
    configs = {"purgeFilter": predicate, "tableMaxNumTasks": str(segments)}
    if per_subtask > 1:
        configs["maxNumSegmentsPerTask"] = str(per_subtask)
    plan = await run_plan(stack, table, "SegmentPurgeTask", configs)
    plan_s = plan_seconds(plan)
    total = segments * rows
    kept = sum(s.total_docs for s in stack.catalog.segments.visible_segments(table))
    assert kept == total - len(range(0, total, 3)), (kept, total)
    manager.drop_table(table)  # the next round writes as many files again
    shutil.rmtree(direct_dir)
    return DataRun(plan_s, direct_s, total)


async def ingest(stack: BenchStack, files: int, rows: int) -> DataRun:
    """CSV files into segments: DuckDB's read_csv to Parquet directly, then a plan."""
    raw = new_raw_name("ingest")
    stack.catalog.put_schema(Schema.model_validate({"schemaName": raw, **SCHEMA}))
    table = stack.add_table(raw)
    input_dir = stack.settings.allowed_input_roots[0] / raw
    input_dir.mkdir(parents=True)
    out_dir = stack.data_dir / f"direct-{raw}"
    out_dir.mkdir()
    with duckdb.connect() as conn:
        for f in range(files):
            query = ROWS_SQL.format(start=f * rows, end=(f + 1) * rows)
            conn.execute(f"COPY ({query}) TO '{input_dir / f'part{f}.csv'}' (FORMAT csv, HEADER)")
    t0 = time.monotonic()
    with duckdb.connect() as conn:
        for f in range(files):
            conn.execute(
                f"COPY (SELECT * FROM read_csv('{input_dir / f'part{f}.csv'}', header=true, columns="
                "{'id': 'BIGINT', 'country': 'VARCHAR', 'amount': 'DOUBLE', 'ts': 'BIGINT'})) "
                f"TO '{out_dir / f'{f}.parquet'}' (FORMAT parquet)"
            )
    direct_s = time.monotonic() - t0
    configs = {"inputDirURI": str(input_dir), "inputFormat": "csv", "tableMaxNumTasks": str(files)}
    plan = await run_plan(stack, table, "FileIngestionTask", configs)
    plan_s = plan_seconds(plan)
    total = files * rows
    assert sum(s.total_docs for s in stack.catalog.segments.visible_segments(table)) == total
    SegmentManager.from_settings(stack.settings, stack.catalog).drop_table(table)
    shutil.rmtree(out_dir)
    shutil.rmtree(input_dir)
    return DataRun(plan_s, direct_s, total)


def report_data(report: Report, metric: str, runs: list[DataRun], key: str) -> None:
    """The median of the rounds' ratios (each round runs DuckDB directly and the plan back to back)."""
    ratios = [r.direct_s / r.plan_s for r in runs]
    middle = sorted(runs, key=lambda r: r.direct_s / r.plan_s)[len(runs) // 2]
    spread = f"; rounds {min(ratios):.2f}-{max(ratios):.2f}" if len(runs) > 1 else ""
    report.add(
        "6 data plane",
        f"{metric}: rows/s, plan vs DuckDB direct, median of {len(runs)} rounds",
        f"{middle.rows / middle.plan_s / 1e6:.2f}M vs {middle.rows / middle.direct_s / 1e6:.2f}M "
        f"({median(ratios):.2f}{spread})",
        ">= 0.7",
        median(ratios) >= 0.7,
    )
    report.data[key] = [{"plan_s": r.plan_s, "direct_s": r.direct_s, "rows": r.rows} for r in runs]


async def data_plane(stack: BenchStack, report: Report, full: bool) -> None:
    """At the issue's sizes in both modes (about a minute and a half); full runs more rounds."""
    rounds = 5 if full else 3
    stack.start_minions(1)
    cases: list[tuple[str, str, Callable[[], Awaitable[DataRun]]]] = [
        ("purge 20 x 1,000,000 rows", "purge_20x1M", lambda: purge(stack, 20, 1_000_000)),
        ("purge 100 x 100,000 rows", "purge_100x100k", lambda: purge(stack, 100, 100_000)),
        (
            "purge 100 x 100,000 rows, 10 segments per subtask",
            "purge_100x100k_packed",
            lambda: purge(stack, 100, 100_000, per_subtask=10),
        ),
        ("CSV ingestion 10 x 500,000 rows", "ingest", lambda: ingest(stack, 10, 500_000)),
    ]
    for metric, key, run in cases:
        report_data(report, metric, [await run() for _ in range(rounds)], key)
    stack.stop_minions()


SCENARIOS = {
    "overhead": overhead,
    "throughput": throughput,
    "many": many_plans,
    "long": long_plan,
    "data": data_plane,
}
