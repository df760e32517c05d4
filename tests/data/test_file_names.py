"""File names that need percent-encoding in a file:// URI (a space, non-ASCII, '%' itself) ingest like any
other, through a real FileIngestionTask plan, each exactly once; an inputDirURI with a NUL byte is a 400."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from taskplan.catalog import Catalog
from tests.api.test_tables_and_triggers_api import wait_inactive
from tests.data.test_data_plans import create, execute, manager, segments
from tests.support.data import event, table_rows, write_csv

NAMES = ["a b.csv", "\u00fc.csv", "p%41.csv", "100%.csv", "#hash?.csv", "sp\u00e4ce dir/x y.csv"]


async def run_plan(http: httpx.AsyncClient, table: str, input_dir: str) -> dict[str, object]:
    response = await execute(http, "FileIngestionTask", table, inputDirURI=input_dir, inputFormat="csv")
    assert response.status_code == 200, response.text
    plan_id = response.json()["taskPlanId"]
    await wait_inactive(http, plan_id)
    plan: dict[str, object] = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
    return plan


@pytest.mark.parametrize("as_uri", [True, False], ids=["file URI", "plain path"])
async def test_file_names_needing_encoding_ingest_once(
    http: httpx.AsyncClient, tables: Catalog, data_dir: Path, as_uri: bool
) -> None:
    table = await create(http, f"names{uuid.uuid4().hex[:8]}")
    directory = data_dir / "input" / f"in put {uuid.uuid4().hex[:6]} \u00e9"  # the directory needs it too
    for i, name in enumerate(NAMES):
        write_csv(directory / name, [event(i)])
    input_dir = directory.as_uri() if as_uri else str(directory)

    plan = await run_plan(http, table, input_dir)
    assert plan["status"] == "COMPLETED", plan
    rows = table_rows(manager(tables, data_dir), table)
    assert [r["id"] for r in rows] == list(range(len(NAMES)))
    assert len(await segments(http, table)) == len(NAMES)
    recorded = tables.segments.processed_files(table)
    assert sorted(recorded) == sorted((directory / name).as_uri() for name in NAMES)

    again = await run_plan(http, table, input_dir)  # nothing new: each file was fingerprinted once
    assert again["status"] == "COMPLETED" and again["numBatches"] == 0, again
    assert len(await segments(http, table)) == len(NAMES)


@pytest.mark.parametrize(
    "bad",
    ["/tmp/in\x00put", "file:///tmp/in%00put", "file://otherhost/tmp/input", "file:///tmp/a#b", "{loop}/x"],
    ids=["NUL", "%00", "host", "fragment", "symlink loop"],
)
async def test_an_input_dir_that_is_no_local_path_is_a_400(
    http: httpx.AsyncClient, data_dir: Path, bad: str
) -> None:
    loop = data_dir / "input" / f"loop{uuid.uuid4().hex[:6]}"
    loop.symlink_to(loop)
    table = await create(http, f"nul{uuid.uuid4().hex[:8]}")
    response = await execute(
        http, "FileIngestionTask", table, inputDirURI=bad.format(loop=loop), inputFormat="csv"
    )
    assert response.status_code == 400, response.text
    assert "inputDirURI" in response.json()["error"]
