"""Concurrent POST /ingestFromFile to one REALTIME table through real HTTP: from threads against one API,
and against two API processes sharing the catalog and data directory, on SQLite and on PostgreSQL. Every
row answered 200 is kept exactly once, across flushes of the consuming segment, and no file is left over."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from taskplan.data.parquet import DuckDBConfig, read_rows
from taskplan.models.segment import SegmentStatus
from tests.api.test_tables_and_triggers_api import new_name
from tests.support.api import live_api
from tests.support.api_process import Store, api_process, clear_store, make_store

FLUSH_ROWS = 700
CALLS, ROWS_PER_CALL = 20, 100


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    postgres = request.param == "postgresql"
    made = make_store(tmp_path, request.getfixturevalue("postgres_url") if postgres else None)
    yield made
    clear_store(made)


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
    ids = sorted(r["id"] for s in segments for r in read_rows(directory / s.file_name, DuckDBConfig()))
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


async def test_concurrent_ingests_through_two_api_processes_keep_every_row(
    engine: Client, store: Store
) -> None:
    async with api_process(engine, store) as first, api_process(engine, store) as second:
        table = await create_realtime_table(first.url)
        accepted = await ingest_concurrently([first.url, second.url], table)
    assert len(accepted) == CALLS
    assert_kept_exactly_once(store, table, accepted)
