"""A dropped table's gauge series leave /metrics (found by `make soak`: every table ever seen kept its series,
in memory and on every scrape, up to OpenTelemetry's 2,000 per instrument and then an overflow series)."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from taskplan.catalog import Catalog
from taskplan.metrics import OrchestrationMetrics, forget_dropped_tables, metrics, prometheus_text
from taskplan.plans import PlanServices
from taskplan.progress import ProgressPoller
from tests.api.test_metrics import start
from tests.api.test_tables_and_triggers_api import create_table, new_name, wait_inactive


def series_of(text: str, table: str) -> set[str]:
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("tableNameWithType") == table
    }


async def test_a_dropped_tables_gauges_leave_at_the_next_poll(
    http: httpx.AsyncClient, plans: PlanServices, tables: Catalog
) -> None:
    table = await create_table(http, new_name())
    kept = await create_table(http, new_name())
    for name in (table, kept):
        await wait_inactive(http, await start(http, name, numBatches="1"))
    poller = ProgressPoller(plans.reconciler, plans.reader, table_names=tables.table_names)
    gauges = metrics()
    for name in (table, kept):  # what the poll sets for a plan it saw active
        gauges.task_plan_inputs_to_process.set(1, OrchestrationMetrics.attributes(name, "NoOpTask"))
    await poller.poll_once()
    text = (await http.get("/metrics")).text
    assert {"taskPlanProgressionBlocked", "taskPlanInputsToProcess"} <= series_of(text, table)

    assert (await http.delete(f"/tables/{table}")).status_code == 200
    await poller.poll_once()
    text = (await http.get("/metrics")).text
    assert series_of(text, table) == set()
    assert {"taskPlanProgressionBlocked", "taskPlanInputsToProcess"} <= series_of(text, kept)


def test_thousands_of_dropped_tables_leave_no_series_and_no_overflow(tables: Catalog) -> None:
    prefix = f"gone{uuid.uuid4().hex[:8]}"
    gauges = metrics()
    for i in range(2_100):  # more than OpenTelemetry's 2,000 series per instrument
        attrs = OrchestrationMetrics.attributes(f"{prefix}{i}_OFFLINE", "NoOpTask")
        gauges.task_plan_progression_blocked.set(1, attrs)
        gauges.task_plan_inputs_processed.set(i, attrs)
    text = prometheus_text().decode()
    assert "otel_metric_overflow" not in text  # every table's own series, the last ones too
    last = series_of(text, f"{prefix}2099_OFFLINE")
    assert last == {"taskPlanProgressionBlocked", "taskPlanInputsProcessed"}
    # None of these tables exists in the catalog: all their series go.
    assert forget_dropped_tables(tables.table_names, force=True) >= 4_200
    assert prefix not in prometheus_text().decode()
