"""The API with its deep store on S3 (a real moto server process): ``POST /ingestFromFile`` writes the
segment's object itself and then commits its metadata, and a table drop deletes the table's objects, so
the API shares no disk with the minions; an ``s3://`` location outside the allowed roots is a 400."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.settings import Settings
from taskplan.storage import ObjectStore, open_store
from tests.data.test_data_plans import create, csv_bytes, execute, ingest, segments
from tests.support.api import api_client
from tests.support.data import event
from tests.support.s3 import MotoServer


@pytest.fixture(scope="module")
def bucket(moto_server: MotoServer) -> str:
    return moto_server.create_bucket()


@pytest.fixture
def api_dir(tmp_path: Path) -> Path:
    return tmp_path / "api-data"


@pytest.fixture
async def s3_http(
    engine: Client, tables: Catalog, moto_server: MotoServer, bucket: str, api_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    properties = {
        "taskplan.dataDir": str(api_dir),
        "taskplan.deepStore.dir": f"s3://{bucket}/deep",
        **moto_server.properties(),
    }
    async with api_client(engine, tables, properties) as client:
        yield client


@pytest.fixture
def store(moto_server: MotoServer, bucket: str) -> ObjectStore:
    return open_store(f"s3://{bucket}/deep", Settings.model_validate(moto_server.properties()))


def parquet_files(directory: Path) -> list[Path]:
    return list(directory.rglob("*.parquet"))


async def test_uploads_and_drops_go_through_the_store(
    s3_http: httpx.AsyncClient, store: ObjectStore, api_dir: Path, tmp_path: Path
) -> None:
    raw = f"s3api{uuid.uuid4().hex[:8]}"
    table = await create(s3_http, raw)
    response = await ingest(s3_http, table, csv_bytes([event(1), event(2), event(3)], tmp_path))
    assert response.status_code == 200, response.text
    [segment] = await segments(s3_http, table)
    assert segment["segment.total.docs"] == "3"
    [name] = (await s3_http.get(f"/segments/{table}")).json()[0]["OFFLINE"]
    assert [i.key for i in store.list(f"{table}/")] == [f"{table}/{name}.parquet"]

    realtime = await create(
        s3_http,
        raw,
        "REALTIME",
        tableIndexConfig={"streamConfigs": {"realtime.segment.flush.threshold.rows": "4"}},
    )
    for start in (0, 2):
        appended = await ingest(s3_http, realtime, csv_bytes([event(start), event(start + 1)], tmp_path))
        assert appended.status_code == 200, appended.text
    [committed] = await segments(s3_http, realtime)
    assert committed["segment.realtime.status"] == "DONE" and committed["segment.total.docs"] == "4"
    assert len(store.list(f"{realtime}/")) == 1  # each append's earlier version deleted
    assert parquet_files(api_dir) == []  # nothing of the deep store on the API's disk

    assert (await s3_http.delete(f"/tables/{raw}")).status_code == 200  # both types
    assert store.list(f"{table}/") == [] and store.list(f"{realtime}/") == []


async def test_an_s3_location_outside_the_allowed_roots_is_a_400(
    s3_http: httpx.AsyncClient, bucket: str
) -> None:
    table = await create(s3_http, f"s3bad{uuid.uuid4().hex[:8]}")
    response = await execute(
        s3_http, "FileIngestionTask", table, inputDirURI=f"s3://{bucket}/deep", inputFormat="csv"
    )
    assert response.status_code == 400, response.text
    assert "outside the allowed roots" in response.json()["error"]
    dotted = await execute(
        s3_http, "FileIngestionTask", table, inputDirURI=f"s3://{bucket}/in/../deep", inputFormat="csv"
    )
    assert dotted.status_code == 400 and "'..' segment" in dotted.json()["error"]
