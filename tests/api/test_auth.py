"""Authentication and table-level authorization on every endpoint (Pinot's BasicAuth principals)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from taskplan.api.server import check_bind
from taskplan.catalog import Catalog
from taskplan.settings import Settings
from tests.support.api import api_client

P = "controller.admin.access.control.principals"
COUNTING = "TestCountingTask"
OPEN_PATHS = {
    "/health",
    "/health/liveness",
    "/health/readiness",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ADMIN = basic("admin", "s3cret-admin")
READER = basic("reader", "r3ader")
WRONG = basic("admin", "nope")


@pytest.fixture
async def secured(engine: Client, tables: Catalog) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    mine, other = f"auth{uuid.uuid4().hex[:8]}", f"auth{uuid.uuid4().hex[:8]}"
    principals = {
        P: "admin,reader",
        f"{P}.admin.password": "s3cret-admin",
        f"{P}.reader.password": "r3ader",
        f"{P}.reader.tables": mine,
        f"{P}.reader.permissions": "READ",
    }
    async with api_client(engine, tables, principals) as http:
        for name in (mine, other):
            schema = {"schemaName": name, "dimensionFieldSpecs": [{"name": "c", "dataType": "STRING"}]}
            assert (await http.post("/schemas", json=schema, headers=ADMIN)).status_code == 200
            table = {"tableName": name, "tableType": "OFFLINE"}
            assert (await http.post("/tables", json=table, headers=ADMIN)).status_code == 200
        yield http, mine, other


def concrete(path: str, table: str) -> str:
    plan = f"{table}_OFFLINE__{COUNTING}__00000000-0000-0000-0000-000000000000"
    return (
        path.replace("{planId}", plan)
        .replace("{taskPlanId}", plan)
        .replace("{tableName}", table)
        .replace("{schemaName}", table)
        .replace("{taskType}", COUNTING)
        .replace("{taskName}", f"Task_{COUNTING}_1")
        .replace("{configName}", "x")
    )


async def test_every_endpoint_needs_credentials(secured: tuple[httpx.AsyncClient, str, str]) -> None:
    http, mine, _ = secured
    spec = (await http.get("/openapi.json")).json()
    checked = 0
    for path, operations in spec["paths"].items():
        if path in OPEN_PATHS:
            continue
        for method in operations:
            url = concrete(path, mine)
            for headers in ({}, WRONG, {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"}):
                response = await http.request(method.upper(), url, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.json()["code"] == 401
            checked += 1
    assert checked >= 25
    assert (await http.get("/health")).status_code in (200, 503)


async def test_table_level_authorization(secured: tuple[httpx.AsyncClient, str, str]) -> None:
    http, mine, other = secured
    # Reading the own table works; the other table answers as a missing one (tests/api/test_auth_hostile.py).
    assert (await http.get(f"/tables/{mine}", headers=READER)).status_code == 200
    forbidden = await http.get(f"/tables/{other}", headers=READER)
    assert forbidden.status_code == 404 and forbidden.json()["error"] == f"table {other} does not exist"
    assert (await http.get(f"/schemas/{other}", headers=READER)).status_code == 404
    # Listings show only readable tables.
    assert (await http.get("/tables", headers=READER)).json()["tables"] == [mine]
    assert other in (await http.get("/tables", headers=ADMIN)).json()["tables"]
    # A READ-only principal cannot write, even to its own table.
    for method, path, body in (
        ("POST", "/tasks/execute", {"taskType": COUNTING, "tableName": f"{mine}_OFFLINE"}),
        ("PUT", f"/tables/{mine}", {"tableName": mine, "tableType": "OFFLINE"}),
        ("DELETE", f"/tables/{mine}", None),
        ("POST", "/cluster/configs", {"x": "1"}),
        ("POST", "/schemas", {"schemaName": mine, "metricFieldSpecs": [{"name": "n", "dataType": "LONG"}]}),
    ):
        response = await http.request(method, path, headers=READER, json=body)
        assert response.status_code == 403, (method, path, response.text)
    # Plans: the reader sees its table's plans, not the other's.
    plan = (
        await http.post(
            "/tasks/execute",
            headers=ADMIN,
            json={
                "taskType": COUNTING,
                "tableName": f"{other}_OFFLINE",
                "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "1"},
            },
        )
    ).json()["taskPlanId"]
    assert (await http.get(f"/tasks/taskPlans/{plan}", headers=READER)).status_code == 404
    assert (await http.get(f"/tasks/taskPlans/{plan}", headers=ADMIN)).status_code == 200
    listed = await http.get(
        "/tasks/taskPlans",
        headers=READER,
        params={"tableNameWithType": f"{other}_OFFLINE", "taskType": COUNTING},
    )
    assert listed.status_code == 200 and listed.json() == []
    ids = (await http.get("/tasks/taskPlans/active/ids", headers=READER)).json()
    assert plan not in ids
    assert (await http.delete(f"/tasks/taskPlans/{plan}", headers=READER)).status_code == 404


async def test_passwords_never_come_back(secured: tuple[httpx.AsyncClient, str, str]) -> None:
    http, _, _ = secured
    configs = (await http.get("/cluster/configs", headers=ADMIN)).text
    assert "s3cret-admin" not in configs and "r3ader" not in configs
    failed = await http.get("/tables", headers=WRONG)
    assert "nope" not in failed.text and "s3cret" not in failed.text


def test_unauthenticated_api_refuses_a_public_bind() -> None:
    with pytest.raises(SystemExit, match=r"refusing to serve 0\.0\.0\.0 without authentication"):
        check_bind(Settings(), "0.0.0.0")
    assert not check_bind(Settings(), "127.0.0.1").enabled
    secured = Settings.model_validate({P: "a", f"{P}.a.password": "x"})
    assert check_bind(secured, "0.0.0.0").enabled
    with pytest.raises(ValueError, match="principal 'b' has no"):
        check_bind(Settings.model_validate({P: "b"}), "127.0.0.1")


async def test_passwords_are_never_logged_or_returned(
    secured: tuple[httpx.AsyncClient, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    http, mine, _ = secured
    caplog.set_level("DEBUG")
    answers = [
        await http.get("/tables", headers=WRONG),
        await http.get("/tables", headers=ADMIN),
        await http.get("/cluster/configs", headers=ADMIN),
        await http.get(f"/tables/{mine}", headers=READER),
        await http.get("/openapi.json"),
        await http.get("/metrics", headers=ADMIN),
    ]
    assert answers[0].status_code == 401
    for secret in ("s3cret-admin", "r3ader", "nope"):
        assert all(secret not in a.text for a in answers)
        assert secret not in caplog.text
