"""The `taskplan` operator commands against a live API (uvicorn on a loopback port)."""

from __future__ import annotations

import asyncio
import functools
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from taskplan import operator
from taskplan.catalog import Catalog
from taskplan.cli import main
from taskplan.names import parse_plan_id, plan_workflow_id
from tests.api.test_tables_and_triggers_api import COUNTING, create_table, new_name
from tests.support.api import live_api
from tests.support.engine import eventually


@pytest.fixture
async def url(engine: Client, tables: Catalog, data_dir: Path) -> AsyncIterator[str]:
    async with live_api(engine, tables, {"taskplan.dataDir": str(data_dir)}) as address:
        yield address


async def cli(*argv: str) -> tuple[int, str, str]:
    """Run the command in a thread (it blocks on HTTP), capturing its output."""
    out, err = io.StringIO(), io.StringIO()

    def run() -> int:
        import contextlib

        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(list(argv))

    code = await asyncio.to_thread(run)
    return code, out.getvalue(), err.getvalue()


async def test_execute_watch_list_show_and_abort(url: str, engine: Client) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        table = await create_table(http, new_name(), {COUNTING: {"schedule": "0 0 3 * * ?"}})
        other = await create_table(http, new_name())

    code, out, _ = await cli(
        "execute", COUNTING, table, "-c", "numBatches=3", "-c", "sleepMs=200", "--url", url
    )
    assert code == 0 and out.startswith("task plan ") and out.endswith(" started\n")
    plan_id = out.split()[2]

    code, out, _ = await cli("plans", "watch", plan_id, "--interval", "0.2", "--url", url)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[-1].startswith(f"plan {plan_id} ended COMPLETED")
    assert any("6/6 items" in line and "batch 3" in line and "COMPLETED" in line for line in lines), lines

    code, out, _ = await cli("plans", "show", plan_id, "--url", url)
    assert code == 0 and "COMPLETED" in out and "BATCH  TASK" in out
    code, out, _ = await cli("plans", "show", plan_id, "--json", "--url", url)
    assert json.loads(out)["planId"] == plan_id

    code, out, _ = await cli(
        # Subtasks long enough that the abort's answer comes while the batch still runs (ABORTING).
        "execute",
        COUNTING,
        other,
        "-c",
        "numBatches=50",
        "-c",
        "sleepMs=3000",
        "--url",
        url,
    )
    running = out.split()[2]
    code, out, _ = await cli("plans", "list", "--json", "--url", url)
    assert code == 0 and running in {p["planId"] for p in json.loads(out)}
    code, out, _ = await cli("plans", "list", "--url", url)
    assert out.startswith("PLAN ID") and running in out
    code, out, _ = await cli("plans", "pause", running, "--reason", "backfill first", "--url", url)
    assert code == 0 and out.startswith(f"plan {running} is paused: paused: backfill first"), out
    code, out, _ = await cli("plans", "show", running, "--url", url)
    assert "paused     backfill first" in out and "rows       processed 0" in out, out
    code, out, _ = await cli("plans", "resume", running, "--url", url)
    assert code == 0 and f"plan {running} is ACTIVE" in out, out
    code, _, err = await cli("plans", "resume", running, "--url", url)
    assert code == 2 and "is not paused" in err, err
    code, out, _ = await cli("plans", "abort", running, "--url", url)
    assert code == 0 and "ABORTING" in out
    code, out, _ = await cli("plans", "watch", running, "--interval", "0.2", "--url", url)
    assert code == 1 and "ended CANCELLED" in out  # exit 0 only for COMPLETED
    # It goes through REST: the plan's workflow ends Canceled in Temporal.
    handle = engine.get_workflow_handle(plan_workflow_id(*parse_plan_id(running)))

    async def canceled() -> None:
        assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED

    await eventually(canceled, timeout=30)

    code, out, _ = await cli("tables", "--url", url)
    assert code == 0 and table in out and "0 0 3 * * ?" in out
    code, out, _ = await cli("schedule", "--task-type", COUNTING, "--table", table, "--url", url)
    assert code == 0 and "legacy" in out

    code, _, err = await cli("plans", "show", "nosuch_OFFLINE__X__1", "--url", url)
    assert code == 2 and err.startswith("error: ")
    code, _, err = await cli("plans", "list", "--url", "http://127.0.0.1:9")
    assert code == 2 and "cannot reach the API" in err


def plain(text: str) -> None:
    """What a script reads: no escape codes, no trailing blanks."""
    assert "\x1b" not in text, text
    assert all(line == line.rstrip() for line in text.splitlines()), text


