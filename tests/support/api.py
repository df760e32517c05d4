"""An HTTP client on the real API app (lifespan run), wired to the session's dev server and catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from temporalio.client import Client

from api.main import create_app
from taskplan.bootstrap import Stack
from taskplan.catalog import Catalog
from taskplan.registry import build_registry
from taskplan.settings import Settings
from tests.support.engine import TEST_OPTIONS
from tests.support.tasktypes import ALL_SPECS


@asynccontextmanager
async def api_client(
    engine: Client, catalog: Catalog, properties: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.model_validate(
        {"temporal.address": engine.service_client.config.target_host, **(properties or {})}
    )
    stack = Stack(
        settings=settings,
        registry=build_registry(ALL_SPECS, entry_points_group=None),
        catalog=catalog,
        tables=catalog,
    )
    stack.plan_options = lambda: TEST_OPTIONS  # type: ignore[method-assign]  # short heartbeats in tests
    app = create_app(stack)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://taskplan.test") as client,
    ):
        yield client
