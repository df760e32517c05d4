"""Operator commands over the REST API: `taskplan execute | plans list|show|watch|abort | tables | schedule`.

Output is a table by default and the API's JSON with ``--json``. ``plans watch`` draws a progress bar
(inputs processed of total, batch number, rate, ETA) until the plan ends, and exits 0 only if it COMPLETED.
Exit codes: 0 success, 1 the plan ended other than COMPLETED, 2 the API refused the request or is down.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import httpx

ACTIVE = ("ACTIVE", "ABORTING")
BAR_WIDTH = 30


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


def add_operator_commands(sub: Any) -> None:
    """Register the operator subcommands on the `taskplan` parser's subparsers."""

    def common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--url", help="REST API (default: $TASKPLAN_URL or controller.host/port)")
        parser.add_argument("--json", action="store_true", help="print the API's JSON")
        return parser

    execute = common(sub.add_parser("execute", help="trigger a task (a plan when orchestrated)"))
    execute.add_argument("task_type")
    execute.add_argument("table")
    execute.add_argument("-c", "--config", dest="task_configs", action="append", default=[],
                         metavar="KEY=VALUE", help="a task config (repeatable)")  # fmt: skip
    execute.add_argument("--legacy", action="store_true", help="one-shot batch: no enableTaskOrchestration")

    plans = sub.add_parser("plans", help="list, show, watch or abort task plans")
    plan_sub = plans.add_subparsers(dest="plans_command", required=True)
    listing = common(plan_sub.add_parser("list", help="active plans"))
    listing.add_argument("--table")
    listing.add_argument("--task-type")
    for name, text in (
        ("show", "one plan"),
        ("watch", "follow a plan to its end"),
        ("abort", "abort a plan"),
    ):
        command = common(plan_sub.add_parser(name, help=text))
        command.add_argument("plan_id")
        if name == "watch":
            command.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
        if name == "show":
            command.add_argument("--batches", type=int, default=20, help="most recent batch records shown")

    common(sub.add_parser("tables", help="tables and their task types"))
    schedule = common(sub.add_parser("schedule", help="run one trigger cycle now"))
    schedule.add_argument("--task-type")
    schedule.add_argument("--table")


