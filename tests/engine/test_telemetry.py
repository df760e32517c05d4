"""Traces from an API request through the workflows and activities; the Temporal SDK's own metrics."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from taskplan.binaries import temporal_cli
from taskplan.catalog import Catalog
from taskplan.names import SearchAttributes
from taskplan.registry import build_registry
from taskplan.settings import Settings
from taskplan.telemetry import install_tracer_provider
from taskplan.temporal import connect
from taskplan.worker import WorkerOptions, build_workers, run_workers
from tests.api.test_tables_and_triggers_api import COUNTING, wait_inactive
from tests.support.api import api_client
from tests.support.engine import add_table
from tests.support.tasktypes import ALL_SPECS


async def test_one_trace_runs_from_the_request_to_the_subtasks(tables: Catalog, data_dir: Path) -> None:
    exporter = InMemorySpanExporter()
    install_tracer_provider(exporter)  # as `otel.exporter.otlp.endpoint` would, with an in-memory exporter
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), search_attributes=SearchAttributes.ALL
    )
    try:
        settings = Settings.model_validate(
            {
                "temporal.address": env.client.service_client.config.target_host,
                "taskplan.dataDir": str(data_dir),
            }
        )
        client = await connect(settings)  # carries the tracing interceptor now
        workers = build_workers(
            client,
            settings,
            build_registry(ALL_SPECS, entry_points_group=None),
            tables,
            WorkerOptions(role="both", graceful_shutdown_seconds=1),
            catalog=tables,
        )
        stop = asyncio.Event()
        running = asyncio.create_task(run_workers(workers, stop))
        table = add_table(tables, f"trace{uuid.uuid4().hex[:8]}_OFFLINE")
        try:
            async with api_client(client, tables, {"taskplan.dataDir": str(data_dir)}) as http:
                body = {
                    "taskType": COUNTING,
                    "tableName": table,
                    "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "1"},
                }
                response = await http.post("/tasks/execute", json=body)
                assert response.status_code == 200, response.text
                await wait_inactive(http, response.json()["taskPlanId"])
        finally:
            stop.set()
            await running
    finally:
        await env.shutdown()
    provider = trace.get_tracer_provider()
    assert isinstance(provider, SdkTracerProvider)
    provider.force_flush()
    spans = exporter.get_finished_spans()
    # FastAPI traces its requests itself: the request span is the root of the trace.
    roots = [s for s in spans if s.name == "POST /tasks/execute" and s.parent is None]
    assert len(roots) == 1, [s.name for s in spans]
    trace_id = roots[0].context.trace_id if roots[0].context else None
    names = {s.name for s in spans if s.context is not None and s.context.trace_id == trace_id}
    exporter.clear()
    for expected in (
        "StartWorkflow:TaskPlan",
        "RunWorkflow:TaskPlan",
        "RunActivity:next_batch",  # record the last batch, ask the gate, generate: one local activity
        "StartActivity:run_subtask",  # the plan runs its batch's subtasks itself
        "RunActivity:run_subtask",
    ):
        assert expected in names, (expected, sorted(names))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_temporal_sdk_metrics_are_served(temporal_client: Client) -> None:
    port = free_port()
    settings = Settings.model_validate(
        {
            "temporal.address": temporal_client.service_client.config.target_host,
            "temporal.sdk.metricsPort": str(port),
        }
    )
    client = await connect(settings)
    await client.count_workflows()
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert "temporal_request" in text
