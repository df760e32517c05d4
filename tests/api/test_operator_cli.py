"""The `taskplan` operator commands against a live API (uvicorn on a loopback port)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.cli import main
from tests.api.test_tables_and_triggers_api import COUNTING, create_table, new_name
from tests.support.api import live_api


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


async def test_execute_watch_list_show_and_abort(url: str) -> None:
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
        "execute", COUNTING, other, "-c", "numBatches=50", "-c", "sleepMs=200", "--url", url
    )
    running = out.split()[2]
    code, out, _ = await cli("plans", "list", "--json", "--url", url)
    assert code == 0 and running in {p["planId"] for p in json.loads(out)}
    code, out, _ = await cli("plans", "list", "--url", url)
    assert out.startswith("PLAN ID") and running in out
    code, out, _ = await cli("plans", "abort", running, "--url", url)
    assert code == 0 and "ABORTING" in out
    code, out, _ = await cli("plans", "watch", running, "--interval", "0.2", "--url", url)
    assert code == 1 and "ended CANCELLED" in out  # exit 0 only for COMPLETED

    code, out, _ = await cli("tables", "--url", url)
    assert code == 0 and table in out and "0 0 3 * * ?" in out
    code, out, _ = await cli("schedule", "--task-type", COUNTING, "--table", table, "--url", url)
    assert code == 0 and "legacy" in out

    code, _, err = await cli("plans", "show", "nosuch_OFFLINE__X__1", "--url", url)
    assert code == 2 and err.startswith("error: ")
    code, _, err = await cli("plans", "list", "--url", "http://127.0.0.1:9")
    assert code == 2 and "cannot reach the API" in err