def run_operator_command(
    args: argparse.Namespace, default_url: str, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    url = args.url or os.environ.get("TASKPLAN_URL") or default_url
    user, password = os.environ.get("TASKPLAN_USER"), os.environ.get("TASKPLAN_PASSWORD")
    api = Api(url, (user, password or "") if user else None)
    commands: dict[str, Callable[[Api, argparse.Namespace, TextIO], int]] = {
        "execute": _execute,
        "tables": _tables,
        "schedule": _schedule,
        "list": _plans_list,
        "show": _plans_show,
        "watch": _plans_watch,
        "abort": _plans_abort,
    }
    name = args.plans_command if args.command == "plans" else args.command
    try:
        return commands[name](api, args, out)
    except ApiFailure as exc:
        print(f"error: {exc}", file=err)
        return 2
    except KeyboardInterrupt:
        return 130


def _print_json(value: Any, out: TextIO) -> None:
    json.dump(value, out, indent=2, sort_keys=True)
    out.write("\n")


def table_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[("" if c is None else str(c)) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


def _execute(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    configs: dict[str, str] = {}
    for item in args.task_configs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiFailure(f"task config {item!r} is not KEY=VALUE")
        configs[key] = value
    if not args.legacy:
        configs.setdefault("enableTaskOrchestration", "true")
    body = {"taskType": args.task_type, "tableName": args.table, "taskConfigs": configs}
    result = api.call("POST", "/tasks/execute", json=body)
    if args.json:
        _print_json(result, out)
    elif "taskPlanId" in result:
        out.write(f"task plan {result['taskPlanId']} started\n")
    else:
        out.write("".join(f"{table}: legacy task {task}\n" for table, task in result.items()))
    return 0


def _progress(plan: Mapping[str, Any]) -> str:
    total, done = plan.get("inputsToProcess") or 0, plan.get("inputsProcessed") or 0
    unit = plan.get("inputUnit") or "inputs"
    return f"{done}/{total} {unit}" if total else f"{plan.get('numBatches', 0)} batches"


def _plans_list(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    params = {k: v for k, v in (("tableNameWithType", args.table), ("taskType", args.task_type)) if v}
    plans = api.call("GET", "/tasks/taskPlans/active", params={**params, "batchLimit": 0})
    if args.json:
        _print_json(plans, out)
        return 0
    rows = [
        (p["planId"], p["status"], p["numBatches"], _progress(p), (p.get("statusMessage") or "")[:60])
        for p in plans
    ]
    out.write(table_text(("PLAN ID", "STATUS", "BATCHES", "PROGRESS", "MESSAGE"), rows))
    return 0


def _plans_show(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    plan = api.call("GET", f"/tasks/taskPlans/{args.plan_id}", params={"batchLimit": args.batches})
    if args.json:
        _print_json(plan, out)
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
    out.write("".join(f"{k:<10} {v}\n" for k, v in fields))
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
        out.write("\n" + table_text(("BATCH", "TASK", "STATE", "SUBTASKS", "FAILED"), rows))
    return 0


def progress_line(plan: Mapping[str, Any], started: float, first_done: int, now: float) -> str:
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


def _plans_watch(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    started = time.monotonic()
    first: int | None = None
    interactive = out.isatty()
    while True:
        plan = api.call("GET", f"/tasks/taskPlans/{args.plan_id}", params={"batchLimit": 0})
        if first is None:
            first = plan.get("inputsProcessed") or 0
        if not args.json:
            line = progress_line(plan, started, first, time.monotonic())
            out.write(("\r" + line) if interactive else (line + "\n"))
            out.flush()
        if plan["status"] not in ACTIVE:
            break
        time.sleep(args.interval)
    if args.json:
        _print_json(plan, out)
    else:
        message = plan.get("statusMessage") or ""
        out.write(
            ("\n" if interactive else "") + f"plan {plan['planId']} ended {plan['status']}: {message}\n"
        )
    return 0 if plan["status"] == "COMPLETED" else 1


def _plans_abort(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    plan = api.call("DELETE", f"/tasks/taskPlans/{args.plan_id}")
    if args.json:
        _print_json(plan, out)
    else:
        out.write(f"plan {plan['planId']} is {plan['status']}\n")
    return 0


def _tables(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    names = api.call("GET", "/tables")["tables"]
    configs = {name: api.call("GET", f"/tables/{name}") for name in names}
    if args.json:
        _print_json(configs, out)
        return 0
    rows = []
    for name in names:
        for table_type, config in sorted(configs[name].items()):
            task_map = (config.get("task") or {}).get("taskTypeConfigsMap") or {}
            schedules = [f"{t} ({c['schedule']})" for t, c in sorted(task_map.items()) if c.get("schedule")]
            rows.append((config["tableName"], table_type, ", ".join(sorted(task_map)), ", ".join(schedules)))
    out.write(table_text(("TABLE", "TYPE", "TASK TYPES", "SCHEDULES"), rows))
    return 0


def _schedule(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    params = {k: v for k, v in (("taskType", args.task_type), ("tableName", args.table)) if v}
    result = api.call("POST", "/tasks/schedule", params=params)
    if args.json:
        _print_json(result, out)
        return 0
    rows = []
    for task_type, cycle in sorted(result.items()):
        for table, plan_id in sorted(cycle["taskPlans"].items()):
            rows.append((task_type, table, "plan", plan_id))
        for table, active in sorted(cycle["skipped"].items()):
            rows.append((task_type, table, "skipped (active plan)", active))
        for table, task in sorted(cycle["legacyTasks"].items()):
            rows.append((task_type, table, "legacy", task))
        for table, why in sorted(cycle["errors"].items()):
            rows.append((task_type, table, "error", why))
    out.write(table_text(("TASK TYPE", "TABLE", "OUTCOME", "DETAIL"), rows))
    return 0
