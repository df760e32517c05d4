"""Input files stay ingested when a rewrite (purge, merge, schema change) replaces their segments: a later
APPEND plan ingests nothing again (before, a purge's swap forgot the files, so the next ingestion brought the
purged rows back and doubled the kept ones), SYNC replaces or drops the rewritten copy of a changed or
removed file, and refuses, naming the files, a segment a merge shares with unchanged files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taskplan.catalog import Catalog
from taskplan.plugin import TaskConfigError
from taskplan.settings import Settings
from taskplan.tasktypes.alter_table import ALTER_TABLE
from taskplan.tasktypes.file_ingestion import FILE_INGESTION
from taskplan.tasktypes.merge_rollup import MERGE_ROLLUP
from taskplan.tasktypes.segment_purge import SEGMENT_PURGE
from tests.data.test_task_types import ingest_configs, manager_of, name
from tests.support.data import (
    deep_store_leaks,
    event,
    events_schema,
    make_table,
    run_plan_directly,
    table_rows,
    write_csv,
)

PURGE = {"purgeFilter": "country = 'US'"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "input").mkdir()
    return Settings.model_validate({"taskplan.dataDir": str(tmp_path)})


def ids(settings: Settings, catalog: Catalog, table: str) -> list[int]:
    return [r["id"] for r in table_rows(manager_of(settings, catalog), table)]


def test_purged_files_are_not_ingested_again(settings: Settings, catalog: Catalog) -> None:
    table = make_table(catalog, name("repurge"))
    directory = settings.allowed_input_roots[0] / table.raw_table_name
    write_csv(directory / "a.csv", [event(1, "US"), event(2, "FR")])
    write_csv(directory / "b.csv", [event(3, "US"), event(4, "DE")])
    write_csv(directory / "c.csv", [event(5, "FR")])
    append = ingest_configs(directory)
    assert run_plan_directly(FILE_INGESTION, settings, catalog, table, append).total("processed") == 5
    run_plan_directly(SEGMENT_PURGE, settings, catalog, table, PURGE)
    assert ids(settings, catalog, table.tableName) == [2, 4, 5]

    again = run_plan_directly(FILE_INGESTION, settings, catalog, table, append)
    assert again.batches == 0 and ids(settings, catalog, table.tableName) == [2, 4, 5]

    # SYNC: a changed file's purged copy is replaced by its new rows, a removed file's copy dropped.
    write_csv(directory / "a.csv", [event(1, "FR"), event(11, "DE")])
    os.utime(directory / "a.csv", ns=(1, 2_000_000_000_000_000_000))
    (directory / "b.csv").unlink()
    sync = ingest_configs(directory, ingestionMode="SYNC")
    run_plan_directly(FILE_INGESTION, settings, catalog, table, sync)
    assert ids(settings, catalog, table.tableName) == [1, 5, 11]
    assert run_plan_directly(FILE_INGESTION, settings, catalog, table, sync).batches == 0
    assert deep_store_leaks(manager_of(settings, catalog), table.tableName) == set()


def test_altered_and_merged_files_are_not_ingested_again(settings: Settings, catalog: Catalog) -> None:
    table = make_table(catalog, name("remerge"))
    directory = settings.allowed_input_roots[0] / table.raw_table_name
    for f in range(3):
        write_csv(directory / f"part{f}.csv", [event(f * 10 + i) for i in range(2)])
    append = ingest_configs(directory)
    run_plan_directly(FILE_INGESTION, settings, catalog, table, append)
    schema = events_schema(table.raw_table_name)
    catalog.put_schema(schema.model_copy(update={"metricFieldSpecs": []}))  # a column removed
    run_plan_directly(ALTER_TABLE, settings, catalog, table, {})
    catalog.put_schema(schema)
    merge = {"1day.bucketTimePeriod": "1d", "1day.bufferTimePeriod": "1d"}
    assert run_plan_directly(MERGE_ROLLUP, settings, catalog, table, merge).total("segmentsMerged") == 3
    assert len(catalog.segments.visible_segments(table.tableName)) == 1
    expected = [0, 1, 10, 11, 20, 21]
    assert run_plan_directly(FILE_INGESTION, settings, catalog, table, append).batches == 0
    assert ids(settings, catalog, table.tableName) == expected

    # One file changed: its rows share a segment with two unchanged files' rows, which SYNC would lose.
    write_csv(directory / "part0.csv", [event(0, "FR")])
    os.utime(directory / "part0.csv", ns=(1, 2_000_000_000_000_000_000))
    with pytest.raises(TaskConfigError, match=r"also holds the rows of 2 unchanged input file\(s\)"):
        run_plan_directly(
            FILE_INGESTION, settings, catalog, table, ingest_configs(directory, ingestionMode="SYNC")
        )
    assert ids(settings, catalog, table.tableName) == expected
