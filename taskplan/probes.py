"""A worker's one HTTP port: ``/metrics`` (Prometheus text), ``/health/liveness`` and ``/health/readiness``.

Bound to ``taskplan.metrics.host``:``taskplan.metrics.port`` (or ``--metrics-host``/``--metrics-port``), no
authentication, served from a thread so a busy event loop still answers ``/metrics``:

- liveness: 200 while the worker's event loop runs a no-op within ``LOOP_TIMEOUT_S`` (a wedged loop, which
  would stop heartbeats and polls, fails it, so the orchestrator restarts the process);
- readiness: 200 when the worker is connected to Temporal and polling, Temporal answers and the catalog
  answers; 503 with JSON naming each check that failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from taskplan.metrics import prometheus_text

log = logging.getLogger(__name__)

LOOP_TIMEOUT_S = 10.0
CHECK_TIMEOUT_S = 5.0

Check = Callable[[], Awaitable[None]]  # raises when what it checks is not there


@dataclass
class WorkerHealth:
    """What the probes ask; the worker fills it in as it starts."""

    loop: asyncio.AbstractEventLoop
    checks: dict[str, Check] = field(default_factory=dict)  # name -> check, run on the loop
    waiting_for: str | None = "connecting to Temporal"  # None once the workers poll

    def live(self) -> str | None:
        try:
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self.loop).result(LOOP_TIMEOUT_S)
        except Exception as exc:
            return f"the worker's event loop does not answer within {LOOP_TIMEOUT_S:.0f} s: {exc!r}"
        return None

    def readiness(self) -> dict[str, str]:
        checks = {"worker": "ok" if self.waiting_for is None else f"not polling yet: {self.waiting_for}"}
        for name, check in self.checks.items():
            try:
                future = asyncio.run_coroutine_threadsafe(
                    asyncio.wait_for(check(), CHECK_TIMEOUT_S), self.loop
                )
                future.result(CHECK_TIMEOUT_S + 1)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"{name} is not reachable: {type(exc).__name__}: {exc}"
        return checks


def _handler(health: WorkerHealth) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, prometheus_text())
            elif path == "/health/liveness":
                problem = health.live()
                if problem is None:
                    self._send(200, "text/plain; charset=utf-8", b"OK")
                else:
                    self._json(503, {"code": 503, "error": problem})
            elif path == "/health/readiness":
                checks = health.readiness()
                failed = {k: v for k, v in checks.items() if v != "ok"}
                if failed:
                    error = "not ready: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
                    self._json(503, {"code": 503, "error": error, "checks": checks})
                else:
                    self._json(200, {"ready": True, "checks": checks})
            else:
                self._json(
                    404,
                    {
                        "code": 404,
                        "error": f"no such path {path}: /metrics, /health/liveness, /health/readiness",
                    },
                )

        def _json(self, status: int, body: object) -> None:
            self._send(status, "application/json", json.dumps(body).encode())

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("worker port: " + format, *args)

    return Handler


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def serve_worker_port(host: str, port: int, health: WorkerHealth) -> ThreadingHTTPServer:
    """Serve the worker's port from a daemon thread; raises OSError when it cannot bind."""
    server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
    server = server_class((host, port), _handler(health))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="worker-port", daemon=True).start()
    return server
