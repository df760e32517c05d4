"""Concurrent POST /ingestFromFile to one REALTIME table through real HTTP: from threads against one API,
and against two API processes sharing the catalog and data directory, on SQLite and on PostgreSQL. Every
row answered 200 is kept exactly once, across flushes of the consuming segment, and no file is left over."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.catalog.segments import SegmentStatus
from taskplan.data.parquet import read_rows
from taskplan.runtime import wait_for_port
from tests.api.test_tables_and_triggers_api import new_name
from tests.chaos.cluster import REPO, free_port
from tests.support.api import live_api

FLUSH_ROWS = 700
CALLS, ROWS_PER_CALL = 20, 100


@dataclass
class Store:
    url: str
    data_dir: Path

    def catalog(self) -> Catalog:
        return Catalog(self.url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'catalog.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    catalog = Catalog(url)
    catalog.migrate()
    catalog.close()
    return Store(url, data_dir)


def json_rows(start: int, count: int) -> bytes:
    return "".join(
        json.dumps({"id": i, "country": "US"}) + "\n" for i in range(start, start + count)
    ).encode()


def post_rows(url: str, table: str, start: int) -> int:
    response = httpx.post(
        f"{url}/ingestFromFile",
        params={"tableNameWithType": table, "batchConfigMapStr": json.dumps({"inputFormat": "json"})},
        files={"file": ("rows.json", json_rows(start, ROWS_PER_CALL), "application/octet-stream")},
        timeout=120,
    )
    assert response.status_code in (200, 409), response.text
    return response.status_code


async def create_realtime_table(url: str) -> str:
    raw = new_name()
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        schema = {
            "schemaName": raw,
            "dimensionFieldSpecs": [
                {"name": "id", "dataType": "LONG"},
                {"name": "country", "dataType": "STRING"},
            ],
        }
        assert (await http.post("/schemas", json=schema)).status_code == 200
        config = {
            "tableName": raw,
            "tableType": "REALTIME",
            "tableIndexConfig": {"streamConfigs": {"realtime.segment.flush.threshold.rows": str(FLUSH_ROWS)}},
        }
        response = await http.post("/tables", json=config)
        assert response.status_code == 200, response.text
    return f"{raw}_REALTIME"


async def ingest_concurrently(urls: list[str], table: str) -> list[int]:
    """CALLS posts at once from as many threads, spread over the APIs; ids of call i: i*100 .. i*100+99."""

    def call(i: int) -> int:
        return post_rows(urls[i % len(urls)], table, i * ROWS_PER_CALL)

    with ThreadPoolExecutor(CALLS) as pool:
        futures = [asyncio.wrap_future(pool.submit(call, i)) for i in range(CALLS)]
        statuses = await asyncio.gather(*futures)
    return [i for i, status in enumerate(statuses) if status == 200]


def assert_kept_exactly_once(store: Store, table: str, accepted: list[int]) -> None:
    catalog = store.catalog()
    try:
        segments = catalog.segments.all_segments(table)
    finally:
        catalog.close()
    directory = store.data_dir / "deepstore" / table
    ids = sorted(r["id"] for s in segments for r in read_rows(directory / s.file_name))
    expected = sorted(i * ROWS_PER_CALL + k for i in accepted for k in range(ROWS_PER_CALL))
    assert ids == expected
    assert sum(s.total_docs for s in segments) == len(expected)
    consuming = [s for s in segments if s.status is SegmentStatus.IN_PROGRESS]
    assert len(consuming) <= 1
    assert all(s.total_docs >= FLUSH_ROWS for s in segments if s.status is SegmentStatus.DONE)
    assert sum(s.status is SegmentStatus.DONE for s in segments) == len(expected) // FLUSH_ROWS
    assert sorted(p.name for p in directory.iterdir()) == sorted(s.file_name for s in segments)


async def test_concurrent_ingests_through_one_api_keep_every_row(engine: Client, store: Store) -> None:
    catalog = store.catalog()
    try:
        async with live_api(engine, catalog, {"taskplan.dataDir": str(store.data_dir)}) as url:
            table = await create_realtime_table(url)
            accepted = await ingest_concurrently([url], table)
    finally:
        catalog.close()
    assert len(accepted) == CALLS  # one process retries its lost races: none is refused
    assert_kept_exactly_once(store, table, accepted)


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


@asynccontextmanager
async def api_process(engine: Client, store: Store) -> AsyncIterator[str]:
    port = free_port()
    process = start_api(engine.service_client.config.target_host, store, port)
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 60, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)


async def test_concurrent_ingests_through_two_api_processes_keep_every_row(
    engine: Client, store: Store
) -> None:
    async with api_process(engine, store) as first, api_process(engine, store) as second:
        table = await create_realtime_table(first)
        accepted = await ingest_concurrently([first, second], table)
    assert len(accepted) == CALLS
    assert_kept_exactly_once(store, table, accepted)
