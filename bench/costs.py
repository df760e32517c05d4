"""What plans cost, measured (bench/sizing.py uses it): Temporal history events, bytes, workflow and
activity tasks and the actions Temporal Cloud bills, counted from fetched histories; catalog rows and bytes
per table (SQLite `dbstat`, PostgreSQL `pg_total_relation_size`); CPU of the controller (this process), the
minion processes and the dev server (`/proc/<pid>/stat`)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench.harness import BenchStack
from taskplan.catalog import Catalog

CLK = os.sysconf("SC_CLK_TCK")
E = EventType


# -- Temporal ----------------------------------------------------------------------------------------------


def count_actions(events: Iterable[HistoryEvent]) -> Counter[str]:
    """The actions Temporal Cloud bills for one run, from its history (docs.temporal.io/cloud/actions):
    a workflow start (client, continue-as-new, child), and 2 more for a Schedule's firing; each activity
    scheduled, and each retry (the started event's attempt - 1); local activities: one per workflow task
    that recorded markers, however many; each timer, signal, accepted Update, search-attribute upsert.
    Not in a history, so not counted here: activity heartbeats that reach the server (a subtask heartbeats
    every heartbeatTimeout/3, 10 s by default, so the short subtasks measured here send none), queries, and
    workflow-task heartbeats of a local activity longer than 8 s."""
    actions: Counter[str] = Counter()
    marker_tasks: set[int] = set()
    for event in events:
        kind = event.event_type
        if kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            actions["workflow started"] += 1
            fields = event.workflow_execution_started_event_attributes.search_attributes.indexed_fields
            if "TemporalScheduledById" in fields:
                actions["schedule firing"] += 2
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            actions["activity"] += 1
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            actions["activity retry"] += max(0, event.activity_task_started_event_attributes.attempt - 1)
        elif kind == E.EVENT_TYPE_MARKER_RECORDED:
            marker_tasks.add(event.marker_recorded_event_attributes.workflow_task_completed_event_id)
        elif kind == E.EVENT_TYPE_TIMER_STARTED:
            actions["timer"] += 1
        elif kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            actions["signal"] += 1
        elif kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            actions["update"] += 1
        elif kind == E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            actions["search attributes"] += 1
        elif kind == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            actions["child workflow"] += 2
    actions["local activities"] += len(marker_tasks)
    return +actions


def local_activity_type(event: HistoryEvent) -> str:
    """The local activity a marker records (the Python SDK keeps its type in the marker's `data`)."""
    payloads = event.marker_recorded_event_attributes.details["data"].payloads
    try:
        return str(json.loads(payloads[0].data).get("activity_type", "?")) if payloads else "?"
    except (ValueError, AttributeError):
        return "?"


@dataclass
class Cost:
    """What some plans cost; the sum of several is their total (`+`)."""

    plans: int = 0
    workflow_runs: int = 0  # plan runs (continue-as-new included) and cron-trigger runs
    batches: int = 0
    steps: int = 0  # next_batch local activities: one per batch plus the last, empty generation
    subtasks: int = 0
    events: int = 0
    history_bytes: int = 0
    workflow_tasks: int = 0  # completed, failed or timed out
    activity_tasks: int = 0  # activity attempts started (subtasks and the trigger's activity)
    actions: Counter[str] = field(default_factory=Counter)
    event_types: Counter[str] = field(default_factory=Counter)
    catalog_rows: Counter[str] = field(default_factory=Counter)
    catalog_bytes: Counter[str] = field(default_factory=Counter)
    catalog_file_bytes: int = 0
    controller_cpu_s: float = 0.0
    minion_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    server_db_bytes: int = 0  # growth of the dev server's SQLite file (history, mutable state, visibility)
    seconds: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        summed: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            summed[f.name] = Counter(a) + Counter(b) if isinstance(a, Counter) else a + b
        return Cost(**summed)

    @property
    def total_actions(self) -> int:
        return sum(self.actions.values())

    def add_history(self, events: list[HistoryEvent]) -> None:
        self.workflow_runs += 1
        self.events += len(events)
        self.history_bytes += sum(e.ByteSize() for e in events)
        self.actions.update(count_actions(events))
        for event in events:
            self.event_types[EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")] += 1
            if event.event_type in (
                E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                E.EVENT_TYPE_WORKFLOW_TASK_FAILED,
                E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
            ):
                self.workflow_tasks += 1
            elif event.event_type == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                self.activity_tasks += 1
            elif (
                event.event_type == E.EVENT_TYPE_MARKER_RECORDED
                and local_activity_type(event) == "next_batch"
            ):
                self.steps += 1

    def metric(self, name: str) -> float:
        if name == "actions":
            return float(self.total_actions)
        if name == "catalog_bytes":
            return float(sum(self.catalog_bytes.values()))
        if name == "catalog_rows":
            return float(sum(self.catalog_rows.values()))
        return float(getattr(self, name))


async def run_histories(client: Client, plan_id: str) -> list[list[HistoryEvent]]:
    """Every run of a plan (continue-as-new included), read once visibility lists the whole chain."""
    for _ in range(100):
        runs = [
            w async for w in client.list_workflows(f"WorkflowType = 'TaskPlan' AND TaskPlanId = '{plan_id}'")
        ]
        histories = []
        for run in runs:
            history = await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
            histories.append(list(history.events))
        continued = sum(
            1 for h in histories if h[-1].event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        )
        if runs and continued == len(runs) - 1:
            return histories
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the runs of plan {plan_id} are not all listed")


# -- CPU and catalog -----------------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime, stime


def dev_server_pid() -> int | None:
    """The `temporal` dev server this process started."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name, rest = stat.split(" (", 1)[1].rsplit(")", 1)
            if name.startswith("temporal") and int(rest.split()[1]) == me:
                return int(entry.name)
    return None


@dataclass
class Meters:
    """CPU of the controller (this process, less its idle rate), the minions and the dev server."""

    stack: BenchStack
    idle_cpu_per_s: float = 0.0
    server_pid: int | None = field(default_factory=dev_server_pid)

    def read(self) -> tuple[float, float, float, float, int]:
        minions = sum(proc_cpu_s(p.pid) for p in self.stack.minions)
        server = proc_cpu_s(self.server_pid) if self.server_pid else 0.0
        db = self.stack.data_dir / "temporal.db"
        size = sum(p.stat().st_size for p in (db, db.with_name("temporal.db-wal")) if p.exists())
        return time.monotonic(), time.process_time(), minions, server, size

    async def measure_idle(self, seconds: float) -> None:
        t0, c0, *_ = self.read()
        await asyncio.sleep(seconds)
        t1, c1, *_ = self.read()
        self.idle_cpu_per_s = (c1 - c0) / (t1 - t0)

    def charge(self, cost: Cost, before: tuple[float, float, float, float, int]) -> None:
        t1, c1, m1, s1, d1 = self.read()
        t0, c0, m0, s0, d0 = before
        cost.server_db_bytes += d1 - d0
        cost.seconds += t1 - t0
        cost.controller_cpu_s += max(0.0, (c1 - c0) - self.idle_cpu_per_s * (t1 - t0))
        cost.minion_cpu_s += m1 - m0
        cost.server_cpu_s += s1 - s0


def catalog_usage(catalog: Catalog) -> tuple[Counter[str], Counter[str], int]:
    """Rows and bytes (table with its indexes) per catalog table, and the database's size."""
    engine = catalog.engine
    rows: Counter[str] = Counter()
    size: Counter[str] = Counter()
    with engine.connect() as conn:
        names = [n for n in sa.inspect(conn).get_table_names() if n.startswith("tp_")]
        for name in names:
            rows[name] = int(conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one())
        if engine.dialect.name == "sqlite":
            owner: dict[str, str] = dict(
                conn.exec_driver_sql("SELECT name, tbl_name FROM sqlite_master").fetchall()
            )
            for name, pages in conn.exec_driver_sql("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                if owner.get(name, name) in names:
                    size[owner.get(name, name)] += int(pages)
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            total = int(pages) * int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        else:
            for name in names:
                query = sa.text("SELECT pg_total_relation_size(CAST(:n AS regclass))")
                size[name] = int(conn.execute(query, {"n": name}).scalar_one())
            total = int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
    return rows, size, total


def charge_catalog(cost: Cost, catalog: Catalog, before: tuple[Counter[str], Counter[str], int]) -> None:
    rows, size, total = catalog_usage(catalog)
    for name in rows:
        cost.catalog_rows[name] += rows[name] - before[0][name]
        cost.catalog_bytes[name] += size[name] - before[1][name]
    cost.catalog_file_bytes += total - before[2]
