"""Serve the API with uvicorn. Without principals it serves loopback only, and says so."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import uvicorn

from taskplan.api.auth import AccessControl
from taskplan.api.main import create_app
from taskplan.bootstrap import open_stack
from taskplan.settings import Settings

log = logging.getLogger("taskplan.api")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str) -> AccessControl:
    """Refuse to expose an unauthenticated API beyond this machine."""
    access = AccessControl.from_settings(settings)
    if not access.enabled and not is_loopback(host):
        raise SystemExit(
            f"refusing to serve {host} without authentication: configure "
            "controller.admin.access.control.principals, or bind 127.0.0.1"
        )
    return access


def serve(
    settings: Settings, config_file: str | None = None, *, host: str | None = None, port: int | None = None
) -> int:
    bind = host or settings.controller_host
    access = check_bind(settings, bind)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if access.enabled:
        log.info("authentication on: HTTP Basic principals from controller.admin.access.control.principals")
    else:
        log.warning("no principals configured: authentication is OFF, serving loopback (%s) only", bind)
    stack = open_stack(config_file, settings)

    app = create_app(stack)
    config = uvicorn.Config(app, host=bind, port=port or settings.controller_port, log_level="info")

    async def connect_and_serve() -> None:
        # Connect and check once before serving: a refused certificate or an unprepared namespace stops the
        # process here with its one-line message (inside the app's lifespan it would be a long traceback).
        # The app's lifespan uses this client: one connection and one check at start, not two.
        app.state.client = await stack.connect(retries=60)
        await uvicorn.Server(config).serve()

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:  # uvicorn.run's loop (uvloop)
        runner.run(connect_and_serve())
    return 0
