"""The soak (`make soak`): plans of every task type, started in a loop on the embedded stack for
``SOAK_MINUTES`` (default 30), while the memory and open file descriptors of every process of the stack, the
catalog and Temporal's database are sampled every ``SOAK_SAMPLE_SECONDS`` (default 60).

The stack is `taskplan run` (what `make run` starts) in processes of its own, on its own data directory and
free ports. Each cycle makes two small tables and runs, on the first, NoOpTask, FileIngestionTask (CSV files),
SegmentPurgeTask, AlterTableTask and MergeRollupTask one after the other, and meanwhile, on the second (a
REALTIME table fed through ``ingestFromFile`` and an OFFLINE one), RealtimeToOfflineSegmentsTask and
DataExportTask to a directory and to PostgreSQL; every plan must end COMPLETED with the rows expected. Then
the cycle drops its tables and cleans its export targets, so the data stays small and a catalog that grows
from cycle to cycle shows what a drop leaves behind. The report (a table on stdout, JSON in bench/results/)
gives the samples, each plan's history size and the catalog's size at its end, and a verdict per process on
whether memory and fds stayed flat over the second half of the run (`bench/soak_probe.py`).

    python -m bench.soak            # SOAK_MINUTES=2 SOAK_SAMPLE_SECONDS=10 python -m bench.soak for a try

Past 400 lines because one run reads in one place: the stack, the cycle's workload with its expected rows,
and the report; what is measured and the verdict are in bench/soak_probe.py.

A process that grows: ``SOAK_TRACEMALLOC=<dir>`` makes every Python process of the stack start tracemalloc
after its warm-up and dump a snapshot there each minute (bench/soak_trace/sitecustomize.py); ``python -m
bench.soak_leaks <dir>`` then lists what grew between the middle of the run and its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import psycopg
from psycopg import sql
from temporalio.client import Client

from bench.soak_probe import file_mb, flatness, process_tree, sample_process, sqlite_rows

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DAY = 86_400_000
D0 = (1_700_000_000_000 // DAY) * DAY
FILES, ROWS_PER_FILE, REALTIME_ROWS = 4, 500, 100  # per cycle: 2,000 rows ingested, 300 streamed
COUNTRIES = ("US", "FR", "DE")


@dataclass
class SoakOptions:
    minutes: float = 30.0  # no cycle starts after this; the last one finishes
    sample_seconds: float = 60.0
    max_cycles: int | None = None
    pg_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    results_dir: Path = RESULTS
    data_dir: Path | None = None  # default: a temporary directory, removed afterwards
    graceful_stop: bool = True  # False: the stack is killed at the end (the smoke in make test)

    @classmethod
    def from_env(cls) -> SoakOptions:
        env = os.environ
        return cls(
            minutes=float(env.get("SOAK_MINUTES", "30")),
            sample_seconds=float(env.get("SOAK_SAMPLE_SECONDS", "60")),
            max_cycles=int(env["SOAK_MAX_CYCLES"]) if env.get("SOAK_MAX_CYCLES") else None,
            pg_url=env.get("SOAK_PG_URL", cls.pg_url),
            results_dir=Path(env.get("SOAK_RESULTS_DIR", str(RESULTS))),
        )


@dataclass
class PlanRecord:
    cycle: int
    task_type: str
    table: str
    plan_id: str = ""
    status: str = ""
    seconds: float = 0.0
    batches: int = 0
    expected_rows: int = 0
    rows: int = -1
    history_events: int = 0
    history_bytes: int = 0
    catalog_mb: float = 0.0  # the catalog file (with its WAL) when the plan ended
    catalog_rows: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.status == "COMPLETED" and self.rows == self.expected_rows


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """`taskplan run` in a process group of its own."""

    data_dir: Path
    temporal_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def catalog_file(self) -> Path:
        return self.data_dir / "catalog.db"

    def temporal_caches(self) -> dict[str, float]:
        """The dev server's history caches (entries of mutable state, bytes of events) and goroutines, from
        the metrics endpoint it announces in the stack's log: what its memory is expected to follow."""
        found = re.search(
            r"Temporal Metrics:\s+(\S+)", (self.data_dir / "stack.log").read_text(errors="replace")
        )
        if not found:
            return {}
        try:
            text = httpx.get(found.group(1), timeout=10).text
        except httpx.HTTPError:
            return {}
        wanted = {
            'cache_usage{cache_type="mutablestate",service_name="history"}': "mutable_state_cache",
            'cache_usage{cache_type="events",service_name="history"}': "events_cache",
            'num_goroutines{service_name="frontend"}': "goroutines",
        }
        return {
            wanted[k]: float(v)
            for k, _, v in (line.rpartition(" ") for line in text.splitlines())
            if k in wanted
        }

    def start(self) -> None:
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
            "TASKPLAN_DATADIR": str(self.data_dir),
            "CONTROLLER_PORT": str(self.api_port),
            "TASKPLAN_METRICS_PORT": str(free_port()),  # the controller's, 9101 by default
        }
        env.pop("TASKPLAN_CONFIG", None)
        if env.get("SOAK_TRACEMALLOC"):  # leak hunting: snapshots of each process (bench/soak_leaks.py)
            env["PYTHONPATH"] = os.pathsep.join([str(REPO / "bench" / "soak_trace"), str(REPO)])
        log = (self.data_dir / "stack.log").open("ab")
        command = [sys.executable, "-m", "taskplan.cli", "run", "--ui-port", str(free_port())]
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        patience = 180
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"taskplan run exited with {self.process.returncode}; see {log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"the stack did not become healthy in {patience} s")

    def stop(self, graceful: bool = True) -> None:
        """SIGTERM: the supervisor stops its children in order, workers shutting down gracefully; past 90 s,
        or at once when not ``graceful`` (the smoke in make test), SIGKILL to every process of the stack."""
        if self.process is None or self.process.poll() is not None:
            return
        if graceful:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=90)
                return
        for pid in process_tree(self.process.pid).values():  # each child has a session of its own
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()


