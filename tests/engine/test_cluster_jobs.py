"""Cluster-wide jobs run once per cluster: two real controller worker processes (worker.py) on a dev server
of their own share one catalog; the cleanup sweep runs once per interval in one of them, the poll's gauges
are exported by one of them, and when that one is killed the other takes the jobs over; the cron Schedules
are reconciled by the cluster's workflow in one controller, not by the API that asks for it. Also the
workers' probes on their metrics port."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle

from taskplan.api.main import create_app
from taskplan.binaries import temporal_cli
from taskplan.bootstrap import Stack
from taskplan.catalog import Catalog
from taskplan.models.table import TableConfig
from taskplan.names import CLUSTER_JOBS_WORKFLOW_ID
from taskplan.registry import build_registry
from taskplan.runtime import dev_server_command, wait_for_port
from taskplan.schedules import ScheduleManager, schedule_id
from taskplan.settings import Settings
from taskplan.temporal import connect
from taskplan.workflows.models import CLUSTER_JOBS
from tests.chaos.cluster import REPO, free_port
from tests.support.engine import add_table, eventually

pytestmark = pytest.mark.slow

SWEEP_LINE = "cleanup sweep:"
INTERVAL_S = 2  # the cleanup sweep's interval in this cluster
POLL_GAUGE = re.compile(r"^orchestrationTimeSinceLastPollMs \S+$", re.MULTILINE)


@dataclass
class Controller:
    process: subprocess.Popen[bytes]
    log: Path
    port: int

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def sweeps(self) -> list[float]:
        """When this process logged a cleanup sweep (seconds since the epoch, from the log's timestamps)."""
        times = []
        for line in self.text().splitlines():
            if SWEEP_LINE in line:
                stamp = time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
                times.append(time.mktime(stamp))
        return times

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text

    def ready(self) -> bool:
        return httpx.get(f"http://127.0.0.1:{self.port}/health/readiness", timeout=10).status_code == 200

    def exports_poll_gauges(self) -> bool:
        return POLL_GAUGE.search(self.metrics()) is not None


@dataclass
class TwoControllers:
    data_dir: Path
    temporal_port: int = field(default_factory=free_port)
    server: subprocess.Popen[bytes] | None = None
    controllers: list[Controller] = field(default_factory=list)

    def settings(self) -> Settings:
        return Settings.model_validate(
            {"temporal.address": f"127.0.0.1:{self.temporal_port}", "taskplan.dataDir": str(self.data_dir)}
        )

    def start(self) -> None:
        settings = self.settings()
        self.server = subprocess.Popen(
            dev_server_command(settings, headless=True), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port("127.0.0.1", self.temporal_port, 60, self.server)
        catalog = Catalog(settings.resolved_catalog_url)  # `taskplan db upgrade`: workers only check it
        catalog.migrate()
        catalog.close()
        for i in range(2):
            port = free_port()
            log = self.data_dir / f"controller{i}.log"
            env = {
                **os.environ,
                "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
                "TASKPLAN_DATADIR": str(self.data_dir),
                "TASKPLAN_METRICS_PORT": str(port),
                "TASKPLAN_CLUSTERJOBS_HEARTBEATTIMEOUTSECONDS": "5",
                "CONTROLLER_STARTREE_TASK_MANAGER_ORPHANEDTASKPLANCLEANUPINTERVALINSECONDS": str(INTERVAL_S),
            }
            process = subprocess.Popen(
                [sys.executable, "worker.py", "--role", "controller", "--graceful-shutdown-seconds", "2"],
                cwd=REPO,
                env=env,
                stdout=log.open("ab"),
                stderr=subprocess.STDOUT,
            )
            self.controllers.append(Controller(process, log, port))
        for controller in self.controllers:
            wait_for_port("127.0.0.1", controller.port, 60, controller.process)

    def stop(self) -> None:
        for process in [*(c.process for c in self.controllers), self.server]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [*(c.process for c in self.controllers), self.server]:
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoControllers]:
    running = TwoControllers(tmp_path_factory.mktemp("two-controllers"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")


def test_each_cluster_job_runs_in_one_controller_and_moves_when_it_dies(cluster: TwoControllers) -> None:
    first, second = cluster.controllers
    for controller in cluster.controllers:
        wait_until(controller.ready, 60, "both controllers are ready")
    wait_until(lambda: len(first.sweeps()) + len(second.sweeps()) >= 2, 60, "the sweeps began")
    # Every job was handed to exactly one of the two processes.
    for job in CLUSTER_JOBS:
        line = f"cluster job {job} runs in this process"
        assert sum(line in c.text() for c in cluster.controllers) == 1, job

    window_start = time.time()
    time.sleep(5 * INTERVAL_S)
    in_window = [[t for t in c.sweeps() if t >= window_start] for c in cluster.controllers]
    counts = [len(times) for times in in_window]
    # Once per interval in the whole cluster (each process sweeping would give twice as many), in one process.
    assert 3 <= sum(counts) <= 6 and 0 in counts, counts

    exporting = [c.exports_poll_gauges() for c in cluster.controllers]
    assert exporting.count(True) == 1, exporting  # the poll's gauges are reported once
    poller = cluster.controllers[exporting.index(True)]
    assert "cluster job progress-poll runs in this process" in poller.text()  # by the process that polls
    # In the Temporal Web UI's list and `temporal workflow describe`, it says what it is: housekeeping.
    described = subprocess.run(
        [temporal_cli(), "workflow", "describe", "--workflow-id", CLUSTER_JOBS_WORKFLOW_ID, "--address",
         f"127.0.0.1:{cluster.temporal_port}", "--output", "json"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "housekeeping: taskplan's cluster-wide jobs" in described.stdout, described.stdout
    # Temporal hands each job out on its own: kill the one sweeping; the survivor then holds every job.
    owner, other = (first, second) if counts[0] else (second, first)

    owner.process.send_signal(signal.SIGKILL)
    owner.process.wait()
    killed_at = time.time()
    # The heartbeat timeout (5 s here) hands the jobs to the survivor, which sweeps and exports the gauges.
    wait_until(lambda: any(t >= killed_at for t in other.sweeps()), 30, "the survivor sweeps")
    wait_until(other.exports_poll_gauges, 30, "the survivor exports the poll's gauges")


async def reconciliations(handle: WorkflowHandle[Any, Any]) -> tuple[int, int]:
    """The ClusterJobs workflow's schedule reconciliations in its current run: (scheduled, ended)."""
    scheduled: set[int] = set()
    ended = 0
    async for event in handle.fetch_history_events():
        scheduling = event.activity_task_scheduled_event_attributes
        if event.HasField("activity_task_scheduled_event_attributes") and (
            scheduling.activity_type.name == "reconcile_schedules"
        ):
            scheduled.add(event.event_id)
        for ending in (
            event.activity_task_completed_event_attributes,
            event.activity_task_failed_event_attributes,
            event.activity_task_timed_out_event_attributes,
        ):
            ended += ending.scheduled_event_id in scheduled  # 0 (unset) for other events
    return len(scheduled), ended


async def test_the_api_start_has_the_schedules_reconciled_once_in_one_controller(
    cluster: TwoControllers, caplog: pytest.LogCaptureFixture
) -> None:
    """A table whose Schedule is missing, and a Schedule whose table is gone: the API's start asks the
    ClusterJobs workflow, which reconciles both in one controller process; the API reconciles nothing."""
    for controller in cluster.controllers:
        if controller.process.poll() is None:  # the other test kills one; either order works
            wait_until(controller.ready, 60, "the controllers are ready")
    settings = cluster.settings()
    client = await connect(settings)
    handle = client.get_workflow_handle(CLUSTER_JOBS_WORKFLOW_ID)

    async def idle() -> tuple[int, int]:  # the controllers' own start-up reconciliations are over
        scheduled, ended = await reconciliations(handle)
        assert scheduled >= 1 and scheduled == ended, (scheduled, ended)
        return scheduled, ended

    before, _ = await eventually(idle, timeout=60)
    catalog = Catalog(settings.resolved_catalog_url)
    suffix = uuid.uuid4().hex[:8]
    cron = {"SegmentPurgeTask": {"schedule": "0 0 2 * * ?"}}
    table = add_table(catalog, f"cron{suffix}_OFFLINE", cron)
    gone = TableConfig.model_validate(
        {"tableName": f"gone{suffix}", "tableType": "OFFLINE", "task": {"taskTypeConfigsMap": cron}}
    )
    await ScheduleManager(client).apply(gone)  # left over: its table is not in the catalog
    wanted, leftover = schedule_id(table, "SegmentPurgeTask"), schedule_id(gone.tableName, "SegmentPurgeTask")

    caplog.set_level(logging.INFO, logger="taskplan.schedules")
    app = create_app(Stack(settings, build_registry(""), catalog))
    async with app.router.lifespan_context(app):

        async def reconciled() -> None:
            ids = await ScheduleManager(client).existing_ids()
            assert wanted in ids and leftover not in ids, ids

        await eventually(reconciled, timeout=60)
    catalog.close()
    after, _ = await eventually(idle, timeout=30)
    assert after > before  # the API's start asked the workflow (a controller's late start may have too)
    line = f"cron schedules reconciled: created ['{wanted}'], deleted ['{leftover}']"
    assert sum(line in c.text() for c in cluster.controllers) == 1  # in one controller process
    assert "cron schedules reconciled" not in caplog.text  # not in the API's


def test_a_worker_port_serves_its_probes_before_and_after_it_connects(
    cluster: TwoControllers, tmp_path: Path
) -> None:
    port, temporal_port = free_port(), free_port()
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")  # upgraded, as `taskplan db upgrade` does
    catalog.migrate()
    catalog.close()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",  # nobody serves it yet
        "TASKPLAN_DATADIR": str(tmp_path),
        "TASKPLAN_METRICS_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "worker.py", "--role", "minion"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, 60, process)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health/liveness", timeout=10).text == "OK"
        answer = httpx.get(f"{base}/health/readiness", timeout=10)
        assert answer.status_code == 503
        assert "not polling yet: connecting to Temporal" in answer.json()["error"]
        assert "# TYPE taskPlanAborted_total counter" in httpx.get(f"{base}/metrics", timeout=10).text
        assert httpx.get(f"{base}/nothing", timeout=10).status_code == 404
    finally:
        process.kill()
        process.wait()
    # A controller connected to its dev server: every check named and ok.
    running = next(c for c in cluster.controllers if c.process.poll() is None)
    body = httpx.get(f"http://127.0.0.1:{running.port}/health/readiness", timeout=10).json()
    assert body == {"ready": True, "checks": {"worker": "ok", "catalog": "ok", "temporal": "ok"}}
