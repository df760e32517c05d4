"""One API client per module for the contract tests (tests/api/contract): each module pins Pinot's wire
shapes of a group of endpoints against the real API app on the session's engine and catalog."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from taskplan.catalog import Catalog
from tests.support.api import api_client

CONTRACT = "TestContractTask"  # the contract tests' own task type (tests/support/tasktypes.py)


@pytest.fixture(scope="module")
async def api(engine: Client, tables: Catalog, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine, tables, {"taskplan.dataDir": str(data_dir)}) as client:
        yield client


def unique(prefix: str = "c") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def make_table(
    api: httpx.AsyncClient,
    task_configs: dict[str, dict[str, str]] | None = None,
    table_type: str = "OFFLINE",
    name: str | None = None,
) -> str:
    """A schema and a table of it; returns the table's name with type."""
    raw = name or unique()
    schema = {"schemaName": raw, "dimensionFieldSpecs": [{"name": "country", "dataType": "STRING"}]}
    made = await api.post("/schemas", json=schema)
    assert made.status_code in (200, 409), made.text
    config = {"tableName": raw, "tableType": table_type, "task": {"taskTypeConfigsMap": task_configs or {}}}
    response = await api.post("/tables", json=config)
    assert response.status_code == 200, response.text
    return f"{raw}_{table_type}"


def assert_error(response: httpx.Response, status: int, *fragments: str) -> None:
    """taskplan's error body {code, error}, naming the problem."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "error"} and body["code"] == status
    for fragment in fragments:
        assert fragment in body["error"], body