# ---------------------------------------------------------------------------------------------- the data


def schema(raw: str, score: bool = False) -> dict[str, Any]:
    metrics: list[dict[str, Any]] = [{"name": "amount", "dataType": "DOUBLE"}]
    if score:  # what AlterTableTask adds to every segment
        metrics.append({"name": "score", "dataType": "LONG", "defaultNullValue": 7})
    return {
        "schemaName": raw,
        "dimensionFieldSpecs": [
            {"name": "id", "dataType": "LONG"},
            {"name": "country", "dataType": "STRING"},
        ],
        "metricFieldSpecs": metrics,
        "dateTimeFieldSpecs": [
            {
                "name": "ts",
                "dataType": "LONG",
                "format": "1:MILLISECONDS:EPOCH",
                "granularity": "1:MILLISECONDS",
            }
        ],
    }


def csv_text(first_id: int, count: int, day: int) -> str:
    lines = ["id,country,amount,ts"]
    for i in range(first_id, first_id + count):
        lines.append(f"{i},{COUNTRIES[i % 3]},{i % 7 + 0.5},{D0 + day * DAY + i}")
    return "\n".join(lines) + "\n"


def us_rows(first_id: int, count: int) -> int:
    return sum(1 for i in range(first_id, first_id + count) if COUNTRIES[i % 3] == "US")


