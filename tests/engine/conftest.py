from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from taskplan.registry import build_registry
from taskplan.service import TaskPlanService
from taskplan.settings import Settings
from tests.support.engine import StaticTables
from tests.support.tasktypes import ALL_SPECS
from worker import WorkerOptions, build_workers, run_workers
from workflows.models import PlanOptions

# Short heartbeat timeout so a killed minion is noticed within seconds.
TEST_OPTIONS = PlanOptions(heartbeat_timeout_s=3, max_failed_batches=3)


@pytest.fixture(scope="session")
def tables() -> StaticTables:
    return StaticTables()


@pytest.fixture(scope="session")
async def engine(temporal_client: Client, tables: StaticTables) -> AsyncIterator[Client]:
    client = temporal_client
    registry = build_registry(ALL_SPECS, entry_points_group=None)
    workers = build_workers(
        client,
        Settings(),
        registry,
        tables,
        WorkerOptions(role="both", max_concurrent_subtasks=50, graceful_shutdown_seconds=2),
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
def table(tables: StaticTables) -> str:
    name = f"t{uuid.uuid4().hex[:12]}_OFFLINE"
    tables.add(name)
    return name
