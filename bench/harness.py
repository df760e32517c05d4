"""A benchmark stack: a Temporal dev server (SQLite file), the controller in this process, minion
processes, a catalog, and the API app in process; plus timing and result helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.baseline import BASELINE_QUEUE, BaselineBatchesWorkflow
from taskplan.binaries import temporal_cli
from taskplan.catalog import Catalog
from taskplan.models.plan import PlanOptions
from taskplan.models.table import TableConfig
from taskplan.names import SearchAttributes
from taskplan.plans import PlanServices
from taskplan.registry import build_registry
from taskplan.settings import Settings
from taskplan.temporal import connect
from taskplan.worker import WorkerOptions, build_workers, run_workers

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rss_mb(pid: int | None = None) -> float:
    """Peak resident memory (VmHWM) of a process, in MB."""
    path = Path(f"/proc/{pid or os.getpid()}/status")
    for line in path.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def dev_server_pid() -> int | None:
    """The pid of the dev server this process started (`temporal server start-dev`), if any."""
    me = str(os.getpid())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
            if ppid == me and b"start-dev" in (proc / "cmdline").read_bytes():
                return int(proc.name)
    return None


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid or os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_latency_s(port: int) -> dict[str, float]:
    """The dev server's time so far, from its metrics: seconds in persistence (SQLite) and in serving RPCs,
    summed by operation (keys ``persistence <op>`` and ``service <op>``)."""
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        kind = {"persistence_latency": "persistence", "service_latency": "service"}.get(family.name)
        for sample in family.samples if kind else ():
            if sample.name.endswith("_sum"):
                key = f"{kind} {sample.labels.get('operation', '?')}"
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


@dataclass
class Row:
    scenario: str
    metric: str
    value: str
    target: str = ""
    verdict: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, scenario: str, metric: str, value: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        self.rows.append(Row(scenario, metric, value, target, verdict))

    def table(self) -> str:
        headers = ("scenario", "metric", "value", "target", "")
        cells = [headers, *[(r.scenario, r.metric, r.value, r.target, r.verdict) for r in self.rows]]
        widths = [max(len(str(c[i])) for c in cells) for i in range(5)]
        lines = [
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
            for row in cells
        ]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)

    def write(self, name: str) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
        body = {"machine": machine(), "rows": [r.__dict__ for r in self.rows], "data": self.data}
        path.write_text(json.dumps(body, indent=2, default=str))
        return path


@dataclass
class BenchStack:
    client: Client
    settings: Settings
    catalog: Catalog
    plans: PlanServices
    data_dir: Path
    server_metrics_port: int  # the dev server's /metrics (server_latency_s)
    minions: list[subprocess.Popen[bytes]] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)  # for the minion and API processes

    def _environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "TEMPORAL_ADDRESS": self.settings.temporal_address,
            "TASKPLAN_DATADIR": str(self.data_dir),
            "TASKPLAN_CATALOG_URL": self.settings.resolved_catalog_url,
            **self.extra_env,
        }

    def start_minions(self, count: int, *, concurrency: int | None = None) -> None:
        env = self._environment()
        log = (self.data_dir / "minions.log").open("ab")
        for _ in range(count):
            command = [sys.executable, "worker.py", "--role", "minion", "--graceful-shutdown-seconds", "1"]
            if concurrency:
                command += ["--max-concurrent-subtasks", str(concurrency)]
            self.minions.append(
                subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            )

    def stop_minions(self) -> None:
        for proc in self.minions:
            proc.terminate()
        for proc in self.minions:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.minions.clear()

    def add_table(self, raw: str, table_type: str = "OFFLINE") -> str:
        config = TableConfig.model_validate({"tableName": raw, "tableType": table_type})
        self.catalog.create_table(config)
        return config.tableName

    @asynccontextmanager
    async def api(self) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
        """The REST API in its own process, as deployed (`taskplan api`); yields a client and its pid."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        log = (self.data_dir / "api.log").open("ab")
        command = [sys.executable, "-m", "taskplan.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
        server = await asyncio.create_subprocess_exec(
            *command, cwd=REPO, env=self._environment(), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
                for _ in range(600):
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get("/health")).status_code == 200:
                            break
                    await asyncio.sleep(0.1)
                else:
                    raise RuntimeError(f"the API did not come up (see {log.name})")
                yield http, server.pid
        finally:
            server.terminate()
            try:
                await asyncio.wait_for(server.wait(), timeout=30)
            except TimeoutError:  # still draining requests under load: no orphan left behind
                server.kill()
                await server.wait()


@asynccontextmanager
async def bench_stack(
    properties: dict[str, str] | None = None, extra_env: dict[str, str] | None = None
) -> AsyncIterator[BenchStack]:
    """Dev server on a SQLite file, controller workers in process; minions are started by scenarios.
    ``properties``: more settings of the controller; ``extra_env``: the minions' environment for them."""
    with tempfile.TemporaryDirectory(prefix="taskplan-bench-") as tmp:
        data_dir = Path(tmp)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            metrics_port = int(probe.getsockname()[1])
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_cli(),
            search_attributes=SearchAttributes.ALL,
            dev_server_extra_args=[
                *("--db-filename", str(data_dir / "temporal.db"), "--log-level", "error"),
                *("--metrics-port", str(metrics_port)),
            ],
        )
        try:
            settings = Settings.model_validate(
                {
                    "temporal.address": env.client.service_client.config.target_host,
                    "taskplan.dataDir": str(data_dir),
                    **(properties or {}),
                }
            )
            catalog = Catalog(settings.resolved_catalog_url)
            catalog.migrate()
            client = await connect(settings)
            registry = build_registry("")
            workers = build_workers(
                client, settings, registry, catalog, WorkerOptions(role="controller"), catalog=catalog
            )
            workers.append(Worker(client, task_queue=BASELINE_QUEUE, workflows=[BaselineBatchesWorkflow]))
            stop = asyncio.Event()
            running = asyncio.create_task(run_workers(workers, stop))
            plans = PlanServices.build(client, catalog, PlanOptions())
            stack = BenchStack(
                client, settings, catalog, plans, data_dir, metrics_port, extra_env=dict(extra_env or {})
            )
            try:
                yield stack
            finally:
                stack.stop_minions()
                stop.set()
                await running
        finally:
            await env.shutdown()


def new_raw_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"
