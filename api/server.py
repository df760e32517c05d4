"""Serve the API with uvicorn."""

from __future__ import annotations

import uvicorn

from api.main import create_app
from taskplan.bootstrap import open_stack
from taskplan.settings import Settings


def serve(
    settings: Settings, config_file: str | None = None, *, host: str | None = None, port: int | None = None
) -> int:
    stack = open_stack(config_file, settings)
    uvicorn.run(
        create_app(stack),
        host=host or settings.controller_host,
        port=port or settings.controller_port,
        log_level="info",
    )
    return 0
