"""Shared fixtures: a real Temporal dev server for the session, fresh task queues per test."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from taskplan.binaries import temporal_cli
from taskplan.catalog import Catalog
from taskplan.catalog.schema import metadata
from taskplan.names import SearchAttributes
from taskplan.plans import PlanServices
from taskplan.registry import build_registry
from taskplan.settings import Settings
from taskplan.worker import WorkerOptions, build_workers, run_workers
from tests.support.api import api_client
from tests.support.engine import TEST_OPTIONS, add_table
from tests.support.s3 import moto_server  # noqa: F401  (one moto server per session, started on first use)
from tests.support.tasktypes import ALL_SPECS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def temporal_ui_port() -> int:
    """The dev server's Web UI (tests/ui drive it in a browser)."""
    return free_port()


@pytest.fixture(scope="session")
async def temporal_env(temporal_ui_port: int) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SearchAttributes.ALL,
        dev_server_log_level="error",
        ui=True,
        ui_port=temporal_ui_port,
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
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's data directory: deep store, input/ and export/ roots, the catalog file."""
    path = tmp_path_factory.mktemp("data")
    for sub in ("input", "export"):
        (path / sub).mkdir()
    return path.resolve()


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> Settings:
    return Settings.model_validate({"taskplan.dataDir": str(data_dir)})


@pytest.fixture(scope="session")
def tables(data_dir: Path) -> Catalog:
    """The session's catalog (a SQLite file): the engine's table configs come from it."""
    catalog = Catalog(f"sqlite:///{data_dir / 'catalog.db'}")
    catalog.migrate()
    return catalog


@pytest.fixture(scope="session")
async def engine(temporal_client: Client, tables: Catalog, settings: Settings) -> AsyncIterator[Client]:
    client = temporal_client
    registry = build_registry(ALL_SPECS, entry_points_group=None)
    workers = build_workers(
        client,
        settings,
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
async def http(engine: Client, tables: Catalog, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the real API app, on the session's engine, catalog and data directory."""
    async with api_client(engine, tables, {"taskplan.dataDir": str(data_dir)}) as client:
        yield client


@pytest.fixture
def plans(engine: Client, tables: Catalog) -> PlanServices:
    """The client side's services, on the session's engine and catalog."""
    return PlanServices.build(engine, tables, TEST_OPTIONS)


@pytest.fixture
def table(tables: Catalog) -> str:
    name = f"t{uuid.uuid4().hex[:12]}_OFFLINE"
    add_table(tables, name)
    return name


# ---------------------------------------------------------------- catalogs on both databases

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"taskplan_test_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sqlalchemy.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {exc}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    cat = Catalog(url)
    cat.migrate()
    yield cat
    if request.param == "postgresql":
        with cat.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
    cat.close()


@pytest.fixture
def minion_procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
