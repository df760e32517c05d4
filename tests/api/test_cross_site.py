"""Cross-site requests through real HTTP (api/origins.py): a state-changing request a browser sends for
another origin's page is refused before it runs; the API's own origin, the allow-list, and clients that
are not browsers (no Origin, Referer or Sec-Fetch-Site) go through. The browser itself: tests/ui."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from taskplan.catalog import Catalog
from tests.api.test_auth import ADMIN, COUNTING, P
from tests.support.api import live_api

ALLOWED = "https://taskplan.example.com"


@pytest.fixture
async def api(engine: Client, tables: Catalog, data_dir: Path) -> AsyncIterator[str]:
    properties = {
        "taskplan.dataDir": str(data_dir),
        "taskplan.api.allowedOrigins": f"{ALLOWED}, http://other.example:8080",
        P: "admin",
        f"{P}.admin.password": "s3cret-admin",
    }
    async with live_api(engine, tables, properties) as url:
        yield url


async def test_state_changes_from_another_origin_are_refused(api: str) -> None:
    async with httpx.AsyncClient(base_url=api, headers=ADMIN) as http:
        raw = f"xs{uuid.uuid4().hex[:8]}"
        schema = {"schemaName": raw, "dimensionFieldSpecs": [{"name": "c", "dataType": "STRING"}]}
        assert (await http.post("/schemas", json=schema)).status_code == 200  # no Origin: a script
        assert (
            await http.post("/tables", json={"tableName": raw, "tableType": "OFFLINE"})
        ).status_code == 200
        body = {
            "taskType": COUNTING,
            "tableName": f"{raw}_OFFLINE",
            "taskConfigs": {"enableTaskOrchestration": "true", "numBatches": "500", "sleepMs": "200"},
        }
        plan = (await http.post("/tasks/execute", json=body)).json()["taskPlanId"]
        abort = f"/tasks/taskPlans/{plan}"
        refused = [
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Origin": api.replace("127.0.0.1", "localhost")},  # another origin (and site) of this machine
            {"Origin": api.rsplit(":", 1)[0] + ":1"},  # the same host, another port: another origin
            {"Referer": "http://evil.example/page.html"},
            {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
            {"Sec-Fetch-Site": "same-site"},
        ]
        for headers in refused:
            for method, path in (("DELETE", abort), ("PUT", f"{abort}/pause"), ("POST", "/tasks/schedule")):
                answer = await http.request(method, path, headers=headers)
                assert answer.status_code == 403, (headers, method, answer.text)
                assert answer.json()["error"].startswith("cross-site request refused"), answer.text
            # Reads are not state changes: they answer.
            assert (await http.get(abort, headers=headers)).status_code == 200
        assert (await http.get(f"/tasks/taskPlans/isActive/{plan}")).json()["status"] == "ACTIVE"
        # Refused before authentication too: nothing of the request runs.
        no_credentials = await http.delete(
            abort, headers={"Origin": "http://evil.example", "Authorization": ""}
        )
        assert no_credentials.status_code == 403

        # The API's own origin, an allowed one, and a same-origin browser request pass: pause and resume in
        # turn (resuming a plan that is not paused would be a 409).
        passing = [
            {"Origin": api, "Sec-Fetch-Site": "same-origin"},
            {"Origin": api},
            {"Referer": f"{api}/ui?plan={plan}"},
            {"Origin": ALLOWED},
            {"Origin": "http://OTHER.example:8080"},
            {"Sec-Fetch-Site": "none"},
        ]
        for turn, headers in enumerate(passing):
            steer = "resume" if turn % 2 else "pause"
            answer = await http.put(f"{abort}/{steer}", headers=headers)
            assert answer.status_code == 200, (headers, answer.text)
            assert answer.json()["paused"] is (steer == "pause")
        assert (await http.delete(abort, headers={"Origin": api})).status_code == 200
