from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from api.main import create_app
from taskplan.bootstrap import Stack
from taskplan.catalog import Catalog
from taskplan.registry import build_registry
from taskplan.settings import Settings
from tests.support.engine import TEST_OPTIONS
from tests.support.tasktypes import ALL_SPECS


@pytest.fixture
async def http(engine: Client, tables: Catalog) -> AsyncIterator[httpx.AsyncClient]:
    address = engine.service_client.config.target_host
    settings = Settings.model_validate({"temporal.address": address})
    stack = Stack(
        settings=settings,
        registry=build_registry(ALL_SPECS, entry_points_group=None),
        catalog=tables,
        tables=tables,
    )
    stack.plan_options = lambda: TEST_OPTIONS  # type: ignore[method-assign]  # short heartbeats in tests
    app = create_app(stack)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://taskplan.test") as client:
            yield client
