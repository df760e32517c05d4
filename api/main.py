"""The FastAPI application: wiring only. `uvicorn api.main:app` or `taskplan api`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from taskplan import __version__
from taskplan.api.auth import AccessControl
from taskplan.api.errors import install_error_handlers
from taskplan.api.limits import RequestSizeLimit
from taskplan.api.openapi_links import install_links
from taskplan.api.origins import CrossSiteGuard, allowed_origins
from taskplan.api.routes import (
    cluster,
    health,
    instances,
    metrics,
    plan_batches,
    schemas,
    segments,
    tables,
    task_admin,
    task_plans,
    task_reads,
    tasks,
    ui,
)
from taskplan.bootstrap import Stack, open_stack
from taskplan.data.parquet import DuckDBConfig
from taskplan.data.segments import SegmentManager, deep_store_of
from taskplan.plans import PlanServices
from taskplan.schedules import ScheduleManager, request_reconciliation

API_THREADS = 32


def create_app(stack: Stack | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Catalog calls run in threads (asyncio.to_thread): enough of them that a burst of triggers does not
        # queue the reads behind it (asyncio's default is cpu_count + 4).
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(API_THREADS, thread_name_prefix="api-catalog")
        )
        current = stack or open_stack()
        # `taskplan api` (server.serve) connects and checks before serving, on this loop: that client.
        connected: Client = getattr(app.state, "client", None) or await current.connect(retries=60)
        app.state.stack = current
        app.state.access = AccessControl.from_settings(current.settings)
        app.state.allowed_origins = allowed_origins(current.settings.allowed_origins)
        app.state.client = connected
        app.state.plans = PlanServices.build(
            connected,
            current.catalog,
            current.plan_options(),
            live_query_timeout_s=current.settings.plan_query_timeout_s,
        )
        app.state.schedules = ScheduleManager(connected)
        # Uploads and drops: one DuckDB thread per request (taskplan.duckdb.threadsPerSubtask is the
        # minions' data subtasks').
        # The API writes an upload's segment to the deep store itself (no minion's disk needed), then
        # commits its metadata; a drop deletes the table's objects through the store.
        deep_store = deep_store_of(current.settings)
        app.state.segments = SegmentManager(
            current.catalog,
            deep_store,
            DuckDBConfig(threads=1, memory_limit=current.settings.duckdb_memory_limit),
        )
        # A schedule is never missing or left over: the catalog is the truth. The reconciliation runs once
        # per cluster, in the ClusterJobs workflow, not in each API process (two would race).
        await request_reconciliation(connected)
        yield

    app = FastAPI(
        title="taskplan",
        version=__version__,
        description="Durable multi-batch task plans (Pinot / StarTree Minion task orchestration) "
        "on Temporal.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(RequestSizeLimit)
    # Outermost: a cross-site request is refused before anything of it is read.
    app.add_middleware(CrossSiteGuard)
    app.include_router(health.router)
    app.include_router(task_plans.router)
    app.include_router(tasks.router)
    app.include_router(task_reads.router)
    app.include_router(task_admin.router)
    app.include_router(instances.router)
    app.include_router(tables.router)
    app.include_router(schemas.router)
    app.include_router(segments.router)
    app.include_router(cluster.router)
    app.include_router(metrics.router)
    app.include_router(plan_batches.router)
    app.include_router(ui.router)
    install_links(app)
    return app


app = create_app()
