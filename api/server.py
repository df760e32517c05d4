"""Serve the API with uvicorn, over HTTPS when ``taskplan.api.tls.certFile`` and ``keyFile`` are set.
Without principals it serves loopback only, and says so."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import uvicorn

from taskplan.api.auth import AccessControl
from taskplan.api.main import create_app
from taskplan.bootstrap import open_stack
from taskplan.settings import Settings, is_loopback

log = logging.getLogger("taskplan.api")


def check_bind(settings: Settings, host: str) -> AccessControl:
    """Refuse to expose an unauthenticated API beyond this machine."""
    access = AccessControl.from_settings(settings)
    if not access.enabled and not is_loopback(host):
        raise SystemExit(
            f"refusing to serve {host} without authentication: configure "
            "controller.admin.access.control.principals, or bind 127.0.0.1"
        )
    return access


def tls_options(settings: Settings) -> tuple[str, str] | None:
    """uvicorn's ``ssl_certfile`` and ``ssl_keyfile``, checked: a missing or unreadable file, a file that
    is not PEM, and a key that is not the certificate's stop the process here with a message naming the
    property and the file (uvicorn would fail with a traceback). None when HTTPS is not configured."""
    cert, key = settings.api_tls_cert_file, settings.api_tls_key_file
    if cert is None or key is None:
        return None
    for prop, path in (("certFile", cert), ("keyFile", key)):
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise SystemExit(
                f"taskplan cannot start: taskplan.api.tls.{prop} {path}: {exc.strerror or exc}"
            ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        reason = str(exc.reason or exc).lower()
        if "mismatch" in reason:
            why = "the key is not the certificate's (key values mismatch)"
        elif "pem" in reason or "no start line" in reason or "no_start_line" in reason:
            why = "not a PEM certificate and key"
        else:
            why = str(exc)
        raise SystemExit(
            f"taskplan cannot start: taskplan.api.tls.certFile {cert} / taskplan.api.tls.keyFile {key}: {why}"
        ) from None
    return str(cert), str(key)


def serve(
    settings: Settings, config_file: str | None = None, *, host: str | None = None, port: int | None = None
) -> int:
    bind = host or settings.controller_host
    try:
        access = check_bind(settings, bind)
    except ValueError as exc:  # a principal's properties (the message never holds a password)
        raise SystemExit(f"taskplan cannot start: {exc}") from None
    tls = tls_options(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if tls:
        log.info("HTTPS on: certificate %s", tls[0])
    if access.enabled:
        log.info("authentication on: HTTP Basic principals from controller.admin.access.control.principals")
    else:
        log.warning("no principals configured: authentication is OFF, serving loopback (%s) only", bind)
    stack = open_stack(config_file, settings)

    app = create_app(stack)
    cert, key = tls or (None, None)
    config = uvicorn.Config(
        app,
        host=bind,
        port=port or settings.controller_port,
        log_level="info",
        ssl_certfile=cert,
        ssl_keyfile=key,
    )

    async def connect_and_serve() -> None:
        # Connect and check once before serving: a refused certificate or an unprepared namespace stops the
        # process here with its one-line message (inside the app's lifespan it would be a long traceback).
        # The app's lifespan uses this client: one connection and one check at start, not two.
        app.state.client = await stack.connect(retries=60)
        await uvicorn.Server(config).serve()

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:  # uvicorn.run's loop (uvloop)
        runner.run(connect_and_serve())
    return 0
