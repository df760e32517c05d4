"""The gate's in-flight query (`TaskStore.in_flight`, run by every batch step) against a growing `tp_tasks`:
its time with the batch records a deployment keeps (ended plans' records stay for
`taskplan.plan.retentionSeconds`, 7 days), without and with an index on `state`. Used by README "Sizing a
deployment". `python -m bench.catalog_scan [--rows 20000,100000] [--catalog-url postgresql://...]`
(a PostgreSQL URL: a fresh database there, dropped afterwards; default a SQLite file in a temporary
directory). The index is created here only, by hand: the catalog's schema does not have it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from taskplan.catalog import Catalog
from taskplan.catalog.schema import tasks

BATCH_JSON = 4_000  # bytes of a batch record's batch_json + result_json, as measured by bench/sizing.py
RUNNING = 100  # batches running at once


def fill(catalog: Catalog, start: int, count: int) -> None:
    body = "x" * (BATCH_JSON // 2)
    rows = [
        {
            "task_name": f"Task_FileIngestionTask_{i}",
            "task_type": "FileIngestionTask",
            "table_name": f"t{i % 10_000}_OFFLINE",
            "plan_id": f"t{i % 10_000}_OFFLINE__FileIngestionTask__{i}",
            "batch_sequence": 0,
            "state": "IN_PROGRESS" if i < RUNNING else "COMPLETED",
            "num_subtasks": 4,
            "num_failed": 0,
            "inputs_in_batch": 4,
            "submitted_ms": i,
            "finished_ms": i,
            "message": "",
            "batch_json": body,
            "result_json": body,
        }
        for i in range(start, start + count)
    ]
    with catalog.engine.begin() as conn:
        for first in range(0, len(rows), 5_000):
            conn.execute(sa.insert(tasks), rows[first : first + 5_000])


def timed_ms(catalog: Catalog, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        assert sum(catalog.tasks.in_flight().values()) == 4 * RUNNING
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)[len(times) // 2]


def scan(url: str, sizes: list[int]) -> list[tuple[int, float, float]]:
    catalog = Catalog(url)
    catalog.migrate()
    results = []
    have = 0
    for size in sizes:
        fill(catalog, have, size - have)
        have = size
        plain = timed_ms(catalog)
        with catalog.engine.begin() as conn:
            conn.exec_driver_sql("CREATE INDEX ix_scan_state ON tp_tasks (state)")
            if catalog.engine.dialect.name == "postgresql":
                conn.exec_driver_sql("ANALYZE tp_tasks")
        indexed = timed_ms(catalog)
        with catalog.engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_scan_state")
        results.append((size, plain, indexed))
        print(
            f"{size:>9,} batch records: in_flight {plain:8.1f} ms; with an index on state {indexed:6.1f} ms"
        )
    catalog.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="20000,100000", help="tp_tasks sizes, comma-separated, increasing")
    parser.add_argument("--catalog-url", help="a PostgreSQL URL (a new database is made there)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.rows.split(",")]
    if not args.catalog_url:
        with tempfile.TemporaryDirectory() as tmp:
            scan(f"sqlite:///{Path(tmp) / 'catalog.db'}", sizes)
        return
    name = f"taskplan_scan_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.catalog_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        scan(sa.make_url(args.catalog_url).set(database=name).render_as_string(hide_password=False), sizes)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
