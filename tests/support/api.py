"""An HTTP client on the real API app (lifespan run), wired to the session's dev server and catalog."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client

from taskplan.api.main import create_app
from taskplan.api.server import tls_options
from taskplan.bootstrap import Stack
from taskplan.catalog import Catalog
from taskplan.registry import build_registry
from taskplan.settings import Settings
from tests.support.engine import TEST_OPTIONS
from tests.support.tasktypes import ALL_SPECS


def app_for_tests(engine: Client, catalog: Catalog, properties: dict[str, str] | None = None) -> FastAPI:
    settings = Settings.model_validate(
        {"temporal.address": engine.service_client.config.target_host, **(properties or {})}
    )
    stack = Stack(
        settings=settings,
        registry=build_registry(ALL_SPECS, entry_points_group=None),
        catalog=catalog,
    )
    stack.plan_options = lambda: TEST_OPTIONS  # type: ignore[method-assign]  # short heartbeats in tests
    app = create_app(stack)
    app.state.test_settings = settings
    return app


@asynccontextmanager
async def api_client(
    engine: Client, catalog: Catalog, properties: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    app = app_for_tests(engine, catalog, properties)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://taskplan.test") as client,
    ):
        yield client


@asynccontextmanager
async def live_api(
    engine: Client, catalog: Catalog, properties: dict[str, str] | None = None
) -> AsyncIterator[str]:
    """The API served by uvicorn on a free loopback port, in this event loop; yields its URL (https when
    the properties configure taskplan.api.tls.*, through the server's own checks: tls_options)."""
    app = app_for_tests(engine, catalog, properties)
    tls = tls_options(app.state.test_settings)
    cert, key = tls or (None, None)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", ssl_certfile=cert, ssl_keyfile=key
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
