"""The cleanup sweep goes on table by table: one whose removal fails is logged and reported, the others are
still cleaned up."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest
from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.cleanup import PlanJanitor
from taskplan.models.task import GeneratedBatch
from taskplan.names import task_name
from taskplan.plans import PlanServices


def record_batch(catalog: Catalog, table: str) -> None:
    """A batch's task record whose table is not in the catalog: an orphan for the sweep."""
    catalog.tasks.record_started(
        task_name("TestCountingTask", int(time.time() * 1000)),
        table_name=table,
        plan_id=f"plan-{uuid.uuid4().hex}",
        batch_sequence=0,
        submitted_ms=int(time.time() * 1000),
        batch=GeneratedBatch(subtasks=[{"index": "0"}]),
    )


async def test_a_table_whose_removal_fails_does_not_stop_the_sweep(
    engine: Client, plans: PlanServices, tables: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    # Temporal refuses a visibility query with a NUL in it: removing this table fails (after the client's
    # retries). It sorts first, so it used to end the sweep before the other orphan.
    bad = f"\x00bad{uuid.uuid4().hex[:8]}_OFFLINE"
    good = f"gone{uuid.uuid4().hex[:8]}_OFFLINE"
    record_batch(tables, bad)
    record_batch(tables, good)
    janitor = PlanJanitor(engine, plans.remover, tables, interval_s=3600, retention_s=10**9)
    try:
        with caplog.at_level(logging.ERROR, logger="taskplan.cleanup"):
            report = await janitor.sweep_once()
        assert report.orphans.get(good) == 1  # its task record
        assert good not in await asyncio.to_thread(tables.tasks.table_names)
        assert list(report.failed) == [bad] and "removing the plans" in report.failed[bad]
        assert any(bad in r.getMessage() for r in caplog.records)
    finally:
        await asyncio.to_thread(tables.tasks.delete_tables, [bad])
