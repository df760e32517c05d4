"""Scenario 6 on S3: segment purge and CSV ingestion through plans with the deep store and the input files
on a local S3 server (moto's, a real HTTP server process), against a direct script doing the same work
with the same S3 client (obstore, through taskplan.storage) and DuckDB: download, rewrite, upload.
`python -m bench.data_plane_s3 [--full]`; its own Temporal dev server, controller and minion."""

from __future__ import annotations

import shutil
import time

import duckdb

from bench.data_plane import ROWS_SQL, SCHEMA, DataRun, make_parquet, report_data
from bench.harness import BenchStack, Report, bench_stack, new_raw_name
from bench.plans import plan_seconds, run_plan
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import SegmentStatus
from taskplan.models.table import Schema
from taskplan.settings import Settings
from taskplan.storage import ObjectStore, open_store
from tests.support.s3 import MotoServer, start_moto_server


async def purge(stack: BenchStack, store: ObjectStore, segments: int, rows: int) -> DataRun:
    raw = new_raw_name("s3purge")
    stack.catalog.put_schema(Schema.model_validate({"schemaName": raw, **SCHEMA}))
    table = stack.add_table(raw)
    config = stack.catalog.require_table(table)
    schema = stack.catalog.require_schema(raw)
    manager = SegmentManager.from_settings(stack.settings, stack.catalog)
    work = stack.data_dir / f"direct-{raw}"
    work.mkdir()
    for s in range(segments):
        staged = manager.deep_store.staging_path(table)
        make_parquet(staged, s * rows, rows)
        store.put_file(staged, f"direct/{raw}/s{s}.parquet")
        segment = manager.describe_file(
            config, schema, staged, f"{raw}_{s}", SegmentStatus.DONE, None, None, 0
        )
        manager.deep_store.publish(staged, table, segment.file_name)
        manager.store.add_segment(segment)
    predicate = "country = 'US'"
    t0 = time.monotonic()
    with duckdb.connect(config={"threads": 1}) as conn:
        for s in range(segments):
            source, target = work / f"s{s}.parquet", work / f"p{s}.parquet"
            store.get_file(f"direct/{raw}/s{s}.parquet", source)
            conn.execute(
                f"COPY (SELECT * FROM read_parquet('{source}') WHERE NOT coalesce(({predicate}), false)) "
                f"TO '{target}' (FORMAT parquet)"
            )
            store.put_file(target, f"direct/{raw}/p{s}.parquet", move=True)
            source.unlink()
    direct_s = time.monotonic() - t0
    plan = await run_plan(
        stack, table, "SegmentPurgeTask", {"purgeFilter": predicate, "tableMaxNumTasks": str(segments)}
    )
    plan_s = plan_seconds(plan)
    total = segments * rows
    kept = sum(s.total_docs for s in stack.catalog.segments.visible_segments(table))
    assert kept == total - len(range(0, total, 3)), (kept, total)
    manager.drop_table(table)
    store.delete_prefix(f"direct/{raw}/")
    shutil.rmtree(work)
    return DataRun(plan_s, direct_s, total)


async def ingest(stack: BenchStack, store: ObjectStore, bucket: str, files: int, rows: int) -> DataRun:
    raw = new_raw_name("s3ingest")
    stack.catalog.put_schema(Schema.model_validate({"schemaName": raw, **SCHEMA}))
    table = stack.add_table(raw)
    work = stack.data_dir / f"direct-{raw}"
    work.mkdir()
    with duckdb.connect() as conn:
        for f in range(files):
            query = ROWS_SQL.format(start=f * rows, end=(f + 1) * rows)
            conn.execute(f"COPY ({query}) TO '{work / 'in.csv'}' (FORMAT csv, HEADER)")
            store.put_file(work / "in.csv", f"in/{raw}/part{f}.csv", move=True)
    t0 = time.monotonic()
    with duckdb.connect(config={"threads": 1}) as conn:
        for f in range(files):
            source, target = work / f"part{f}.csv", work / f"{f}.parquet"
            store.get_file(f"in/{raw}/part{f}.csv", source)
            conn.execute(
                f"COPY (SELECT * FROM read_csv('{source}', header=true, columns="
                "{'id': 'BIGINT', 'country': 'VARCHAR', 'amount': 'DOUBLE', 'ts': 'BIGINT'})) "
                f"TO '{target}' (FORMAT parquet)"
            )
            store.put_file(target, f"direct/{raw}/{f}.parquet", move=True)
            source.unlink()
    direct_s = time.monotonic() - t0
    configs = {"inputDirURI": f"s3://{bucket}/in/{raw}", "inputFormat": "csv", "tableMaxNumTasks": str(files)}
    plan = await run_plan(stack, table, "FileIngestionTask", configs)
    plan_s = plan_seconds(plan)
    total = files * rows
    assert sum(s.total_docs for s in stack.catalog.segments.visible_segments(table)) == total
    SegmentManager.from_settings(stack.settings, stack.catalog).drop_table(table)
    store.delete_prefix(f"direct/{raw}/")
    store.delete_prefix(f"in/{raw}/")
    shutil.rmtree(work)
    return DataRun(plan_s, direct_s, total)


async def data_plane_s3(_: BenchStack, report: Report, full: bool) -> None:
    """The issue's sizes in both modes, as the local scenario (20 x 1,000,000-row segments, 10 x 500,000-row
    CSV files): 3 rounds quick, 5 full. One minion, as in the local scenario."""
    rounds, purge_rows, csv_rows = (5 if full else 3), 1_000_000, 500_000
    server: MotoServer = start_moto_server()
    try:
        bucket = server.create_bucket()
        properties = {
            "taskplan.deepStore.dir": f"s3://{bucket}/deep",
            "taskplan.ingestion.allowedRoots": f"s3://{bucket}/in",
            **server.properties(),
        }
        minion_env = {
            **server.env(),
            "TASKPLAN_PROP_taskplan.deepStore.dir": properties["taskplan.deepStore.dir"],
            "TASKPLAN_PROP_taskplan.ingestion.allowedRoots": properties["taskplan.ingestion.allowedRoots"],
        }
        store = open_store(f"s3://{bucket}", Settings.model_validate(server.properties()))
        async with bench_stack(properties, minion_env) as stack:
            stack.start_minions(1)
            # Not measured: the minion process starting up (it polls only after its imports and connections,
            # which take seconds on a busy machine) and its first S3 and DuckDB connections.
            await purge(stack, store, 2, 1000)
            purges = [await purge(stack, store, 20, purge_rows) for _ in range(rounds)]
            report_data(report, f"S3: purge 20 x {purge_rows:,} rows", purges, "s3_purge")
            ingests = [await ingest(stack, store, bucket, 10, csv_rows) for _ in range(rounds)]
            report_data(report, f"S3: CSV ingestion 10 x {csv_rows:,} rows", ingests, "s3_ingest")
            stack.stop_minions()
    finally:
        server.stop()


if __name__ == "__main__":
    from bench.run import main

    main(only="data-s3")
