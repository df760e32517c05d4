"""Scenario 6: segment purge and CSV ingestion through plans, against DuckDB doing the same work directly.
`python -m bench.data_plane [--full]`; `BENCH_DATA_CASES=purge_20x1M,purge_100x100k_defaults` runs only
those cases (their keys in the results)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from bench.harness import BenchStack, Report, median, new_raw_name
from bench.plans import plan_seconds, run_plan
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import SegmentStatus
from taskplan.models.table import Schema

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


async def purge(
    stack: BenchStack, segments: int, rows: int, configs: dict[str, str] | None = None
) -> DataRun:
    """Rewrite the same segments without the rows matching a predicate: DuckDB directly, then a plan with
    the task configs ``configs`` besides the filter (default: one batch, ``tableMaxNumTasks`` = segments)."""
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
    task_configs = {"tableMaxNumTasks": str(segments)} if configs is None else configs
    plan = await run_plan(stack, table, "SegmentPurgeTask", {"purgeFilter": predicate, **task_configs})
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


def report_data(report: Report, metric: str, runs: list[DataRun], key: str, target: float = 0.7) -> None:
    """The median of the rounds' ratios (each round runs DuckDB directly and the plan back to back)."""
    ratios = [r.direct_s / r.plan_s for r in runs]
    middle = sorted(runs, key=lambda r: r.direct_s / r.plan_s)[len(runs) // 2]
    spread = f"; rounds {min(ratios):.2f}-{max(ratios):.2f}" if len(runs) > 1 else ""
    report.add(
        "6 data plane",
        f"{metric}: rows/s, plan vs DuckDB direct, median of {len(runs)} rounds",
        f"{middle.rows / middle.plan_s / 1e6:.2f}M vs {middle.rows / middle.direct_s / 1e6:.2f}M "
        f"({median(ratios):.2f}{spread})",
        f">= {target}",
        median(ratios) >= target,
    )
    report.data[key] = [{"plan_s": r.plan_s, "direct_s": r.direct_s, "rows": r.rows} for r in runs]


async def data_plane(stack: BenchStack, report: Report, full: bool) -> None:
    """At the issue's sizes in both modes (about a minute and a half); full runs more rounds."""
    rounds = 5 if full else 3
    stack.start_minions(1)
    # Subtasks are sized by rows unless maxNumSegmentsPerTask is set (maxNumRecordsPerTask, default 1M):
    # 20 x 1M is a segment a subtask, 100 x 100k ten segments a subtask. "At the defaults": purgeFilter only
    # (tableMaxNumTasks 10); the others one batch. The targets: issue 22's.
    one_each = {"tableMaxNumTasks": "100", "maxNumSegmentsPerTask": "1"}
    cases: list[tuple[str, str, float, Callable[[], Awaitable[DataRun]]]] = [
        ("purge 20 x 1,000,000 rows", "purge_20x1M", 0.84, lambda: purge(stack, 20, 1_000_000)),
        ("purge 20 x 1,000,000 rows, at the defaults", "purge_20x1M_defaults", 0.84,
         lambda: purge(stack, 20, 1_000_000, {})),
        ("purge 100 x 100,000 rows", "purge_100x100k", 0.8, lambda: purge(stack, 100, 100_000)),
        ("purge 100 x 100,000 rows, at the defaults", "purge_100x100k_defaults", 0.8,
         lambda: purge(stack, 100, 100_000, {})),
        ("purge 100 x 100,000 rows, one segment per subtask (maxNumSegmentsPerTask 1)",
         "purge_100x100k_one_each", 0.0, lambda: purge(stack, 100, 100_000, one_each)),
        ("CSV ingestion 10 x 500,000 rows", "ingest", 0.7, lambda: ingest(stack, 10, 500_000)),
    ]  # fmt: skip
    chosen = [c.strip() for c in os.environ.get("BENCH_DATA_CASES", "").split(",") if c.strip()]
    for metric, key, target, run in cases:
        if chosen and key not in chosen:
            continue
        report_data(report, metric, [await run() for _ in range(rounds)], key, target)
    stack.stop_minions()


if __name__ == "__main__":
    from bench.run import main

    main(only="data")
