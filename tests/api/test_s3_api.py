"""The API with its deep store on S3 (a real moto server process): ``POST /ingestFromFile`` writes the
segment's object itself and then commits its metadata, and a table drop deletes the table's objects, so
the API shares no disk with the minions; an ``s3://`` location outside the allowed roots is a 400."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from taskplan.binaries import temporal_cli
from taskplan.catalog import Catalog
from taskplan.data.maintenance import SegmentMaintenance
from taskplan.data.segments import SegmentManager
from taskplan.names import SearchAttributes
from taskplan.registry import build_registry
from taskplan.settings import Settings
from taskplan.storage import ObjectStore, open_store
from taskplan.worker import WorkerOptions, build_workers, run_workers
from tests.data.test_data_plans import create, csv_bytes, execute, ingest, segments
from tests.support.api import api_client
from tests.support.data import event
from tests.support.s3 import MotoServer, free_port
from tests.support.tasktypes import ALL_SPECS


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


SECRET = "taskplan.storage.s3.secretAccessKey"
ENDPOINT = "taskplan.storage.s3.endpointUrl"
INPUT_ROOTS = "taskplan.ingestion.allowedRoots"
EXPORT_ROOTS = "taskplan.export.allowedRoots"


@pytest.fixture(scope="module")
async def own_server() -> AsyncIterator[Client]:
    """A dev server of this module's own: the task configs are checked by a controller worker (the API has
    no generators), and its settings (the S3 connection, the allowed roots) are what a case changes, so each
    case runs a controller of its own, which must be the only one polling."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SearchAttributes.ALL,
        dev_server_log_level="error",
    )
    try:
        yield await Client.connect(
            env.client.service_client.config.target_host, data_converter=pydantic_data_converter
        )
    finally:
        await env.shutdown()


