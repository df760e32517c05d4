"""taskplan across hosts, for real (issue 17): eight network namespaces on one bridge, each running what one
machine of a deployment runs: the Temporal dev server, PostgreSQL, an S3 server (moto), the REST API, two
controller workers and two minion workers, each taskplan process with its own data directory, all of them
configured by the README's example properties file (examples/multihost/taskplan.properties).

Everything the test does to taskplan goes through the API host's REST API. It ingests CSV files, purges with
a filter, exports, and counts the rows exactly; then it cuts one minion's link in the middle of a batch and
checks that the batch completes on the other minion with every row exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from tests.multihost.conftest import CALL_FAILED
from tests.multihost.netns import NetworkError, network
from tests.multihost.topology import EXAMPLE_CONFIG, Cluster, topology

pytestmark = pytest.mark.slow

MINION_SLOTS = 2
HEARTBEAT_TIMEOUT_S = 3  # test-only: a cut minion's subtasks are handed back within seconds (default 30)
COUNTRIES = ("US", "FR", "DE")


def require_netns() -> None:
    """Network namespaces need root and iproute2 (the Makefile installs it); no silent skip."""
    try:
        with network():
            pass
    except (NetworkError, FileNotFoundError, PermissionError) as exc:
        pytest.fail(f"cannot build network namespaces here (root and `ip` are needed): {exc}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_netns()
    env = {"TASKPLAN_SUBTASK_HEARTBEATTIMEOUTSECONDS": str(HEARTBEAT_TIMEOUT_S)}
    # Two subtasks at a time per minion: the cut one may hold two, and the other finishes the batch sooner.
    with topology(tmp_path_factory.mktemp("cluster"), env=env, minion_concurrency=MINION_SLOTS) as running:
        yield running


@pytest.fixture(autouse=True)
def logs_on_failure(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[None]:
    """A failed test's report ends with every process's log tail (captured output of its teardown)."""
    yield
    if request.node.stash.get(CALL_FAILED, False):
        print(cluster.logs())


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.http() as client:
        yield client


# ---------------------------------------------------------------- the REST API, as a client uses it


def create_table(api: httpx.Client, raw: str, table_type: str = "OFFLINE", **extra: Any) -> str:
    schema = {
        "schemaName": raw,
        "dimensionFieldSpecs": [
            {"name": "id", "dataType": "LONG"},
            {"name": "country", "dataType": "STRING"},
        ],
        "metricFieldSpecs": [{"name": "amount", "dataType": "DOUBLE"}],
    }
    response = api.post("/schemas", json=schema)
    assert response.status_code == 200, response.text
    response = api.post("/tables", json={"tableName": raw, "tableType": table_type, **extra})
    assert response.status_code == 200, response.text
    return f"{raw}_{table_type}"


def csv_rows(first_id: int, count: int) -> bytes:
    lines = ["id,country,amount"]
    lines += [f"{i},{COUNTRIES[i % 3]},{i}.5" for i in range(first_id, first_id + count)]
    return ("\n".join(lines) + "\n").encode()


def execute(api: httpx.Client, task_type: str, table: str, **configs: str) -> str:
    body = {
        "taskType": task_type,
        "tableName": table,
        "taskConfigs": {"enableTaskOrchestration": "true", **configs},
    }
    response = api.post("/tasks/execute", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["taskPlanId"])


def wait_plan(api: httpx.Client, plan_id: str, timeout_s: int = 60) -> dict[str, Any]:
    response = api.get(
        f"/tasks/taskPlans/{plan_id}", params={"waitForTerminalSeconds": timeout_s}, timeout=timeout_s + 10
    )
    assert response.status_code == 200, response.text
    plan: dict[str, Any] = response.json()
    assert plan["status"] == "COMPLETED", plan
    return plan


def visible_segments(api: httpx.Client, table: str) -> dict[str, dict[str, Any]]:
    """The segments readers see, by name (Pinot's server segment metadata)."""
    response = api.get(f"/segments/{table}/metadata")
    assert response.status_code == 200, response.text
    return dict(response.json())


def total_docs(api: httpx.Client, table: str) -> int:
    return sum(int(segment["totalDocs"]) for segment in visible_segments(api, table).values())


def subtasks(api: httpx.Client, task_name: str) -> list[dict[str, Any]]:
    response = api.get(f"/tasks/task/{task_name}/subtasks")
    assert response.status_code == 200, response.text
    return list(response.json()["subtasks"])


def parquet_rows(content: bytes, scratch: Path) -> int:
    path = scratch / f"{uuid.uuid4().hex}.parquet"
    path.write_bytes(content)
    row = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()
    assert row is not None
    return int(row[0])


def at_work(cluster: Cluster, minion: str) -> bool:
    """Whether the minion has a subtask's file in its scratch space (``<dataDir>/scratch``) right now."""
    try:
        return any(p.is_file() for p in (cluster.data_dir(minion) / "scratch").rglob("*"))
    except FileNotFoundError:  # a directory removed while listed
        return False


# ---------------------------------------------------------------- the scenario


def test_example_config_is_what_every_process_runs(cluster: Cluster) -> None:
    """The cluster is the README's: its example file, and each process on its own host and data dir."""
    assert cluster.config == EXAMPLE_CONFIG
    names = {p.host.name for p in cluster.procs.started}
    assert names == {"temporal", "db", "s3", "api", "controller1", "controller2", "minion1", "minion2"}
    assert len({p.host.address for p in cluster.procs.started}) == 8
    # The API's GET /metrics merges both controllers' endpoints, each scraped across the network.
    with cluster.http() as api:
        text = api.get("/metrics").text
    for controller in ("controller1", "controller2"):
        assert f'metricsMergeTargetUp{{target="{controller}:9101"}} 1.0' in text, text
    # Every process's Temporal SDK metrics answer from another host (taskplan.metrics.host, not loopback).
    for name in ("api", "controller1", "minion2"):
        response = httpx.get(f"http://{cluster.host(name).address}:9102/metrics", timeout=10)
        assert response.status_code == 200 and "temporal_" in response.text, name


def test_ingest_purge_and_export_across_hosts(cluster: Cluster, api: httpx.Client, tmp_path: Path) -> None:
    bucket = cluster.bucket
    run = uuid.uuid4().hex[:8]
    # Ingest: six CSV files of 1,000 rows, three per batch.
    sales = create_table(api, f"sales{run}")
    for n in range(6):
        bucket.put("input", f"sales{run}/part-{n}.csv", csv_rows(n * 1000, 1000))
    plan = wait_plan(
        api,
        execute(api, "FileIngestionTask", sales, inputDirURI=bucket.uri(f"input/sales{run}"),
                inputFormat="csv", tableMaxNumTasks="3"),
    )  # fmt: skip
    assert plan["numBatches"] == 2
    assert total_docs(api, sales) == 6000

    # Purge one country in three.
    wait_plan(api, execute(api, "SegmentPurgeTask", sales, purgeFilter="country = 'FR'"))
    assert total_docs(api, sales) == 4000

    # Export: a REALTIME table committed by row count, its four DONE segments to the export target.
    stream = {"realtime.segment.flush.threshold.rows": "500"}
    clicks = create_table(api, f"clicks{run}", "REALTIME", tableIndexConfig={"streamConfigs": stream})
    for n in range(4):
        response = api.post(
            "/ingestFromFile",
            params={"tableNameWithType": clicks, "batchConfigMapStr": '{"inputFormat": "csv"}'},
            files={"file": ("clicks.csv", csv_rows(n * 500, 500), "text/csv")},
        )
        assert response.status_code == 200, response.text
    target = bucket.uri(f"export/clicks{run}")
    wait_plan(
        api,
        execute(api, "DataExportTask", clicks, **{"externalTable.target": target, "bufferTimePeriod": "0s"}),
    )
    exported = bucket.objects(f"export/clicks{run}")
    assert len(exported) == 4, sorted(exported)
    assert sum(parquet_rows(content, tmp_path) for content in exported.values()) == 2000

    # No process keeps a segment on its own disk: no Parquet in any host's data directory; the deep store
    # is the bucket, with each table's segments (and retired ones until the sweep) as objects there.
    leftovers = [p for name in cluster.net.hosts for p in cluster.data_dir(name).rglob("*.parquet")]
    assert leftovers == []
    for table in (sales, clicks):
        objects = [k for k in bucket.keys(f"deepstore/{table}") if k.endswith(".parquet")]
        assert len(objects) >= len(visible_segments(api, table)) > 0, (table, objects)


def test_a_cut_minion_hands_its_subtasks_to_the_other(cluster: Cluster, api: httpx.Client) -> None:
    run = uuid.uuid4().hex[:8]
    orders = create_table(api, f"orders{run}")
    files, rows = 24, 20_000  # a subtask long enough to be cut in the middle of, even on a fast machine
    for n in range(files):
        cluster.bucket.put("input", f"orders{run}/part-{n:02}.csv", csv_rows(n * rows, rows))
    source = cluster.bucket.uri(f"input/orders{run}")
    plan_id = execute(
        api, "FileIngestionTask", orders, inputDirURI=source, inputFormat="csv", tableMaxNumTasks=str(files)
    )
    # In the middle of the (one) batch: both minions busy for a while, most subtasks still to do.
    task_name = ""
    done: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batches = api.get(f"/tasks/taskPlans/{plan_id}").json()["batches"]
        if batches:
            task_name = batches[0]["submittedTaskName"]
            done = [s for s in subtasks(api, task_name) if s["state"] == "COMPLETED"]
            if len(done) >= 2 * MINION_SLOTS:
                break
        time.sleep(0.05)
    assert task_name, "the batch did not start"
    # ... and the minion at work on a subtask: a file of it in the minion's scratch directory (an input
    # object streamed in, a segment on its way out). The API cannot say which minion runs what.
    was_at_work = False
    while time.monotonic() < deadline and not (was_at_work := at_work(cluster, "minion1")):
        time.sleep(0.005)
    # Cut at once: anything between seeing the file and the cut gives the subtask time to finish.
    cluster.cut("minion1")
    cut_at_ms = time.time() * 1000
    assert was_at_work, "minion1 took no subtask"
    try:
        plan = wait_plan(api, plan_id, timeout_s=60)
    finally:
        cluster.restore("minion1")
    assert plan["numBatches"] == 1
    reports = subtasks(api, task_name)
    assert all(s["state"] == "COMPLETED" for s in reports), reports
    finished_after_cut_ms = sorted(s["finishedAtMs"] - cut_at_ms for s in reports)
    # Handed over from the cut minion once their heartbeats timed out:
    assert sum(s["lostWorkerRetries"] for s in reports) >= 1, finished_after_cut_ms
    assert total_docs(api, orders) == files * rows
    # The cut minion is back: whatever it was doing when cut may go on now (its connections resend within
    # seconds of the link's return) and must not add a row.
    deadline = time.monotonic() + 3 * HEARTBEAT_TIMEOUT_S
    while time.monotonic() < deadline:
        assert total_docs(api, orders) == files * rows
        time.sleep(0.5)


# A process holding a table's catalog write lock (the advisory lock of SegmentCatalog._write), or waiting
# for it: prints when it has it, then holds it (argv[2] == "hold") or leaves.
LOCKER = """
import sys, time
from sqlalchemy import text
from taskplan.catalog import Catalog
from taskplan.settings import load_settings

catalog = Catalog(load_settings().resolved_catalog_url)
started = time.monotonic()
with catalog.engine.connect() as conn:
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int(sys.argv[1])})
    print(f"locked after {time.monotonic() - started:.1f} s", flush=True)
    if sys.argv[2] == "hold":
        time.sleep(600)
"""


def test_a_cut_host_does_not_keep_its_catalog_locks(cluster: Cluster) -> None:
    """A process cut off inside a catalog transaction loses its locks within seconds: the catalog's
    PostgreSQL connections ask the server to probe them (TCP keepalive), so the next writer of the table
    goes on. Without that, the server keeps the dead connection's locks for the kernel's two hours: a
    minion cut mid-commit stalls every other minion's subtasks of the table (seen in the test above)."""
    key = str(uuid.uuid4().int % 2**31)
    holder = cluster.start_python("locker-minion1", "minion1", LOCKER, key, "hold")
    deadline = time.monotonic() + 30
    while "locked" not in holder.tail() and time.monotonic() < deadline:
        holder.check_alive()
        time.sleep(0.05)
    assert "locked" in holder.tail(), holder.tail()
    cluster.cut("minion1")
    try:
        contender = cluster.start_python("locker-minion2", "minion2", LOCKER, key, "leave")
        contender.popen.wait(timeout=60)
        assert "locked after" in contender.tail(), contender.tail()
    finally:
        cluster.restore("minion1")
        cluster.procs.stop(holder, timeout=1)
