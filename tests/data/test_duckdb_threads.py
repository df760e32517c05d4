"""DuckDB's threads per connection are handed down from the settings (taskplan.duckdb.threadsPerSubtask),
never set for the whole process: building a worker leaves every other DuckDB user of the process as it was."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.data.parquet import DuckDBConfig
from taskplan.data.segments import SegmentManager
from taskplan.registry import build_registry
from taskplan.settings import Settings
from taskplan.worker import WorkerOptions, build_workers
from tests.support.tasktypes import ALL_SPECS


def threads(config: DuckDBConfig, directory: Path) -> int:
    with config.pooled(directory) as conn:
        row = conn.execute("SELECT current_setting('threads')").fetchone()
    assert row is not None
    return int(row[0])


async def test_a_workers_threads_are_its_own(
    temporal_client: Client, tables: Catalog, tmp_path: Path
) -> None:
    settings = Settings.model_validate(
        {"taskplan.dataDir": str(tmp_path), "taskplan.duckdb.threadsPerSubtask": "3"}
    )
    registry = build_registry(ALL_SPECS, entry_points_group=None)
    options = WorkerOptions(role="minion", tags=[f"threads{uuid.uuid4().hex[:8]}"])  # task queues of its own
    build_workers(temporal_client, settings, registry, tables, options, tables)
    # The worker's segment files are written with the configured threads; anyone else keeps their own.
    assert threads(SegmentManager.from_settings(settings, tables).duckdb_config, tmp_path) == 3
    assert threads(DuckDBConfig(), tmp_path) == 1
    assert threads(DuckDBConfig(threads=2), tmp_path) == 2  # pooled apart from the others
