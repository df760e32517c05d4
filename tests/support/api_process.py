"""Stores (catalog URL and data directory) on SQLite or PostgreSQL, and ``taskplan api`` as a process of
its own on one, as a deployment runs it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.catalog.schema import metadata
from taskplan.runtime import wait_for_port
from tests.chaos.cluster import REPO, free_port


@dataclass
class Store:
    url: str
    data_dir: Path

    def catalog(self) -> Catalog:
        return Catalog(self.url)


def make_store(tmp_path: Path, postgres_url: str | None = None) -> Store:
    """A migrated catalog (PostgreSQL at ``postgres_url``, else a SQLite file) and a data directory."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = postgres_url or f"sqlite:///{data_dir / 'catalog.db'}"
    catalog = Catalog(url)
    catalog.migrate()
    catalog.close()
    return Store(url, data_dir)


def clear_store(store: Store) -> None:
    """Delete every row of the store's catalog (a PostgreSQL database is shared by the session's tests)."""
    catalog = store.catalog()
    try:
        with catalog.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
    finally:
        catalog.close()


def start_api(temporal_address: str, store: Store, port: int) -> subprocess.Popen[bytes]:
    """``taskplan api`` in a process of its own, on the store's catalog and data directory."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_address,
        "TASKPLAN_DATADIR": str(store.data_dir),
        "TASKPLAN_CATALOG_URL": store.url,
    }
    with (store.data_dir / f"api-{port}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "taskplan.cli", "api", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@dataclass
class RunningApi:
    url: str
    pid: int


@asynccontextmanager
async def api_process(engine: Client, store: Store) -> AsyncIterator[RunningApi]:
    port = free_port()
    process = start_api(engine.service_client.config.target_host, store, port)
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 60, process)
        yield RunningApi(f"http://127.0.0.1:{port}", process.pid)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
