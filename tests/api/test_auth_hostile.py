"""Table ACLs as a hostile tester probes them: a principal restricted to one table (READ, or every
permission) against a raw name that ends in a type suffix, a legacy batch over several tables, cluster-wide
reads, missing and forbidden tables, and server paths in error messages."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.plans import PlanServices
from tests.api.test_auth import ADMIN, COUNTING, READER, P, basic
from tests.support.api import api_client
from tests.support.engine import eventually

WRITER = basic("writer", "wr1ter")
SECRET = "purge where owner = 'ceo'"  # a task config only the other table's readers may see


@dataclass
class Hostile:
    http: httpx.AsyncClient
    mine: str  # the one raw table name reader and writer may use
    other: str  # a table neither may use
    suffixed: str  # raw name f"{mine}_OFFLINE": its OFFLINE table is f"{mine}_OFFLINE_OFFLINE"


async def _add(http: httpx.AsyncClient, raw: str, table_name: str, configs: dict[str, str]) -> None:
    schema = {"schemaName": raw, "dimensionFieldSpecs": [{"name": "c", "dataType": "STRING"}]}
    assert (await http.post("/schemas", json=schema, headers=ADMIN)).status_code == 200
    table = {
        "tableName": table_name,
        "tableType": "OFFLINE",
        "task": {"taskTypeConfigsMap": {COUNTING: configs}},
    }
    response = await http.post("/tables", json=table, headers=ADMIN)
    assert response.status_code == 200, response.text


async def _ingest(
    http: httpx.AsyncClient, table: str, headers: dict[str, str], content: bytes = b'{"c": "x"}\n'
) -> httpx.Response:
    return await http.post(
        "/ingestFromFile",
        params={"tableNameWithType": table, "batchConfigMapStr": json.dumps({"inputFormat": "json"})},
        files={"file": ("rows.json", content)},
        headers=headers,
    )


@pytest.fixture
async def hostile(engine: Client, tables: Catalog, data_dir: Path) -> AsyncIterator[Hostile]:
    mine, other = f"acl{uuid.uuid4().hex[:8]}", f"acl{uuid.uuid4().hex[:8]}"
    principals = {
        P: "admin,reader,writer",
        f"{P}.admin.password": "s3cret-admin",
        f"{P}.reader.password": "r3ader",
        f"{P}.reader.tables": mine,
        f"{P}.reader.permissions": "READ",
        f"{P}.writer.password": "wr1ter",
        f"{P}.writer.tables": mine,
        "taskplan.dataDir": str(data_dir),
    }
    async with api_client(engine, tables, principals) as http:
        await _add(http, mine, mine, {"subtasksPerBatch": "1"})
        await _add(http, other, other, {"subtasksPerBatch": "2", "purgeFilter": SECRET})
        suffixed = f"{mine}_OFFLINE"
        await _add(http, suffixed, f"{suffixed}_OFFLINE", {"purgeFilter": SECRET})
        assert (await _ingest(http, f"{suffixed}_OFFLINE", ADMIN)).status_code == 200
        yield Hostile(http, mine, other, suffixed)


async def test_a_raw_name_ending_in_a_type_suffix_is_another_table(hostile: Hostile) -> None:
    http, mine, raw = hostile.http, hostile.mine, hostile.suffixed
    typed = f"{raw}_OFFLINE"  # the OFFLINE table of raw name f"{mine}_OFFLINE", not a table of `mine`
    # The principals do reach their own table, so every refusal below is about the name.
    assert (await http.get(f"/tables/{mine}", headers=READER)).status_code == 200
    assert (await _ingest(http, f"{mine}_OFFLINE", WRITER)).status_code == 200

    for who in (READER, WRITER):
        for path in (f"/tables/{typed}", f"/segments/{typed}", f"/schemas/{raw}"):
            response = await http.get(path, headers=who)
            assert response.status_code == 404, (path, response.text)
            assert SECRET not in response.text
        assert raw not in (await http.get("/schemas", headers=who)).json()
        assert (await http.get("/tables", headers=who)).json()["tables"] == [mine]

    schema = {"schemaName": raw, "metricFieldSpecs": [{"name": "n", "dataType": "LONG"}]}
    assert (await http.post("/schemas", json=schema, headers=WRITER)).status_code == 403
    assert (await _ingest(http, typed, WRITER)).status_code == 404
    changed = {"tableName": typed, "tableType": "OFFLINE"}
    assert (await http.put(f"/tables/{typed}", json=changed, headers=WRITER)).status_code == 404
    execute = {"taskType": COUNTING, "tableName": typed, "taskConfigs": {"enableTaskOrchestration": "true"}}
    assert (await http.post("/tasks/execute", json=execute, headers=WRITER)).status_code == 404
    scheduled = await http.post("/tasks/schedule", params={"tableName": typed}, headers=WRITER)
    assert scheduled.status_code == 404
    assert (await http.delete(f"/tables/{typed}", headers=WRITER)).status_code == 404
    assert (await http.delete(f"/tables/{typed}?type=OFFLINE", headers=WRITER)).status_code == 404

    # Nothing of it changed: the config, the schema and the one segment with its one row.
    config = (await http.get(f"/tables/{typed}", headers=ADMIN)).json()["OFFLINE"]
    assert config["task"]["taskTypeConfigsMap"][COUNTING] == {"purgeFilter": SECRET}
    kept = (await http.get(f"/schemas/{raw}", headers=ADMIN)).json()
    assert kept["metricFieldSpecs"] == [] and kept["dimensionFieldSpecs"][0]["name"] == "c"
    [name] = (await http.get(f"/segments/{typed}", headers=ADMIN)).json()[0]["OFFLINE"]
    metadata = (await http.get(f"/segments/{typed}/{name}/metadata", headers=ADMIN)).json()
    assert metadata["segment.total.docs"] == "1"


async def test_a_forbidden_table_answers_as_a_missing_one(hostile: Hostile) -> None:
    http, other = hostile.http, hostile.other
    ghost = f"acl{uuid.uuid4().hex[:8]}"  # no such table
    configs = {"enableTaskOrchestration": "true", "numBatches": "1"}
    execute = {"taskType": COUNTING, "tableName": f"{other}_OFFLINE", "taskConfigs": configs}
    plan = (await http.post("/tasks/execute", headers=ADMIN, json=execute)).json()["taskPlanId"]

    def requests(t: str) -> list[tuple[str, str, object, dict[str, str]]]:
        plan_of_t = plan.replace(other, t)
        return [
            ("GET", f"/tables/{t}", None, {}),
            ("GET", f"/tables/{t}_OFFLINE", None, {}),
            ("GET", f"/tables/{t}", None, {"type": "REALTIME"}),
            ("GET", f"/segments/{t}", None, {}),
            ("GET", f"/segments/{t}_OFFLINE", None, {"type": "OFFLINE"}),
            ("GET", f"/schemas/{t}", None, {}),
            ("PUT", f"/tables/{t}", {"tableName": t, "tableType": "OFFLINE"}, {}),
            ("DELETE", f"/tables/{t}", None, {}),
            ("DELETE", f"/tables/{t}", None, {"type": "OFFLINE"}),
            ("POST", "/tasks/execute", {"taskType": COUNTING, "tableName": t}, {}),
            ("POST", "/tasks/execute", {"taskType": COUNTING, "tableName": f"{t}_OFFLINE"}, {}),
            ("POST", "/tasks/schedule", None, {"tableName": t}),
            ("GET", f"/tasks/taskPlans/{plan_of_t}", None, {}),
            ("GET", f"/tasks/taskPlans/isActive/{plan_of_t}", None, {}),
            ("DELETE", f"/tasks/taskPlans/{plan_of_t}", None, {}),
            ("GET", "/tasks/taskPlans", None, {"tableNameWithType": f"{t}_OFFLINE", "taskType": COUNTING}),
            ("GET", "/tasks/taskPlans/active/ids", None, {"tableNameWithType": f"{t}_OFFLINE"}),
            ("GET", f"/segments/{t}/metadata", None, {}),
            ("GET", f"/segments/{t}/seg_0/metadata", None, {}),
            ("GET", f"/tasks/{COUNTING}/{t}_OFFLINE/state", None, {}),
            ("GET", f"/tasks/{COUNTING}/{t}_OFFLINE/debug", None, {}),
            ("GET", f"/tasks/{COUNTING}/{t}_OFFLINE/metadata", None, {}),
            ("DELETE", f"/tasks/{COUNTING}/{t}_OFFLINE/metadata", None, {}),
            ("GET", f"/tasks/{COUNTING}/taskcounts", None, {"table": f"{t}_OFFLINE"}),
            ("GET", "/tasks/scheduler/jobDetails", None, {"tableName": f"{t}_OFFLINE", "taskType": COUNTING}),
        ]

    for who in (READER, WRITER):
        for forbidden, missing in zip(requests(other), requests(ghost), strict=True):
            method, path, body, params = forbidden
            seen = await http.request(method, path, json=body, params=params, headers=who)
            method, path, body, params = missing
            absent = await http.request(method, path, json=body, params=params, headers=who)
            assert seen.status_code == absent.status_code, (forbidden, seen.text, absent.text)
            assert seen.text.replace(other, ghost) == absent.text, (forbidden, seen.text, absent.text)
            assert seen.status_code in (200, 404), (forbidden, seen.text)
        # Uploads too, even with bad batch configs: the table is checked first.
        seen = await _ingest(http, f"{other}_OFFLINE", who)
        absent = await _ingest(http, f"{ghost}_OFFLINE", who)
        assert (seen.status_code, seen.text.replace(other, ghost)) == (absent.status_code, absent.text)
    # The admin still sees the plan and the table.
    assert (await http.get(f"/tasks/taskPlans/{plan}", headers=ADMIN)).status_code == 200
    assert (await http.get(f"/tables/{other}", headers=ADMIN)).status_code == 200
    # A table the principal may see but not change is a 403, as before.
    mine = hostile.mine
    refused = await http.delete(f"/tables/{mine}", headers=READER)
    assert refused.status_code == 403 and "lacks DELETE permission on table" in refused.json()["error"]


async def test_a_legacy_batch_over_several_tables_needs_all_of_them(
    hostile: Hostile, plans: PlanServices
) -> None:
    http, mine, other = hostile.http, f"{hostile.mine}_OFFLINE", f"{hostile.other}_OFFLINE"
    both = await plans.one_shot.run_one_shot(COUNTING, [mine, other], None)  # as a scheduled legacy cycle
    alone = await plans.one_shot.run_one_shot(COUNTING, [mine], None)
    missing = f"Task_{COUNTING}_1"

    # The admin sees the other table's subtasks in the shared batch.
    configs = (await http.get(f"/tasks/task/{both}/config", headers=ADMIN)).json()
    assert sorted(c["configs"]["tableName"] for c in configs) == sorted([mine, other, other])
    assert SECRET in (await http.get(f"/tasks/subtask/{both}/config", headers=ADMIN)).text

    per_task = ("/tasks/task/{}/state", "/tasks/task/{}/config", "/tasks/task/{}/subtasks",
                "/tasks/subtask/{}/state", "/tasks/subtask/{}/config")  # fmt: skip
    for who in (READER, WRITER):
        for path in per_task:
            shared = await http.get(path.format(both), headers=who)
            absent = await http.get(path.format(missing), headers=who)
            assert shared.status_code == absent.status_code == 404, (path, shared.text)
            assert shared.json()["error"] == f"task {both} not found"
            assert (await http.get(path.format(alone), headers=who)).status_code == 200, path

        async def listed(headers: dict[str, str] = who) -> None:
            names = (await http.get(f"/tasks/{COUNTING}/tasks", headers=headers)).json()
            assert alone in names and both not in names

        await eventually(listed)
        states = (await http.get(f"/tasks/{COUNTING}/taskstates", headers=who)).json()
        counts = (await http.get(f"/tasks/{COUNTING}/taskcounts", headers=who)).json()
        assert alone in states and both not in states and both not in counts
    assert both in (await http.get(f"/tasks/{COUNTING}/taskstates", headers=ADMIN)).json()


async def test_cluster_wide_reads_need_an_unrestricted_principal(hostile: Hostile) -> None:
    http = hostile.http
    for who in (READER, WRITER):
        for path in ("/cluster/configs", "/metrics"):
            response = await http.get(path, headers=who)
            assert response.status_code == 403, (path, response.text)
            assert "the whole cluster" in response.json()["error"]
    assert (await http.get("/cluster/configs", headers=ADMIN)).status_code == 200
    assert (await http.get("/metrics", headers=ADMIN)).status_code == 200


async def test_upload_errors_name_the_uploaded_file_not_a_server_path(
    hostile: Hostile, data_dir: Path
) -> None:
    http, table = hostile.http, f"{hostile.mine}_OFFLINE"
    uploads = (
        ("json", b"\xff\xfe not text\n"),
        ("parquet", b"not parquet at all"),
        ("csv", b'c\nx\n\xff\xfe"\n'),
        ("csv", b"\xff\xfe\n"),
    )
    for fmt, content in uploads:
        response = await http.post(
            "/ingestFromFile",
            params={"tableNameWithType": table, "batchConfigMapStr": json.dumps({"inputFormat": fmt})},
            files={"file": (f"mine.{fmt}", content)},
            headers=WRITER,
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert f"mine.{fmt}" in error
        for leak in (str(data_dir), "uploads", "/tmp"):
            assert leak not in error, error


# ---------------------------------------------------------------- every route, walked

# Paths open to anyone, and cluster-wide ones (403 for any restricted principal, table or not), are walked
# too: whatever they answer must not show the other tables' plans, tasks, segments or configs.
SPEC_PARAMS = ("{tableName}", "{tableNameWithType}", "{schemaName}", "{planId}", "{taskPlanId}",
               "{taskName}", "{segmentName}", "{taskType}", "{configName}", "{instanceName}")  # fmt: skip


@dataclass
class Target:
    """The names a request of the walk uses for one table (forbidden, or missing)."""

    raw: str
    typed: str
    plan: str
    task: str  # a batch of its plan, or the legacy batch it shares with the principal's table
    segment: str

    def fill(self, text: str) -> str:
        for param, value in (
            ("{tableName}", self.typed), ("{tableNameWithType}", self.typed), ("{schemaName}", self.raw),
            ("{planId}", self.plan), ("{taskPlanId}", self.plan), ("{taskName}", self.task),
            ("{segmentName}", self.segment), ("{taskType}", COUNTING), ("{configName}", "x"),
            ("{instanceName}", "Minion_x_1"),
        ):  # fmt: skip
            text = text.replace(param, value)
        return text

    def request(self, method: str, path: str, query: list[str]) -> tuple[str, str, dict[str, Any]]:
        params = {name: self.typed for name in query if name in ("tableName", "tableNameWithType", "table")}
        if "taskType" in query:
            params["taskType"] = COUNTING
        kwargs: dict[str, Any] = {"params": params}
        body: dict[str, Any] = {
            "/tasks/execute": {"taskType": COUNTING, "tableName": self.typed},
            # A config's tableName may carry the type: the typed name keeps a suffixed raw name whole.
            "/tables": {"tableName": self.typed, "tableType": "OFFLINE"},
            "/tables/{tableName}": {"tableName": self.typed, "tableType": "OFFLINE"},
            "/schemas": {
                "schemaName": self.raw,
                "dimensionFieldSpecs": [{"name": "c", "dataType": "STRING"}],
            },
        }
        if path == "/ingestFromFile":
            kwargs["params"] = {
                "tableNameWithType": self.typed,
                "batchConfigMapStr": '{"inputFormat": "json"}',
            }
            kwargs["files"] = {"file": ("rows.json", b'{"c": "x"}\n')}
        elif method in ("POST", "PUT"):
            kwargs["json"] = body.get(path, {})
        return method, self.fill(path), kwargs


async def _target(http: httpx.AsyncClient, mine: str, raw: str, plans: PlanServices) -> Target:
    """A running plan with a recorded batch, a segment and a legacy batch shared with ``mine``."""
    typed = f"{raw}_OFFLINE"
    configs = {
        "enableTaskOrchestration": "true",
        "numBatches": "500",
        "subtasksPerBatch": "1",
        "sleepMs": "400",
    }
    execute = {"taskType": COUNTING, "tableName": typed, "taskConfigs": configs}
    started = await http.post("/tasks/execute", headers=ADMIN, json=execute)
    assert started.status_code == 200, started.text
    plan = started.json()["taskPlanId"]
    listed = (await http.get(f"/segments/{typed}", headers=ADMIN)).json()[0]["OFFLINE"]
    if not listed:
        assert (await _ingest(http, typed, ADMIN)).status_code == 200
        listed = (await http.get(f"/segments/{typed}", headers=ADMIN)).json()[0]["OFFLINE"]
    segment = listed[0]
    shared = await plans.one_shot.run_one_shot(COUNTING, [f"{mine}_OFFLINE", typed], None)
    return Target(raw, typed, plan, shared, segment)


def _missing(target: Target) -> Target:
    ghost = f"acl{uuid.uuid4().hex[:8]}" + ("_OFFLINE" if target.raw.endswith("_OFFLINE") else "")
    return Target(
        ghost,
        f"{ghost}_OFFLINE",
        target.plan.replace(target.raw, ghost),
        f"Task_{COUNTING}_1",
        target.segment.replace(target.raw, ghost),
    )


async def test_a_restricted_principal_walks_every_route_and_finds_nothing_of_other_tables(
    hostile: Hostile, plans: PlanServices
) -> None:
    """Every operation of the OpenAPI schema and the plan page, for a principal restricted to one table
    (READ only, and every permission), against another table and a table whose raw name ends in a type
    suffix, each with a running plan, a segment and a legacy batch shared with the principal's own table:
    each answers exactly as for a missing table (status and body, names swapped), shows none of their
    names, and changes nothing."""
    http, mine = hostile.http, hostile.mine
    spec = (await http.get("/openapi.json")).json()
    forbidden = [await _target(http, mine, raw, plans) for raw in (hostile.other, hostile.suffixed)]

    async def running_batch(target: Target) -> str:
        plan = (await http.get(f"/tasks/taskPlans/{target.plan}", headers=ADMIN)).json()
        assert plan["batches"], plan
        return str(plan["batches"][-1]["submittedTaskName"])

    batches = [await eventually(partial(running_batch, t)) for t in forbidden]
    hidden = {SECRET, *(t.plan for t in forbidden), *(t.task for t in forbidden), *batches}
    hidden |= {t.segment for t in forbidden} | {t.typed for t in forbidden}
    operations = [
        (method.upper(), path, [p["name"] for p in op.get("parameters", []) if p["in"] == "query"])
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]
    walked = 0
    for who in (READER, WRITER):
        for target in forbidden:
            missing = _missing(target)
            for task in (target.task, batches[forbidden.index(target)]):
                seen_target = Target(target.raw, target.typed, target.plan, task, target.segment)
                for method, path, query in operations:
                    if task != target.task and "{taskName}" not in path:
                        continue
                    m1, p1, k1 = seen_target.request(method, path, query)
                    m2, p2, k2 = missing.request(method, path, query)
                    seen = await http.request(m1, p1, headers=who, **k1)
                    absent = await http.request(m2, p2, headers=who, **k2)
                    # A name the request itself gave may be echoed (a 404 names what was asked for).
                    asked = p1 + repr(k1)
                    asked += target.typed if target.raw in asked else ""
                    leaked = [n for n in hidden if n in seen.text and n not in asked]
                    assert not leaked, (method, p1, leaked, seen.text[:300])
                    assert seen.status_code == absent.status_code, (method, p1, seen.text, absent.text)
                    assert seen.status_code < 500, (method, p1, seen.text)
                    if any(param in path for param in SPEC_PARAMS[:7]) or set(query) & {
                        "tableName",
                        "tableNameWithType",
                        "table",
                    }:
                        swapped = seen.text.replace(target.raw, missing.raw).replace(task, missing.task)
                        assert swapped == absent.text, (method, p1, seen.text, absent.text)
                    walked += 1
            # The plan page: the listing shows none of it, a plan's page answers as a missing plan's.
            page = await http.get("/ui", headers=who)
            assert page.status_code == 200 and not [n for n in hidden if n in page.text]
            one = await http.get("/ui", params={"plan": target.plan}, headers=who)
            none = await http.get("/ui", params={"plan": missing.plan}, headers=who)
            assert one.status_code == none.status_code == 404
            assert SECRET not in one.text and target.segment not in one.text
    assert walked >= 2 * 2 * (len(operations) + 8)
    # Nothing of theirs changed: the plans run unpaused, the tables, schemas, segments and tasks are there.
    for target in forbidden:
        plan = (await http.get(f"/tasks/taskPlans/{target.plan}", headers=ADMIN)).json()
        assert plan["status"] == "ACTIVE" and not plan.get("paused"), plan
        assert (await http.get(f"/tables/{target.typed}", headers=ADMIN)).status_code == 200
        assert (await http.get(f"/schemas/{target.raw}", headers=ADMIN)).status_code == 200
        listed = (await http.get(f"/segments/{target.typed}", headers=ADMIN)).json()[0]["OFFLINE"]
        assert listed == [target.segment]
        assert (await http.get(f"/tasks/task/{target.task}/state", headers=ADMIN)).status_code == 200
        assert (await http.delete(f"/tasks/taskPlans/{target.plan}", headers=ADMIN)).status_code == 200
