"""A catalogue of bad requests and the answer each must get: a 4xx naming the problem, never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.test_tables_and_triggers_api import COUNTING, create_table, new_name

PLAN = "tbl_OFFLINE__TestCountingTask__00000000-0000-0000-0000-000000000000"

# (method, path, request kwargs, expected status, words the error must contain)
CATALOGUE: list[tuple[str, str, dict[str, Any], int, str]] = [
    (
        "POST",
        "/tables",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        400,
        "JSON",
    ),
    ("POST", "/tables", {"json": {"tableName": "t", "tableType": 5}}, 400, "tableType"),
    ("POST", "/tables", {"json": {"tableName": "t", "tableType": "SIDEWAYS"}}, 400, "tableType"),
    ("POST", "/tables", {"json": {"tableName": "t\u202e", "tableType": "OFFLINE"}}, 400, "table name"),
    ("POST", "/tables", {"json": {"tableName": "😀", "tableType": "OFFLINE"}}, 400, "table name"),
    ("POST", "/tables", {"json": {"tableName": "../etc", "tableType": "OFFLINE"}}, 400, "table name"),
    ("POST", "/tables", {"json": [1, 2]}, 400, ""),
    (
        "POST",
        "/schemas",
        {"json": {"schemaName": "s", "dimensionFieldSpecs": [{"name": "a;b", "dataType": "STRING"}]}},
        400,
        "name",
    ),
    ("GET", "/tables/nosuchtable", {}, 404, "does not exist"),
    ("GET", "/tables/..%2F..%2Fetc", {}, 404, "not found"),
    ("GET", "/segments/nosuchtable", {}, 404, "does not exist"),
    ("GET", "/tasks/NoSuchTask/tasks", {}, 404, "NoSuchTask"),
    ("PUT", "/tasks/NoSuchTask/stop", {}, 404, "NoSuchTask"),
    ("POST", "/tasks/execute", {"json": {"taskType": "NoSuchTask", "tableName": "x_OFFLINE"}}, 404, ""),
    (
        "POST",
        "/tasks/execute",
        {
            "json": {"taskType": COUNTING, "extra": 1}
        },  # unknown keys are ignored (Pinot); tableName is required
        400,
        "tableName",
    ),
    ("GET", f"/tasks/taskPlans/{PLAN}", {"params": {"batchLimit": -1}}, 400, "batchLimit"),
    ("GET", f"/tasks/taskPlans/{PLAN}", {"params": {"batchLimit": 10**12}}, 400, "batchLimit"),
    (
        "GET",
        f"/tasks/taskPlans/{PLAN}",
        {"params": {"waitForTerminalSeconds": 10**9}},
        400,
        "waitForTerminalSeconds",
    ),
    ("GET", "/tasks/taskPlans/not-a-plan-id", {}, 400, ""),
    ("GET", "/tasks/task/Task_X_1/subtasks", {"params": {"limit": -5}}, 400, "limit"),
    ("GET", "/tasks/task/not-a-task/state", {}, 400, ""),
    (
        "POST",
        "/ingestFromFile",
        {"params": {"tableNameWithType": "../x"}, "files": {"file": ("a", b"x")}},
        400,
        "",
    ),
    ("POST", "/cluster/configs", {"json": {"k": {"nested": 1}}}, 400, ""),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "words"), CATALOGUE, ids=[f"{m} {p}" for m, p, *_ in CATALOGUE]
)
async def test_bad_input_gets_a_clear_4xx(
    http: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any], status: int, words: str
) -> None:
    response = await http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status and body["error"]
    assert words.lower() in body["error"].lower(), body["error"]


async def test_oversized_bodies_are_refused_before_they_are_read(http: httpx.AsyncClient) -> None:
    big = {"tableName": "t", "tableType": "OFFLINE", "padding": "x" * (2 * 1024 * 1024)}
    response = await http.post(
        "/tables", content=json.dumps(big), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and "larger than" in response.json()["error"]


async def test_bad_task_configs_change_nothing(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name(), {COUNTING: {"schedule": "0 0 1 * * ?"}})
    raw = table.removesuffix("_OFFLINE")
    bad = {
        "tableName": raw,
        "tableType": "OFFLINE",
        "task": {"taskTypeConfigsMap": {COUNTING: {"schedule": "bogus"}}},
    }
    assert (await http.put(f"/tables/{raw}", json=bad)).status_code == 400
    kept = (await http.get(f"/tables/{raw}")).json()["OFFLINE"]
    assert kept["task"]["taskTypeConfigsMap"][COUNTING]["schedule"] == "0 0 1 * * ?"


# Table configs refused on POST /tables: (id, fields of the config, words the error must contain). The
# error names the offending key; nothing is saved and no schedule is created.
def _schedule(expression: str, zone: str | None = None) -> dict[str, Any]:
    configs = {"schedule": expression, **({"scheduleTimeZone": zone} if zone is not None else {})}
    return {"tableType": "OFFLINE", "task": {"taskTypeConfigsMap": {COUNTING: configs}}}


def _stream(configs: Any) -> dict[str, Any]:
    return {"tableType": "REALTIME", "tableIndexConfig": {"streamConfigs": configs}}


SCHEDULE = f"task.taskTypeConfigsMap.{COUNTING}.schedule"
FLUSH_ROWS = "tableIndexConfig.streamConfigs.realtime.segment.flush.threshold.rows"
FLUSH_TIME = "tableIndexConfig.streamConfigs.realtime.segment.flush.threshold.time"
TABLE_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("superscript digit", _schedule("0 0 \u00b2 * * ?"), f"{SCHEDULE}: the expression has characters other"),
    ("Arabic-Indic digit", _schedule("0 0 \u0663 * * ?"), f"{SCHEDULE}: the expression has characters other"),
    (
        "20,000-item list",
        _schedule("0 0 0 ? * " + ",".join(["MON"] * 20_000)),
        f"{SCHEDULE}: the expression is",
    ),
    ("61-item list", _schedule("0 0 0 ? * " + ",".join(["1"] * 61)), "a list of 61 items; at most 60"),
    ("never fires", _schedule("0 0 0 29 2 ? 2001"), f"{SCHEDULE}: '0 0 0 29 2 ? 2001' never fires"),
    ("fired only in the past", _schedule("0 0 0 1 1 ? 2001-2002"), "never fires"),
    ("300-character zone", _schedule("0 0 1 * * ?", "Z" * 300), "scheduleTimeZone: a time zone name of 300"),
    ("unknown zone", _schedule("0 0 1 * * ?", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
    ("flush rows abc", _stream({"realtime.segment.flush.threshold.rows": "abc"}), f"{FLUSH_ROWS}: 'abc'"),
    ("flush rows 0", _stream({"realtime.segment.flush.threshold.rows": "0"}), FLUSH_ROWS),
    ("flush rows -5", _stream({"realtime.segment.flush.threshold.rows": -5}), FLUSH_ROWS),
    ("flush rows 1.5", _stream({"realtime.segment.flush.threshold.rows": 1.5}), FLUSH_ROWS),
    ("flush rows huge", _stream({"realtime.segment.flush.threshold.rows": "9" * 5000}), FLUSH_ROWS),
    ("flush time soon", _stream({"realtime.segment.flush.threshold.time": "soon"}), f"{FLUSH_TIME}: 'soon'"),
    ("flush time 0h", _stream({"realtime.segment.flush.threshold.time": "0h"}), FLUSH_TIME),
    ("flush time 6", _stream({"realtime.segment.flush.threshold.time": "6"}), FLUSH_TIME),
    ("streamConfigs a string", _stream("rows=5"), "tableIndexConfig.streamConfigs must be an object"),
]


@pytest.mark.parametrize(
    ("fields", "words"), [c[1:] for c in TABLE_CONFIGS], ids=[c[0] for c in TABLE_CONFIGS]
)
async def test_bad_table_configs_are_a_400_naming_the_key(
    http: httpx.AsyncClient, fields: dict[str, Any], words: str
) -> None:
    name = new_name()
    schema = {"schemaName": name, "dimensionFieldSpecs": [{"name": "country", "dataType": "STRING"}]}
    assert (await http.post("/schemas", json=schema)).status_code == 200
    response = await http.post("/tables", json={"tableName": name, **fields})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400 and words in body["error"], body["error"]
    assert len(body["error"]) < 600
    assert (await http.get(f"/tables/{name}")).status_code == 404


async def test_a_realtime_table_cannot_be_updated_to_a_bad_flush_threshold(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name(), table_type="REALTIME")
    raw = table.removesuffix("_REALTIME")
    good = {"realtime.segment.flush.threshold.rows": "10", "realtime.segment.flush.threshold.time": "6h"}
    update = {"tableName": raw, "tableType": "REALTIME", "tableIndexConfig": {"streamConfigs": good}}
    assert (await http.put(f"/tables/{raw}", json=update)).status_code == 200
    bad = {
        **update,
        "tableIndexConfig": {"streamConfigs": {**good, "realtime.segment.flush.threshold.rows": "abc"}},
    }
    response = await http.put(f"/tables/{raw}", json=bad)
    assert response.status_code == 400 and FLUSH_ROWS in response.json()["error"]
    kept = (await http.get(f"/tables/{raw}")).json()["REALTIME"]
    assert kept["tableIndexConfig"]["streamConfigs"] == good
    ingested = await http.post(
        "/ingestFromFile",
        params={"tableNameWithType": table, "batchConfigMapStr": '{"inputFormat": "json"}'},
        files={"file": ("rows.json", b'{"country": "US"}\n')},
    )
    assert ingested.status_code == 200, ingested.text
