"""Operator commands over the REST API: `taskplan execute | plans list|show|watch|abort | tables | schedule`.

Output is a table by default and the API's JSON with ``--json``. ``plans watch`` draws a progress bar
(inputs processed of total, batch number, rate, ETA) until the plan ends, and exits 0 only if it COMPLETED.
Exit codes: 0 success, 1 the plan ended other than COMPLETED, 2 the API refused the request or is down.

Argument parsing is the CLI's (taskplan/cli.py); these functions take typed values and a rich ``Console``.
On a terminal, tables and the progress bar are rich's; into a pipe or a file the same commands write plain
text (no escape codes, no wrapping, no trailing blanks) and ``plans watch`` one progress line per poll,
so scripts and logs read what they always did.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

ACTIVE = ("ACTIVE", "ABORTING")
BAR_WIDTH = 30
# Output that is not a terminal is never wrapped: a plan id cut in two breaks `grep` and `awk`.
PIPE_WIDTH = 1 << 16


class ApiFailure(Exception):
    pass


class Api:
    def __init__(self, url: str, auth: tuple[str, str] | None = None, timeout: float = 30.0) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), auth=auth, timeout=timeout)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiFailure(f"cannot reach the API at {self.http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise ApiFailure(f"{response.status_code}: {message}")
        return response.json()


def console_for(file: TextIO, *, terminal: bool | None = None) -> Console:
    """A console that styles a terminal and writes plain text anywhere else (rich's own tty check)."""
    # Plan messages and task types are data, never rich markup ("[Errno 2]" must print as it is); lines are
    # left whole for the terminal to wrap, so a plan id copied from the screen has no line break in it.
    console = Console(
        file=file, force_terminal=terminal, soft_wrap=True, markup=False, highlight=False, emoji=False
    )
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    return console


def run(
    command: Callable[[Api, Console], int],
    url: str,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one command against the API at ``url`` ($TASKPLAN_USER/$TASKPLAN_PASSWORD for BasicAuth)."""
    console = console_for(out or sys.stdout)
    user, password = os.environ.get("TASKPLAN_USER"), os.environ.get("TASKPLAN_PASSWORD")
    api = Api(url, (user, password or "") if user else None)
    try:
        return command(api, console)
    except ApiFailure as exc:
        console_for(err or sys.stderr).print(f"error: {exc}", style="red")
        return 2
    except KeyboardInterrupt:
        return 130


def _print_json(value: Any, console: Console) -> None:
    # The API's JSON exactly, past rich (no highlighting, no wrapping).
    console.file.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _print_table(console: Console, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, overflow="fold" if header == "MESSAGE" else "ellipsis")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    if console.is_terminal:
        console.print(table)
        return
    with console.capture() as captured:
        console.print(table)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def execute(
    api: Api,
    console: Console,
    *,
    task_type: str,
    table: str,
    task_configs: Sequence[str],
    legacy: bool,
    as_json: bool,
) -> int:
    configs: dict[str, str] = {}
    for item in task_configs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiFailure(f"task config {item!r} is not KEY=VALUE")
        configs[key] = value
    if not legacy:
        configs.setdefault("enableTaskOrchestration", "true")
    body = {"taskType": task_type, "tableName": table, "taskConfigs": configs}
    result = api.call("POST", "/tasks/execute", json=body)
    if as_json:
        _print_json(result, console)
    elif "taskPlanId" in result:
        console.print(f"task plan {result['taskPlanId']} started")
    elif not result:  # Pinot's {}: nothing generated, or the task type's queue is stopped
        console.print(
            f"no task started: nothing to generate for {table}, or the {task_type} queue is stopped"
        )
    else:
        for name, task in result.items():
            console.print(f"{name}: legacy task {task}")
    return 0


def _progress(plan: Mapping[str, Any]) -> str:
    total, done = plan.get("inputsToProcess") or 0, plan.get("inputsProcessed") or 0
    unit = plan.get("inputUnit") or "inputs"
    return f"{done}/{total} {unit}" if total else f"{plan.get('numBatches', 0)} batches"


def plans_list(api: Api, console: Console, *, table: str | None, task_type: str | None, as_json: bool) -> int:
    params = {k: v for k, v in (("tableNameWithType", table), ("taskType", task_type)) if v}
    plans = api.call("GET", "/tasks/taskPlans/active", params={**params, "batchLimit": 0})
    if as_json:
        _print_json(plans, console)
        return 0
    rows = [
        (p["planId"], p["status"], p["numBatches"], _progress(p), (p.get("statusMessage") or "")[:60])
        for p in plans
    ]
    _print_table(console, ("PLAN ID", "STATUS", "BATCHES", "PROGRESS", "MESSAGE"), rows)
    return 0


def plans_show(api: Api, console: Console, *, plan_id: str, batches: int, as_json: bool) -> int:
    plan = api.call("GET", f"/tasks/taskPlans/{plan_id}", params={"batchLimit": batches})
    if as_json:
        _print_json(plan, console)
        return 0
    fields = [
        ("plan", plan["planId"]),
        ("table", plan["tableNameWithType"]),
        ("task type", plan["taskType"]),
        ("status", plan["status"]),
        ("source", plan["source"]),
        ("progress", _progress(plan)),
        ("batches", f"{plan['numBatches']} ({plan.get('numFailedBatches', 0)} failed)"),
        ("message", plan.get("statusMessage") or ""),
    ]
    if plan.get("paused"):
        fields.append(("paused", plan.get("pauseReason") or ""))
    report = plan.get("report") or {}
    if report:
        rows, segs = report.get("rowStats", {}), report.get("segments", {})
        fields.append(("rows", ", ".join(f"{k} {v}" for k, v in rows.items())))
        fields.append(("segments", ", ".join(f"{k} {v}" for k, v in segs.items())))
    for key, value in fields:
        console.print(f"{key:<10} {value}")
    if plan.get("batches"):
        rows = [
            (
                b["batchSequence"],
                b["submittedTaskName"],
                b["taskState"],
                b["numSubtasks"],
                b["numFailedSubtasks"],
            )
            for b in plan["batches"]
        ]
        console.print()
        _print_table(console, ("BATCH", "TASK", "STATE", "SUBTASKS", "FAILED"), rows)
    return 0


def progress_line(plan: Mapping[str, Any], started: float, first_done: int, now: float) -> str:
    """One poll of ``plans watch`` as a log line, for output that is not a terminal."""
    total, done = plan.get("inputsToProcess") or 0, plan.get("inputsProcessed") or 0
    fraction = min(1.0, done / total) if total else 0.0
    filled = int(fraction * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    elapsed = max(now - started, 1e-9)
    rate = (done - first_done) / elapsed
    eta = "-"
    if rate > 0 and total > done:
        eta = time.strftime("%H:%M:%S", time.gmtime((total - done) / rate))
    unit = plan.get("inputUnit") or "inputs"
    return (
        f"[{bar}] {done}/{total} {unit}  batch {plan.get('numBatches', 0)}  {rate:.1f} {unit}/s  "
        f"ETA {eta}  {plan['status']}"
    )


class _RateColumn(ProgressColumn):
    """Inputs per second over rich's recent samples, in the plan's own unit."""

    def render(self, task: Task) -> Text:
        unit = task.fields["unit"]
        return Text(f"{task.speed:.1f} {unit}/s" if task.speed else f"- {unit}/s")


def _progress_bar(console: Console) -> Progress:
    return Progress(
        BarColumn(bar_width=BAR_WIDTH),
        TextColumn("{task.fields[counts]}", markup=False),
        TextColumn("batch {task.fields[batch]}", markup=False),
        _RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}", markup=False),
        console=console,
    )


def _bar_fields(plan: Mapping[str, Any]) -> dict[str, Any]:
    total, done = plan.get("inputsToProcess") or 0, plan.get("inputsProcessed") or 0
    unit = plan.get("inputUnit") or "inputs"
    return {
        "total": total or None,  # unknown yet: rich pulses the bar
        "completed": done,
        "counts": f"{done}/{total} {unit}",
        "unit": unit,
        "batch": plan.get("numBatches", 0),
        "status": plan["status"],
    }


def plans_watch(api: Api, console: Console, *, plan_id: str, interval: float, as_json: bool) -> int:
    def poll() -> dict[str, Any]:
        plan: dict[str, Any] = api.call("GET", f"/tasks/taskPlans/{plan_id}", params={"batchLimit": 0})
        return plan

    if as_json:
        plan = poll()
        while plan["status"] in ACTIVE:
            time.sleep(interval)
            plan = poll()
        _print_json(plan, console)
    elif console.is_terminal:
        with _progress_bar(console) as bar:
            plan = poll()
            task = bar.add_task(plan_id, **_bar_fields(plan))
            while plan["status"] in ACTIVE:
                time.sleep(interval)
                plan = poll()
                bar.update(task, **_bar_fields(plan))
    else:
        started, plan = time.monotonic(), poll()
        first = plan.get("inputsProcessed") or 0
        console.print(progress_line(plan, started, first, time.monotonic()))
        while plan["status"] in ACTIVE:
            time.sleep(interval)
            plan = poll()
            console.print(progress_line(plan, started, first, time.monotonic()))
    if not as_json:
        console.print(f"plan {plan['planId']} ended {plan['status']}: {plan.get('statusMessage') or ''}")
    return 0 if plan["status"] == "COMPLETED" else 1


def plans_abort(api: Api, console: Console, *, plan_id: str, as_json: bool) -> int:
    plan = api.call("DELETE", f"/tasks/taskPlans/{plan_id}")
    if as_json:
        _print_json(plan, console)
    else:
        console.print(f"plan {plan['planId']} is {plan['status']}")
    return 0


def plans_pause(api: Api, console: Console, *, plan_id: str, resume: bool, reason: str, as_json: bool) -> int:
    verb = "resume" if resume else "pause"
    plan = api.call("PUT", f"/tasks/taskPlans/{plan_id}/{verb}", params={"reason": reason} if reason else {})
    if as_json:
        _print_json(plan, console)
    else:
        state = "paused" if plan.get("paused") else plan["status"]
        console.print(f"plan {plan['planId']} is {state}: {plan.get('statusMessage', '')}")
    return 0


def tables(api: Api, console: Console, *, as_json: bool) -> int:
    names = api.call("GET", "/tables")["tables"]
    configs = {name: api.call("GET", f"/tables/{name}") for name in names}
    if as_json:
        _print_json(configs, console)
        return 0
    rows = []
    for name in names:
        for table_type, config in sorted(configs[name].items()):
            task_map = (config.get("task") or {}).get("taskTypeConfigsMap") or {}
            schedules = [f"{t} ({c['schedule']})" for t, c in sorted(task_map.items()) if c.get("schedule")]
            rows.append((config["tableName"], table_type, ", ".join(sorted(task_map)), ", ".join(schedules)))
    _print_table(console, ("TABLE", "TYPE", "TASK TYPES", "SCHEDULES"), rows)
    return 0


def segments(api: Api, console: Console, *, table: str, as_json: bool) -> int:
    """A table's segments (every type of a raw name) with Pinot's segment metadata."""
    found: dict[str, dict[str, dict[str, str]]] = {}
    for entry in api.call("GET", f"/segments/{table}", params={"excludeReplacedSegments": "true"}):
        for table_type, names in entry.items():
            typed = table if table.endswith(f"_{table_type}") else f"{table}_{table_type}"
            found[typed] = {
                name: api.call("GET", f"/segments/{typed}/{quote(name, safe='')}/metadata") for name in names
            }
    if as_json:
        _print_json(found, console)
        return 0
    rows = []
    for typed, listed in sorted(found.items()):
        for name, meta in sorted(listed.items()):
            span = f"{meta.get('segment.start.time', '')}..{meta.get('segment.end.time', '')}"
            rows.append(
                (
                    typed,
                    name,
                    meta.get("segment.total.docs", ""),
                    meta.get("segment.size.in.bytes", ""),
                    meta.get("segment.realtime.status", "DONE"),
                    span if span != ".." else "",
                )
            )
    _print_table(console, ("TABLE", "SEGMENT", "DOCS", "BYTES", "STATUS", "TIME RANGE"), rows)
    return 0


def schedule(api: Api, console: Console, *, task_type: str | None, table: str | None, as_json: bool) -> int:
    params = {k: v for k, v in (("taskType", task_type), ("tableName", table)) if v}
    result = api.call("POST", "/tasks/schedule", params=params)
    if as_json:
        _print_json(result, console)
        return 0
    rows = []
    # Pinot's answer is flat ({taskType: "names", generationErrors, schedulingErrors}); taskplan's cycle per
    # task type is the JSON string under cycleResults.
    cycles = json.loads(result.get("cycleResults") or "{}")
    for name, cycle in sorted(cycles.items()):
        for table_name, plan_id in sorted(cycle["taskPlans"].items()):
            rows.append((name, table_name, "plan", plan_id))
        for table_name, active in sorted(cycle["skipped"].items()):
            rows.append((name, table_name, "skipped (active plan)", active))
        for table_name, task in sorted(cycle["legacyTasks"].items()):
            rows.append((name, table_name, "legacy", task))
        for table_name, why in sorted(cycle["errors"].items()):
            rows.append((name, table_name, "error", why))
    _print_table(console, ("TASK TYPE", "TABLE", "OUTCOME", "DETAIL"), rows)
    return 0