async def test_json_is_the_apis_json_and_text_is_plain(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        name = new_name()
        table = await create_table(http, name, {COUNTING: {"schedule": "0 0 3 * * ?"}})

        code, out, _ = await cli("execute", COUNTING, table, "-c", "numBatches=2", "--json", "--url", url)
        assert code == 0
        plan_id = json.loads(out)["taskPlanId"]

        code, watched, _ = await cli("plans", "watch", plan_id, "--interval", "0.2", "--json", "--url", url)
        assert code == 0
        ended = (await http.get(f"/tasks/taskPlans/{plan_id}", params={"batchLimit": 0})).json()
        assert watched == json.dumps(ended, indent=2, sort_keys=True) + "\n"
        code, shown, _ = await cli("plans", "show", plan_id, "--json", "--url", url)
        ended = (await http.get(f"/tasks/taskPlans/{plan_id}", params={"batchLimit": 20})).json()
        assert code == 0 and json.loads(shown) == ended
        code, out, _ = await cli("tables", "--json", "--url", url)
        assert code == 0 and json.loads(out)[name] == (await http.get(f"/tables/{name}")).json()

        code, out, _ = await cli(
            "execute", COUNTING, table, "-c", "fatal=true", "-c", "numBatches=6", "--url", url
        )
        failing = out.split()[2]
        code, out, _ = await cli("plans", "watch", failing, "--interval", "0.2", "--url", url)
        assert code == 1 and f"plan {failing} ended FAILED" in out, out
        plain(out)

    for argv in (("plans", "show", plan_id), ("plans", "list"), ("tables",), ("schedule", "--table", table)):
        code, out, err = await cli(*argv, "--url", url)
        assert code == 0 and err == "", (argv, err)
        plain(out)
    code, out, _ = await cli("plans", "show", plan_id, "--url", url)
    print(out)
    assert table in out and "COMPLETED" in out


async def test_watch_on_a_terminal_draws_rich_progress(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        table = await create_table(http, new_name())
    code, out, _ = await cli(
        "execute", COUNTING, table, "-c", "numBatches=3", "-c", "sleepMs=200", "--url", url
    )
    plan_id = out.split()[2]
    screen = io.StringIO()
    console = operator.console_for(screen, terminal=True)
    watch = functools.partial(operator.plans_watch, plan_id=plan_id, interval=0.2, as_json=False)
    code = await asyncio.to_thread(operator.run, lambda api, _: watch(api, console), url)
    print(screen.getvalue())
    assert code == 0
    assert "\x1b[" in screen.getvalue() and "━" in screen.getvalue()  # a live rich bar, not log lines
    assert "6/6 items" in screen.getvalue() and f"plan {plan_id} ended COMPLETED" in screen.getvalue()


async def test_usage_and_settings_errors_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = await cli("plans", "list", "--no-such-flag")
    assert code == 2 and "No such option: --no-such-flag" in err
    code, _, err = await cli("plans")
    assert code == 2 and "Missing command" in err
    code, _, err = await cli("execute", COUNTING, "t_OFFLINE", "-c", "novalue", "--url", "http://127.0.0.1:9")
    assert code == 2 and err == "error: task config 'novalue' is not KEY=VALUE\n"

    missing = tmp_path / "missing.properties"
    code, _, err = await cli("--config", str(missing), "plans", "list")
    assert code == 2 and err.startswith(f"error: cannot read the properties file {missing}")
    monkeypatch.setenv("CONTROLLER_PORT", "ninety")
    code, _, err = await cli("tables")
    assert (
        code == 2 and "property controller.port = 'ninety' (from environment variable CONTROLLER_PORT)" in err
    )
    monkeypatch.setenv("TASKPLAN_URL", "http://127.0.0.1:9")  # no settings needed: none read
    code, _, err = await cli("tables")
    assert code == 2 and "cannot reach the API at http://127.0.0.1:9" in err


async def test_worker_arguments_go_to_the_workers_own_parser() -> None:
    code, out, _ = await cli("worker", "--help")
    assert code == 0 and "--role {controller,minion,both}" in out
    code, _, err = await cli("worker", "--role", "nobody")
    assert code == 2 and "invalid choice: 'nobody'" in err


def test_data_is_never_read_as_markup() -> None:
    out = io.StringIO()
    operator.console_for(out).print("failed: [Errno 2] [bold]x[/bold] :smile:")
    assert out.getvalue() == "failed: [Errno 2] [bold]x[/bold] :smile:\n"


async def test_segments_lists_pinot_segment_metadata(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        raw = new_name()
        table = await create_table(http, raw)
        ingested = await http.post(
            "/ingestFromFile",
            params={"tableNameWithType": table, "batchConfigMapStr": json.dumps({"inputFormat": "csv"})},
            files={"file": ("a.csv", b"country\nUS\nFR\nDE\n")},
        )
        assert ingested.status_code == 200, ingested.text
    code, out, err = await cli("segments", raw, "--json", "--url", url)
    assert code == 0 and err == "", err
    [(typed, listed)] = json.loads(out).items()
    [(name, metadata)] = listed.items()
    assert typed == table and metadata["segment.total.docs"] == "3" and name.startswith(raw)
    code, out, _ = await cli("segments", table, "--url", url)
    assert code == 0 and name in out and "DOCS" in out