@asynccontextmanager
async def controller_and_api(
    client: Client, catalog: Catalog, properties: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    """A controller worker and the API, both with ``properties``, as two hosts of a deployment have."""
    workers = build_workers(
        client,
        Settings.model_validate(properties),
        build_registry(ALL_SPECS, entry_points_group=None),
        catalog,
        WorkerOptions(role="controller", graceful_shutdown_seconds=1),
        catalog=catalog,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(workers, stop))
    try:
        async with api_client(client, catalog, properties) as http:
            yield http
    finally:
        stop.set()
        await running


async def test_bad_s3_input_is_a_400_when_triggered_and_nothing_is_written(
    own_server: Client,
    moto_server: MotoServer,
    bucket: str,
    store: ObjectStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through the real API against the moto server: a URI outside the allowed roots (another bucket, a
    sibling prefix, a ``..``), and an ingestion input or export target in a store that cannot be listed
    (wrong credentials, a missing bucket, an unreachable endpoint) are refused with a 400 saying why (the
    store's own message), never a 500; no plan starts, no object and no segment appears, and no secret is in
    an answer, the cluster configs or a log record."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.migrate()
    secrets = [moto_server.secret_access_key, "wrong-secret-value"]
    good = {
        "taskplan.dataDir": str(tmp_path / "data"),
        "taskplan.deepStore.dir": f"s3://{bucket}/deep",
        INPUT_ROOTS: f"s3://{bucket}/in",
        EXPORT_ROOTS: f"s3://{bucket}/out",
        **moto_server.properties(),
    }
    missing = "no-such-bucket-tp"
    cases = [  # what is wrong, the controller's and the API's properties, the URIs' bucket, the message
        ("outside the roots", good, bucket, "outside the allowed roots"),
        ("wrong credentials", {**good, SECRET: "wrong-secret-value"}, bucket, "SignatureDoesNotMatch"),
        ("missing bucket", {**good, INPUT_ROOTS: f"s3://{missing}/in", EXPORT_ROOTS: f"s3://{missing}/out"},
         missing, "NoSuchBucket"),
        ("unreachable endpoint", {**good, ENDPOINT: f"http://127.0.0.1:{free_port()}"}, bucket, "127.0.0.1"),
    ]  # fmt: skip
    tables = []
    for case, properties, where, said in cases:
        raw = f"s3refused{uuid.uuid4().hex[:8]}"
        async with controller_and_api(own_server, catalog, properties) as http:
            offline = await create(http, raw)
            realtime = await create(http, raw, "REALTIME")
            tables += [offline, realtime]
            inputs = [f"s3://{where}/in/{raw}"]
            targets = [f"s3://{where}/out/{raw}"]
            if case == "outside the roots":
                inputs = [
                    f"s3://{bucket}/deep/{raw}",
                    f"s3://{bucket}/in-evil/{raw}",
                    f"s3://other-{bucket}/in",
                ]
                targets = [
                    f"s3://{bucket}/in/{raw}",
                    f"s3://{bucket}/outside/{raw}",
                    f"s3://{bucket}/out/../deep",
                ]
            answers = [
                *[await execute(http, "FileIngestionTask", offline, inputDirURI=uri, inputFormat="csv")
                  for uri in inputs],
                *[await execute(http, "DataExportTask", realtime,
                                **{"externalTable.target": uri, "bufferTimePeriod": "0s"})
                  for uri in targets],
            ]  # fmt: skip
            for answer in answers:
                assert answer.status_code == 400, (case, answer.text)
                error = answer.json()["error"]
                dotted = case == "outside the roots" and "/../" in answer.request.content.decode()
                assert (said if not dotted else "'..' segment") in error, (case, error)
                assert not any(s in answer.text for s in secrets), case
            for table, task_type in ((offline, "FileIngestionTask"), (realtime, "DataExportTask")):
                plans = await http.get(
                    "/tasks/taskPlans", params={"tableNameWithType": table, "taskType": task_type}
                )
                assert plans.status_code == 200 and plans.json() == [], (case, plans.text)
                assert await segments(http, table) == []
            configs = await http.get("/cluster/configs")
            assert configs.status_code == 200 and not any(s in configs.text for s in secrets)
    assert [i.key for i in store.list() if any(i.key.startswith(f"{t}/") for t in tables)] == []
    assert not any(s in record.getMessage() for record in caplog.records for s in secrets)
    catalog.close()


async def test_the_store_failing_an_api_call_is_a_502_or_503_and_a_drop_still_happens(
    engine: Client,
    tables: Catalog,
    moto_server: MotoServer,
    bucket: str,
    store: ObjectStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The calls the API makes to the deep store itself: an upload to a store that refuses (wrong
    credentials) is a 502 and to one that does not answer a 503, each with the store's message, and no
    segment appears; a drop while the store does not answer still drops the table (its catalog commit came
    first), says in the log which objects were left and records them in the same transaction; the
    segment upkeep deletes them once the store answers."""
    good = {
        "taskplan.dataDir": str(tmp_path / "api-data"),
        "taskplan.deepStore.dir": f"s3://{bucket}/deep",
        **moto_server.properties(),
    }
    raw = f"s3down{uuid.uuid4().hex[:8]}"
    async with api_client(engine, tables, good) as http:
        table = await create(http, raw)
        assert (await ingest(http, table, csv_bytes([event(1)], tmp_path))).status_code == 200
    async with api_client(engine, tables, {**good, SECRET: "wrong-secret-value"}) as http:
        refused = await ingest(http, table, csv_bytes([event(2)], tmp_path))
        assert refused.status_code == 502, refused.text
        assert "SignatureDoesNotMatch" in refused.json()["error"] and "wrong-secret" not in refused.text
    async with api_client(engine, tables, {**good, ENDPOINT: f"http://127.0.0.1:{free_port()}"}) as http:
        unavailable = await ingest(http, table, csv_bytes([event(3)], tmp_path))
        assert unavailable.status_code == 503, unavailable.text
        assert "127.0.0.1" in unavailable.json()["error"]
        [segment] = await segments(http, table)
        assert segment["segment.total.docs"] == "1"
        dropped = await http.delete(f"/tables/{raw}")
        assert dropped.status_code == 200, dropped.text
    assert tables.get_table_config(table) is None
    [left] = store.list(f"{table}/")
    assert any(
        f"{table} dropped" in r.getMessage() and f"s3://{bucket}/deep/{table}/" in r.getMessage()
        for r in caplog.records
    )
    # Recorded in the drop's transaction, and deleted by the segment upkeep's next pass once the store
    # answers (tests/data/test_dropped_table_deletions.py has the rest).
    [pending] = [p for p in tables.deletions.all() if p.table_name == table]
    assert pending.keys == (left.key,) and pending.attempts == 1
    manager = SegmentManager.from_settings(Settings.model_validate(good), tables)
    assert SegmentMaintenance(manager, tables).run_once().deletions.deleted[table] == 1
    assert store.list(f"{table}/") == [] and tables.deletions.get(pending.deletion_id) is None
