"""Issue 22, point 5: DataExportTask to PostgreSQL against a plain psycopg COPY of the same Parquet files.
`python -m bench.export_pg [--full]` (full: 20 x 1,000,000 rows, 2 rounds; quick: 10 x 250,000, 3).

The direct side is what one would write by hand: for each segment file, DuckDB writes it as CSV and psycopg
sends the bytes to ``COPY ... FROM STDIN`` in one transaction, one file after the other on one connection.
The plan exports the same files (the segments' own, in the deep store) into another table, with the claim
of each segment in the same transaction. Both tables are on 127.0.0.1:5432, database ``test``, named uniquely
and dropped after each round (with the plan's claims).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import duckdb
import psycopg
from psycopg import sql

from bench.data_plane import SCHEMA, DataRun, make_parquet
from bench.harness import BenchStack, Report, median, new_raw_name
from bench.plans import plan_seconds, run_plan
from taskplan.data.segments import SegmentManager
from taskplan.models.segment import SegmentStatus
from taskplan.models.table import Schema

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
COLUMNS = "id bigint, country text, amount double precision, ts bigint"
EXPORT_LOG_TABLE = "taskplan_exported_segments"


def direct_copy(files: list[Path], table: str) -> float:
    """Seconds for DuckDB -> CSV -> psycopg COPY of ``files`` into ``table`` (created first, untimed)."""
    with psycopg.connect(PG_URL) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), sql.SQL(COLUMNS)))
        conn.commit()
        copy = sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(sql.Identifier(table))
        with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
            csv = Path(tmp) / "rows.csv"
            t0 = time.monotonic()
            with duckdb.connect(config={"threads": 1}) as duck:
                for path in files:
                    duck.execute(
                        f"COPY (SELECT * FROM read_parquet('{path}')) TO '{csv}' "
                        "(FORMAT csv, HEADER false, FORCE_QUOTE (country))"
                    )
                    with conn.transaction(), conn.cursor().copy(copy) as pipe, csv.open("rb") as f:
                        while chunk := f.read(1 << 20):
                            pipe.write(chunk)
            return time.monotonic() - t0


def count_and_drop(table: str, source_table: str | None = None) -> int:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
        if source_table is not None:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE source_table = %s").format(sql.Identifier(EXPORT_LOG_TABLE)),
                (source_table,),
            )
    assert row is not None
    return int(row[0])


async def export_round(stack: BenchStack, segments: int, rows: int) -> DataRun:
    raw = new_raw_name("export")
    stack.catalog.put_schema(Schema.model_validate({"schemaName": raw, **SCHEMA}))
    table = stack.add_table(raw, "REALTIME")
    config = stack.catalog.require_table(table)
    schema = stack.catalog.require_schema(raw)
    manager = SegmentManager.from_settings(stack.settings, stack.catalog)
    files = []
    for s in range(segments):
        staged = manager.deep_store.staging_path(table)
        make_parquet(staged, s * rows, rows)
        segment = manager.describe_file(
            config, schema, staged, f"{raw}_{s}", SegmentStatus.DONE, None, None, 0
        )
        manager.deep_store.publish(staged, table, segment.file_name)
        manager.store.add_segment(segment)
        files.append(manager.deep_store.path(table, segment.file_name))
    direct_table, plan_table = f"{raw}_direct", f"{raw}_plan"
    direct_s = direct_copy(files, direct_table)
    configs = {
        "externalTable.target": PG_URL,
        "externalTable.tableName": plan_table,
        "bufferTimePeriod": "0s",
        "tableMaxNumTasks": str(segments),
    }
    plan = await run_plan(stack, table, "DataExportTask", configs)
    total = segments * rows
    assert count_and_drop(direct_table) == total
    assert count_and_drop(plan_table, table) == total
    manager.drop_table(table)
    return DataRun(plan_seconds(plan), direct_s, total)


async def export_pg(stack: BenchStack, report: Report, full: bool) -> None:
    # Full: two rounds, each 20M rows twice (about 40 minutes on this machine while others load it).
    segments, rows, rounds = (20, 1_000_000, 2) if full else (10, 250_000, 3)
    stack.start_minions(1)
    runs = []
    for i in range(rounds):
        runs.append(await export_round(stack, segments, rows))
        print(f"   round {i + 1}: plan {runs[-1].plan_s:.1f} s, direct {runs[-1].direct_s:.1f} s, "
              f"ratio {runs[-1].direct_s / runs[-1].plan_s:.2f}", flush=True)  # fmt: skip
    stack.stop_minions()
    ratios = [r.direct_s / r.plan_s for r in runs]
    middle = sorted(runs, key=lambda r: r.direct_s / r.plan_s)[len(runs) // 2]
    report.add(
        "22.5 export",
        f"DataExportTask to PostgreSQL {segments} x {rows:,} rows: rows/s, plan vs psycopg COPY direct, "
        f"median of {len(runs)} rounds",
        f"{middle.rows / middle.plan_s / 1e6:.2f}M vs {middle.rows / middle.direct_s / 1e6:.2f}M "
        f"({median(ratios):.2f}; rounds {min(ratios):.2f}-{max(ratios):.2f})",
        ">= 0.7",
        median(ratios) >= 0.7,
    )
    report.data["export_pg"] = [{"plan_s": r.plan_s, "direct_s": r.direct_s, "rows": r.rows} for r in runs]


if __name__ == "__main__":
    from bench.run import main

    main(only="export")
