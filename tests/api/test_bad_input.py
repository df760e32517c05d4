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
        {"json": {"taskType": COUNTING, "tableName": "x_OFFLINE", "extra": 1}},
        400,
        "extra",
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
