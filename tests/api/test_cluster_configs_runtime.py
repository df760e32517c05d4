"""Each cluster config POST /cluster/configs accepts takes effect at run time, on a real cluster: its own dev
server, controller worker (worker.py), minion and API, each its own process; and segment upkeep there goes on
past a bad table."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskplan.catalog import Catalog
from taskplan.cluster_configs import CONFIG_POLL_S
from taskplan.data.segments import FLUSH_ROWS, FLUSH_TIME
from taskplan.settings import (
    ENABLE_ORCHESTRATION,
    MAX_IN_FLIGHT,
    MAX_IN_FLIGHT_PER_TABLE,
    ORPHAN_CLEANUP_INTERVAL,
)
from tests.api.test_tables_and_triggers_api import COUNTING, create_table, new_name, wait_inactive
from tests.chaos.cluster import Cluster
from tests.data.test_data_plans import create, csv_bytes, ingest, segments
from tests.engine.test_cleanup_isolation import record_batch
from tests.support.data import event
from tests.support.engine import eventually
from tests.support.tasktypes import ALL_SPECS

pytestmark = pytest.mark.slow

SINGLE = "TestSingleAttemptTask"
SWEEP_LINE = "taskplan.cleanup: cleanup sweep:"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("cluster"), extra_env={"TASKPLAN_PLUGINS": ALL_SPECS})
    try:
        running.start(minions=1)
        yield running
    finally:
        running.stop()


@pytest.fixture
async def http(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cluster.url, timeout=60) as client:
        yield client


@pytest.fixture
def cluster_catalog(cluster: Cluster) -> Iterator[Catalog]:
    opened = cluster.catalog()
    yield opened
    opened.close()


def log_text(cluster: Cluster) -> str:
    return (cluster.data_dir / "cluster.log").read_text(encoding="utf-8", errors="replace")


def sweeps(cluster: Cluster) -> int:
    return log_text(cluster).count(SWEEP_LINE)


async def set_config(http: httpx.AsyncClient, key: str, value: str) -> None:
    response = await http.post("/cluster/configs", json={key: value})
    assert response.status_code == 200, response.text


async def plan(http: httpx.AsyncClient, plan_id: str) -> dict[str, Any]:
    response = await http.get(f"/tasks/taskPlans/{plan_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def execute(http: httpx.AsyncClient, task_type: str, table: str, **configs: str) -> dict[str, str]:
    task_configs = {"enableTaskOrchestration": "true", **configs}
    body = {"taskType": task_type, "tableName": table, "taskConfigs": task_configs}
    response = await http.post("/tasks/execute", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, str] = response.json()
    return answer


async def test_the_cleanup_interval_changes_the_sweep_cadence_at_run_time(
    cluster: Cluster, http: httpx.AsyncClient, cluster_catalog: Catalog
) -> None:
    await eventually(lambda: _at_least(cluster, 1), timeout=60)  # the sweep at start (interval 28800)
    orphan = f"gone{uuid.uuid4().hex[:8]}_OFFLINE"
    await asyncio.to_thread(
        record_batch, cluster_catalog, orphan
    )  # a batch record of a table not in the catalog
    before = sweeps(cluster)
    await asyncio.sleep(CONFIG_POLL_S + 1)
    assert sweeps(cluster) == before  # 8 hours to the next sweep
    assert orphan in await asyncio.to_thread(cluster_catalog.tasks.table_names)
    try:
        await set_config(http, ORPHAN_CLEANUP_INTERVAL, "2")

        async def reaped() -> None:
            assert orphan not in await asyncio.to_thread(cluster_catalog.tasks.table_names)
            assert f"removed 1 executions of {orphan}" in log_text(cluster)

        # Within one poll of the cluster configs (then the sweep is overdue and runs).
        started = time.monotonic()
        await eventually(reaped, timeout=CONFIG_POLL_S + 10)
        assert time.monotonic() - started < CONFIG_POLL_S + 10
        counted = sweeps(cluster)
        await asyncio.sleep(7)
        assert sweeps(cluster) - counted >= 2  # every 2 s

        await set_config(http, ORPHAN_CLEANUP_INTERVAL, "3600")
        await asyncio.sleep(CONFIG_POLL_S + 3)  # at most one more sweep before the change is read
        counted = sweeps(cluster)
        await asyncio.sleep(7)
        assert sweeps(cluster) == counted
    finally:
        await http.delete(f"/cluster/configs/{ORPHAN_CLEANUP_INTERVAL}")


async def _at_least(cluster: Cluster, count: int) -> None:
    assert sweeps(cluster) >= count


async def test_the_orchestration_switch_holds_and_releases_a_running_plan(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    plan_id = (await execute(http, COUNTING, table, numBatches="5", sleepMs="800"))["taskPlanId"]
    await eventually(lambda: _batches_at_least(http, plan_id, 1), timeout=60)
    try:
        await set_config(http, ENABLE_ORCHESTRATION, "false")

        async def held() -> dict[str, Any]:
            current = await plan(http, plan_id)
            assert (
                f"orchestration is disabled cluster-wide ({ENABLE_ORCHESTRATION}=false)"
                in (current["statusMessage"])
            )
            return current

        stopped_at = (await eventually(held, timeout=30))["numBatches"]
        await asyncio.sleep(3)
        assert (await plan(http, plan_id))["numBatches"] == stopped_at < 5
        # A trigger now runs the legacy flow.
        other = await create_table(http, new_name())
        assert "taskPlanId" not in await execute(http, COUNTING, other, numBatches="1")

        await set_config(http, ENABLE_ORCHESTRATION, "true")
    finally:
        await http.delete(f"/cluster/configs/{ENABLE_ORCHESTRATION}")
    await wait_inactive(http, plan_id)
    done = await plan(http, plan_id)
    assert done["status"] == "COMPLETED" and done["numBatches"] == 5


async def _batches_at_least(http: httpx.AsyncClient, plan_id: str, count: int) -> None:
    assert (await plan(http, plan_id))["numBatches"] >= count


async def test_in_flight_limits_hold_and_release_plans_at_run_time(http: httpx.AsyncClient) -> None:
    busy, other = await create_table(http, new_name()), await create_table(http, new_name())
    # Two subtasks in flight for minutes (the minion runs one at a time); aborted at the end.
    long_batch = {"numBatches": "1", "subtasksPerBatch": "2", "sleepMs": "60000"}
    first = (await execute(http, COUNTING, busy, **long_batch))["taskPlanId"]
    await eventually(lambda: _batches_at_least(http, first, 1), timeout=60)
    await asyncio.sleep(1.5)
    try:
        await set_config(http, MAX_IN_FLIGHT_PER_TABLE, "2")
        second = (await execute(http, SINGLE, busy, numBatches="1"))["taskPlanId"]
        await eventually(lambda: _held(http, second, f"the limit per table is 2 ({MAX_IN_FLIGHT_PER_TABLE})"))
        await set_config(http, MAX_IN_FLIGHT_PER_TABLE, "10")
        await wait_inactive(http, second)  # released by the new value, not by the first plan ending
        assert (await plan(http, second))["status"] == "COMPLETED"

        await set_config(http, MAX_IN_FLIGHT, "2")
        third = (await execute(http, SINGLE, other, numBatches="1"))["taskPlanId"]
        await eventually(lambda: _held(http, third, f"the limit is 2 ({MAX_IN_FLIGHT})"))
        assert (await http.delete(f"/cluster/configs/{MAX_IN_FLIGHT}")).status_code == 200
        await wait_inactive(http, third)  # removed: the property (0, no limit) again
        assert (await plan(http, third))["status"] == "COMPLETED"
        assert (await plan(http, first))["status"] == "ACTIVE"
    finally:
        for key in (MAX_IN_FLIGHT_PER_TABLE, MAX_IN_FLIGHT):
            await http.delete(f"/cluster/configs/{key}")
        await http.delete(f"/tasks/taskPlans/{first}")


async def _held(http: httpx.AsyncClient, plan_id: str, why: str) -> None:
    current = await plan(http, plan_id)
    assert why in current["statusMessage"] and current["numBatches"] == 0


async def test_a_bad_table_does_not_stop_another_tables_segment_from_committing(
    cluster: Cluster, http: httpx.AsyncClient, cluster_catalog: Catalog, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    long_flush = {"streamConfigs": {FLUSH_TIME: "6h"}}
    bad = await create(http, f"aaBad{suffix}", "REALTIME", tableIndexConfig=long_flush)
    short_flush = {"streamConfigs": {FLUSH_TIME: "2s"}}
    good = await create(http, f"zzGood{suffix}", "REALTIME", tableIndexConfig=short_flush)
    for table in (bad, good):
        response = await ingest(http, table, csv_bytes([event(1), event(2)], tmp_path))
        assert response.status_code == 200, response.text
    # Saved in the catalog directly (the API refuses it): a flush row count that is no number.
    config = await asyncio.to_thread(cluster_catalog.require_table, bad)
    broken = {"streamConfigs": {FLUSH_TIME: "2s", FLUSH_ROWS: "abc"}}
    await asyncio.to_thread(
        cluster_catalog.update_table, config.model_copy(update={"tableIndexConfig": broken})
    )

    async def committed() -> None:
        [segment] = await segments(http, good)
        assert segment["segment.realtime.status"] == "DONE", segment

    await eventually(committed, timeout=60, interval=1)  # the controller's upkeep runs every 15 s
    assert f"segment upkeep of table {bad} failed" in log_text(cluster)
    [stuck] = await segments(http, bad)
    assert stuck["segment.realtime.status"] == "IN_PROGRESS"
