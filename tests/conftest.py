"""Shared fixtures: a real Temporal dev server for the session, fresh task queues per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from taskplan.binaries import temporal_cli
from taskplan.catalog import Catalog
from taskplan.names import SearchAttributes
from taskplan.registry import build_registry
from taskplan.service import TaskPlanService
from taskplan.settings import Settings
from tests.support.engine import TEST_OPTIONS, add_table
from tests.support.tasktypes import ALL_SPECS
from worker import WorkerOptions, build_workers, run_workers


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SearchAttributes.ALL,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    """A client with the project's data converter (pydantic, camelCase JSON)."""
    return await Client.connect(
        temporal_env.client.service_client.config.target_host, data_converter=pydantic_data_converter
    )


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


@pytest.fixture(scope="session")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The session's catalog (a SQLite file): the engine's table configs come from it."""
    catalog = Catalog(f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.db'}")
    catalog.migrate()
    return catalog


@pytest.fixture(scope="session")
async def engine(temporal_client: Client, tables: Catalog) -> AsyncIterator[Client]:
    client = temporal_client
    registry = build_registry(ALL_SPECS, entry_points_group=None)
    workers = build_workers(
        client,
        Settings(),
        registry,
        tables,
        WorkerOptions(role="both", max_concurrent_subtasks=50, graceful_shutdown_seconds=2),
        catalog=tables,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_workers(workers, stop))
    yield client
    stop.set()
    await task


@pytest.fixture
def service(engine: Client) -> TaskPlanService:
    return TaskPlanService(engine, TEST_OPTIONS)


@pytest.fixture
def table(tables: Catalog) -> str:
    name = f"t{uuid.uuid4().hex[:12]}_OFFLINE"
    add_table(tables, name)
    return name
