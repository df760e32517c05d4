"""Stopping one batch through REST (PUT /tasks/taskPlans/{planId}/batches/{taskName}/stop) and the plan page
(GET /ui) as HTML: what it lists, that it escapes every value, and who sees the buttons."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from taskplan.catalog import Catalog
from tests.api.test_auth import ADMIN, READER, P, basic
from tests.api.test_tables_and_triggers_api import COUNTING, create_table, new_name
from tests.support.api import api_client
from tests.support.engine import eventually

SLOW = {"enableTaskOrchestration": "true", "numBatches": "50", "subtasksPerBatch": "2", "sleepMs": "1500"}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def start(http: httpx.AsyncClient, table: str, configs: dict[str, str], **kw: Any) -> str:
    response = await http.post(
        "/tasks/execute", json={"taskType": COUNTING, "tableName": table, "taskConfigs": configs}, **kw
    )
    assert response.status_code == 200, response.text
    plan_id: str = response.json()["taskPlanId"]
    return plan_id


async def running_batch(http: httpx.AsyncClient, plan_id: str, after: int = 0, **kw: Any) -> str:
    async def found() -> str:
        plan = (await http.get(f"/tasks/taskPlans/{plan_id}", **kw)).json()
        batch = plan["batches"][-1] if plan["batches"] else None
        assert batch and batch["batchSequence"] >= after and batch["taskState"] == "IN_PROGRESS"
        name: str = batch["submittedTaskName"]
        return name

    return await eventually(found, timeout=30)


async def test_stop_one_batch_through_rest(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    plan_id = await start(http, table, SLOW)
    batch = await running_batch(http, plan_id)
    url = f"/tasks/taskPlans/{plan_id}/batches/{batch}/stop"
    stopped = await http.put(url)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json() == {
        "planId": plan_id,
        "taskName": batch,
        "status": "STOPPING",
        "planStatus": "ACTIVE",
    }

    async def batch_stopped() -> None:
        plan = (await http.get(f"/tasks/taskPlans/{plan_id}")).json()
        record = next(b for b in plan["batches"] if b["submittedTaskName"] == batch)
        assert record["taskState"] == "STOPPED" and plan["status"] == "ACTIVE"
        assert len(plan["batches"]) >= 2  # the plan went on with the next batch

    await eventually(batch_stopped, timeout=30)
    again = await http.put(url)
    assert (
        again.status_code == 409
        and f"batch {batch} of plan {plan_id} is not running: it is STOPPED" in (again.json()["error"])
    )
    missing = await http.put(f"/tasks/taskPlans/{plan_id}/batches/Task_{COUNTING}_1/stop")
    assert missing.status_code == 404 and f"has no batch Task_{COUNTING}_1" in missing.json()["error"]
    bad = await http.put(f"/tasks/taskPlans/{plan_id}/batches/nonsense/stop")
    assert bad.status_code == 400 and "invalid task name" in bad.json()["error"]
    unknown = await http.put(f"/tasks/taskPlans/{table}__{COUNTING}__{uuid.uuid4()}/batches/{batch}/stop")
    assert unknown.status_code == 404
    assert (await http.delete(f"/tasks/taskPlans/{plan_id}")).status_code == 200
    ended_batch = await running_batch(http, plan_id)  # the plan may start no batch after the abort

    async def ended() -> None:
        assert (await http.get(f"/tasks/taskPlans/isActive/{plan_id}")).json()["active"] is False

    await eventually(ended, timeout=30)
    over = await http.put(f"/tasks/taskPlans/{plan_id}/batches/{ended_batch}/stop")
    assert over.status_code == 409 and "has ended (CANCELLED)" in over.json()["error"], over.text


async def test_the_plan_page_lists_plans_and_escapes_every_value(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    plan_id = await start(http, table, {**SLOW, "note": HOSTILE})
    await running_batch(http, plan_id, after=1)
    page = await http.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert plan_id in page.text and 'class="bar"' in page.text and "items/min" in page.text
    assert f"/ui?plan={plan_id}" in page.text
    assert "TaskPlanId%3D%22" + plan_id in page.text  # the link to its runs in the Temporal Web UI
    assert 'data-method="DELETE"' in page.text  # open API: the abort button

    one = await http.get("/ui", params={"plan": plan_id})
    assert one.status_code == 200
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in one.text and HOSTILE not in one.text
    assert 'data-testid="batches"' in one.text and "Stop batch" in one.text
    # An abort reason carries markup too: shown as text.
    await http.delete(f"/tasks/taskPlans/{plan_id}")
    aborted = await http.get("/ui", params={"plan": plan_id})
    assert "<img" not in aborted.text.split("<main>")[1].split("<script>")[0]

    missing = await http.get("/ui", params={"plan": f"{table}__{COUNTING}__{uuid.uuid4()}"})
    assert missing.status_code == 404 and "not found" in missing.text
    bad = await http.get("/ui", params={"plan": "<b>x</b>"})
    assert bad.status_code == 400 and "<b>x</b>" not in bad.text


async def test_the_plan_page_shows_failures_with_their_samples(http: httpx.AsyncClient) -> None:
    table = await create_table(http, new_name())
    plan_id = await start(
        http,
        table,
        {
            "enableTaskOrchestration": "true",
            "numBatches": "2",
            "failingBatch": "0",
            "maxFailedSubtasksPerBatch": "9",
        },
    )

    async def ended() -> None:
        assert (await http.get(f"/tasks/taskPlans/isActive/{plan_id}")).json()["active"] is False

    await eventually(ended, timeout=30)
    page = (await http.get("/ui", params={"plan": plan_id})).text
    assert 'data-testid="failures"' in page and "Subtask failures" in page, page
    assert 'data-testid="counters"' in page


@pytest.fixture
async def secured(engine: Client, tables: Catalog) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    mine = f"ui{uuid.uuid4().hex[:8]}"
    principals = {
        P: "admin,reader",
        f"{P}.admin.password": "s3cret-admin",
        f"{P}.reader.password": "r3ader",
        f"{P}.reader.tables": mine,
        f"{P}.reader.permissions": "READ",
    }
    async with api_client(engine, tables, principals) as http:
        schema = {"schemaName": mine, "dimensionFieldSpecs": [{"name": "c", "dataType": "STRING"}]}
        assert (await http.post("/schemas", json=schema, headers=ADMIN)).status_code == 200
        table = {"tableName": mine, "tableType": "OFFLINE"}
        assert (await http.post("/tables", json=table, headers=ADMIN)).status_code == 200
        yield http, f"{mine}_OFFLINE"


async def test_the_plan_page_needs_credentials_and_shows_buttons_to_who_may_steer(
    secured: tuple[httpx.AsyncClient, str],
) -> None:
    http, table = secured
    denied = await http.get("/ui")
    assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Basic")
    assert (await http.get("/ui", headers=basic("admin", "nope"))).status_code == 401
    plan_id = await start(http, table, SLOW, headers=ADMIN)
    await running_batch(http, plan_id, headers=ADMIN)
    as_admin = (await http.get("/ui", params={"plan": plan_id}, headers=ADMIN)).text
    assert 'data-method="DELETE"' in as_admin and 'data-method="PUT"' in as_admin
    as_reader = (await http.get("/ui", params={"plan": plan_id}, headers=READER)).text
    assert plan_id in as_reader and "data-method=" not in as_reader.split("<script>")[0]
    listed = (await http.get("/ui", headers=READER)).text
    assert plan_id in listed and 'data-method="DELETE"' not in listed.split("<script>")[0]
    # The REST calls behind the buttons are refused to the reader, as they are through the API.
    stop = await http.put(f"/tasks/taskPlans/{plan_id}/batches/Task_{COUNTING}_1/stop", headers=READER)
    assert stop.status_code == 403
    assert (await http.delete(f"/tasks/taskPlans/{plan_id}", headers=ADMIN)).status_code == 200