class Workload:
    def __init__(
        self, stack: Stack, http: httpx.AsyncClient, temporal: Client, pg_url: str, run: str
    ) -> None:
        self.stack, self.http, self.temporal, self.pg_url, self.run = stack, http, temporal, pg_url, run
        self.records: list[PlanRecord] = []

    async def _ok(self, response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise RuntimeError(f"{response.request.method} {response.request.url.path}: {response.text}")
        return response.json()

    async def create(self, raw: str, table_type: str, **extra: Any) -> str:
        await self._ok(await self.http.post("/schemas", json=schema(raw)))
        await self._ok(
            await self.http.post("/tables", json={"tableName": raw, "tableType": table_type, **extra})
        )
        return f"{raw}_{table_type}"

    async def rows(self, table: str) -> tuple[int, int]:
        """Rows and segments readers see."""
        raw, _, table_type = table.rpartition("_")
        found = await self._ok(await self.http.get(f"/segments/{raw}/metadata", params={"type": table_type}))
        return sum(int(s["totalDocs"]) for s in found.values()), len(found)

    async def plan(self, cycle: int, task_type: str, table: str, expected: int, **configs: str) -> PlanRecord:
        """Runs one plan to its end and records its status, history and the catalog's size; the caller fills
        in the rows it finds."""
        record = PlanRecord(cycle, task_type, table, expected_rows=expected)
        self.records.append(record)
        started = time.monotonic()
        body = {
            "taskType": task_type,
            "tableName": table,
            "taskConfigs": {"enableTaskOrchestration": "true", **configs},
        }
        record.plan_id = (await self._ok(await self.http.post("/tasks/execute", json=body)))["taskPlanId"]
        plan = await self._ok(
            await self.http.get(f"/tasks/taskPlans/{record.plan_id}", params={"waitForTerminalSeconds": 600})
        )
        record.seconds = round(time.monotonic() - started, 2)
        record.status, record.batches = plan["status"], plan["numBatches"]
        description = await self.temporal.get_workflow_handle(f"{table}__{task_type}").describe()
        record.history_events = description.history_length
        record.history_bytes = description.raw_description.workflow_execution_info.history_size_bytes
        record.catalog_mb = round(file_mb(self.stack.catalog_file), 3)
        record.catalog_rows = sum((await asyncio.to_thread(sqlite_rows, self.stack.catalog_file)).values())
        if record.status != "COMPLETED":
            record.error = f"plan ended {record.status}: {plan.get('statusMessage')}"
        return record

    async def offline_chain(self, cycle: int) -> None:
        raw = f"{self.run}c{cycle}a"
        table = await self.create(raw, "OFFLINE")
        input_dir = self.stack.data_dir / "input" / raw
        input_dir.mkdir(parents=True)
        total = FILES * ROWS_PER_FILE
        for f in range(FILES):  # two files a day, on two days: MergeRollupTask merges each pair
            (input_dir / f"part-{f}.csv").write_text(csv_text(f * ROWS_PER_FILE, ROWS_PER_FILE, f % 2))
        noop = await self.plan(
            cycle, "NoOpTask", table, 3, numBatches="3", numSubtasksPerBatch="4", subtaskSleepMs="20"
        )
        noop.rows = noop.batches  # a NoOpTask plan has no rows: its batches are what it must do
        ingest = await self.plan(
            cycle, "FileIngestionTask", table, total, inputDirURI=str(input_dir),
            includeFileNamePattern="glob:**/*.csv", inputFormat="csv", ingestionMode="APPEND",
            tableMaxNumTasks="2",
        )  # fmt: skip
        ingest.rows = (await self.rows(table))[0]
        kept = total - us_rows(0, total)
        purge = await self.plan(
            cycle, "SegmentPurgeTask", table, kept, purgeFilter="country = 'US'", tableMaxNumTasks="2"
        )
        purge.rows = (await self.rows(table))[0]
        await self._ok(await self.http.post("/schemas", json=schema(raw, score=True)))
        alter = await self.plan(cycle, "AlterTableTask", table, kept, tableMaxNumTasks="2")
        alter.rows = (await self.rows(table))[0]
        merge = await self.plan(
            cycle,
            "MergeRollupTask",
            table,
            kept,
            **{"1day.bucketTimePeriod": "1d", "1day.bufferTimePeriod": "1d"},
        )
        merge.rows, segments = await self.rows(table)
        if segments != 2:
            merge.error = f"{segments} segments after the merge, expected 2 (one a day)"
        shutil.rmtree(input_dir)

    async def realtime_chain(self, cycle: int) -> None:
        raw = f"{self.run}c{cycle}b"
        stream = {"streamConfigs": {"realtime.segment.flush.threshold.rows": str(REALTIME_ROWS)}}
        realtime = await self.create(raw, "REALTIME", tableIndexConfig=stream)
        offline = await self.create(raw, "OFFLINE")
        for day in range(3):  # each upload fills and commits one segment, a day each
            await self._ok(
                await self.http.post(
                    "/ingestFromFile",
                    params={"tableNameWithType": realtime, "batchConfigMapStr": '{"inputFormat": "csv"}'},
                    files={"file": ("rows.csv", csv_text(day * REALTIME_ROWS, REALTIME_ROWS, day).encode())},
                )
            )
        total = 3 * REALTIME_ROWS
        moved = await self.plan(
            cycle,
            "RealtimeToOfflineSegmentsTask",
            realtime,
            total,
            bucketTimePeriod="1d",
            bufferTimePeriod="1d",
        )
        moved.rows = (await self.rows(offline))[0]
        target = self.stack.data_dir / "export" / raw
        to_dir = await self.plan(
            cycle,
            "DataExportTask",
            realtime,
            total,
            bufferTimePeriod="0s",
            **{"externalTable.target": str(target)},
        )
        to_dir.rows = await asyncio.to_thread(parquet_rows, target)
        shutil.rmtree(target, ignore_errors=True)
        pg_table = f"{raw}_export"
        to_pg = await self.plan(
            cycle, "DataExportTask", realtime, total, bufferTimePeriod="0s",
            **{"externalTable.target": self.pg_url, "externalTable.tableName": pg_table},
        )  # fmt: skip
        to_pg.rows = await asyncio.to_thread(self.pg_rows_and_drop, pg_table, raw)

    def pg_rows_and_drop(self, table: str, raw: str) -> int:
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
            conn.execute("DELETE FROM taskplan_exported_segments WHERE source_table LIKE %s", (f"{raw}\\_%",))
        return int(count[0]) if count else 0

    async def cycle(self, cycle: int) -> None:
        first = len(self.records)
        results = await asyncio.gather(
            self.offline_chain(cycle), self.realtime_chain(cycle), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, Exception):
                raise r  # cancelled (Ctrl-C, SIGTERM): stop here, the stack is stopped on the way out
        errors = [r for r in results if isinstance(r, Exception)]
        for raw in (f"{self.run}c{cycle}a", f"{self.run}c{cycle}b"):
            response = await self.http.delete(f"/tables/{raw}")
            if response.status_code not in (200, 404):
                errors.append(RuntimeError(f"drop {raw}: {response.text}"))
        for record in self.records[first:]:
            if record.status == "COMPLETED" and record.rows != record.expected_rows and not record.error:
                record.error = f"{record.rows} rows, expected {record.expected_rows}"
        if errors:
            self.records.append(PlanRecord(cycle, "cycle", "", error="; ".join(repr(e) for e in errors)))


def parquet_rows(target: Path) -> int:
    files = sorted(target.rglob("*.parquet"))
    if not files:
        return 0
    conn = duckdb.connect()
    try:
        row = conn.execute("SELECT count(*) FROM read_parquet(?)", [[str(f) for f in files]]).fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0


# ------------------------------------------------------------------------------------------ the sampling


async def sampler(
    stack: Stack, workload: Workload, every: float, samples: list[dict[str, Any]], t0: float
) -> None:
    while True:
        samples.append(await asyncio.to_thread(take_sample, stack, workload, t0))
        await asyncio.sleep(every)


def take_sample(stack: Stack, workload: Workload, t0: float) -> dict[str, Any]:
    assert stack.process is not None
    processes = {}
    for role, pid in process_tree(stack.process.pid).items():
        found = sample_process(pid)
        if found is not None:
            processes[role] = asdict(found)
    rows = sqlite_rows(stack.catalog_file)
    return {
        "minute": round((time.monotonic() - t0) / 60, 3),
        "load1": round(os.getloadavg()[0], 2),
        "processes": processes,
        "catalog_mb": round(file_mb(stack.catalog_file), 3),
        "catalog_rows": sum(rows.values()),
        "catalog_rows_by_table": {k: v for k, v in rows.items() if v},
        "temporal_db_mb": round(file_mb(stack.data_dir / "temporal.db"), 3),
        "temporal_caches": stack.temporal_caches(),
        "plans_done": sum(1 for r in workload.records if r.status),
    }


# ------------------------------------------------------------------------------------------------ the run


@contextlib.asynccontextmanager
async def running_stack(options: SoakOptions) -> AsyncIterator[Stack]:
    scratch = None if options.data_dir else tempfile.mkdtemp(prefix="taskplan-soak-")
    data_dir = options.data_dir or Path(scratch or "")
    data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(data_dir)
    try:
        await asyncio.to_thread(stack.start)
        yield stack
    except BaseException:
        scratch = None  # kept, with the stack's log, to see what went wrong
        print(f"soak: the stack's data and log are kept in {data_dir}", file=sys.stderr)
        raise
    finally:
        await asyncio.to_thread(stack.stop, options.graceful_stop)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


async def run_soak(options: SoakOptions) -> dict[str, Any]:
    run = f"soak{uuid.uuid4().hex[:6]}"
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    samples: list[dict[str, Any]] = []
    async with running_stack(options) as stack:
        temporal = await Client.connect(f"127.0.0.1:{stack.temporal_port}")
        async with httpx.AsyncClient(base_url=stack.url, timeout=660) as http:
            workload = Workload(stack, http, temporal, options.pg_url, run)
            t0 = time.monotonic()
            sampling = asyncio.create_task(sampler(stack, workload, options.sample_seconds, samples, t0))
            cycle = 0
            while time.monotonic() - t0 < options.minutes * 60 and (
                options.max_cycles is None or cycle < options.max_cycles
            ):
                await workload.cycle(cycle)
                cycle += 1
            sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampling
            samples.append(await asyncio.to_thread(take_sample, stack, workload, t0))
    return report(options, run, started, cycle, samples, workload.records)


def report(
    options: SoakOptions,
    run: str,
    started: str,
    cycles: int,
    samples: list[dict[str, Any]],
    records: list[PlanRecord],
) -> dict[str, Any]:
    roles = sorted({role for s in samples for role in s["processes"]})
    verdicts = [flatness(role, samples) for role in roles]
    plans = [r for r in records if r.task_type != "cycle"]
    done = [r for r in plans if r.status == "COMPLETED"]
    return {
        "run": run,
        "started": started,
        "command": f"SOAK_MINUTES={options.minutes:g} SOAK_SAMPLE_SECONDS={options.sample_seconds:g} "
        "python -m bench.soak",
        "minutes": options.minutes,
        "cycles": cycles,
        "plans": len(plans),
        "plans_ok": sum(1 for r in plans if r.ok),
        "errors": [asdict(r) for r in records if not r.ok],
        "per_task_type": {
            t: {
                "plans": len(of),
                "seconds_median": sorted(r.seconds for r in of)[len(of) // 2],
                "history_events_max": max(r.history_events for r in of),
                "history_bytes_max": max(r.history_bytes for r in of),
            }
            for t in sorted({r.task_type for r in done})
            for of in [[r for r in done if r.task_type == t]]
        },
        "load1": [s["load1"] for s in samples],
        "verdicts": [v.as_dict() for v in verdicts],
        "flat": all(v.flat for v in verdicts),
        "samples": samples,
        "records": [asdict(r) for r in records],
    }


def table(result: dict[str, Any]) -> str:
    roles = [v["role"] for v in result["verdicts"]]
    head = ["min", "load", *(f"{r} MB/fds" for r in roles), "catalog MB/rows", "temporal.db MB"]
    head += ["temporal cache", "plans"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in result["samples"]:
        cells = [f"{s['minute']:.1f}", f"{s['load1']:.1f}"]
        cells += [
            f"{s['processes'][r]['rss_mb']:.0f} / {s['processes'][r]['fds']}" if r in s["processes"] else "-"
            for r in roles
        ]
        cells += [
            f"{s['catalog_mb']:.2f} / {s['catalog_rows']}",
            f"{s['temporal_db_mb']:.1f}",
            f"{s.get('temporal_caches', {}).get('mutable_state_cache', '-')}",  # entries
            str(s["plans_done"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| process | RSS first/last of 2nd half MB | peak MB | slope MB/min | growth/allowed MB "
              "| fds | flat |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for v in result["verdicts"]:
        lines.append(
            f"| {v['role']} | {v['rss_first_mb']:.0f} / {v['rss_last_mb']:.0f} | {v['rss_peak_mb']:.0f} | "
            f"{v['rss_slope_mb_per_min']:+.2f} | {v['rss_growth_mb']:+.1f} / {v['rss_allowed_mb']:.1f} | "
            f"{v['fds_min']}-{v['fds_max']} | {'yes' if v['flat'] else 'NO'} |"
        )
    lines += [
        "",
        "| task type | plans | median s | history events max | history bytes max |",
        "|---|---|---|---|---|",
    ]
    for t, f in result["per_task_type"].items():
        lines.append(
            f"| {t} | {f['plans']} | {f['seconds_median']} | {f['history_events_max']} "
            f"| {f['history_bytes_max']} |"
        )
    lines.append(
        f"\n{result['plans_ok']} of {result['plans']} plans COMPLETED with the expected rows, "
        f"{result['cycles']} "
        f"cycles; memory and fds {'flat' if result['flat'] else 'NOT flat'}"
    )
    return "\n".join(lines)


async def _until_signalled(options: SoakOptions) -> dict[str, Any]:
    soak = asyncio.ensure_future(run_soak(options))
    # SIGTERM cancels the soak like Ctrl-C does, so the stack is stopped before the process exits.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, soak.cancel)
    return await soak


def main() -> int:
    options = SoakOptions.from_env()
    result = asyncio.run(_until_signalled(options))
    options.results_dir.mkdir(parents=True, exist_ok=True)
    path = options.results_dir / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"\nJSON: {path}")
    return 0 if result["flat"] and not result["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
