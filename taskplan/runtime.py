"""The embedded stack behind `make run`: Temporal dev server + Web UI, controller, minion and API processes.

Everything runs in the foreground as child processes of this one; Ctrl-C (or SIGTERM) stops them in
reverse order, workers first getting their graceful shutdown. State persists under the data directory
(Temporal's SQLite file, the catalog, the deep store), so the next start resumes the running plans.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from taskplan.binaries import temporal_cli
from taskplan.names import dev_server_search_attribute_flags
from taskplan.settings import Settings, is_loopback

# This process spawns the dev server before it imports anything it does not need for that (the catalog
# and its SQLAlchemy, the metrics' OpenTelemetry): those imports below are local, on purpose.

REPO_ROOT = Path(__file__).resolve().parent.parent

# The controller worker observes most orchestration metrics; in the embedded stack it serves them here
# (unless taskplan.metrics.port says otherwise) and the API merges them into its own GET /metrics.
EMBEDDED_CONTROLLER_METRICS_PORT = 9101


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def wait_for_port(
    host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before {host}:{port} answered")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{host}:{port} did not answer within {timeout:.0f}s")


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class PublicBindError(ValueError):
    """The embedded dev server was asked to listen beyond this machine."""


def embedded_server_command(settings: Settings, ui_port: int | None = None) -> list[str]:
    """The embedded stack's dev server: its gRPC port, Web UI and HTTP API on the loopback address of
    ``temporal.address`` only. Nothing there asks for credentials, and the Web UI shows every plan's inputs
    and can signal, cancel and terminate it, so a non-loopback address is refused (a deployment runs a
    Temporal cluster secured as README's "Securing Temporal's own surfaces" says)."""
    host, _ = split_address(settings.temporal_address)
    if not is_loopback(host):
        raise PublicBindError(
            f"temporal.address {settings.temporal_address}: the embedded Temporal dev server serves its "
            "gRPC port and Web UI without authentication, so it binds loopback only (127.0.0.1, ::1, "
            "localhost); run a secured Temporal cluster for other hosts"
        )
    return dev_server_command(settings, ui_port)


def dev_server_command(settings: Settings, ui_port: int | None = None, headless: bool = False) -> list[str]:
    host, port = split_address(settings.temporal_address)
    data_dir = settings.data_dir.resolve()
    command = [
        temporal_cli(), "server", "start-dev",
        "--ip", host,
        "--port", str(port),
        "--db-filename", str(data_dir / "temporal.db"),
        "--namespace", settings.temporal_namespace,
        "--log-level", "error",
        *dev_server_search_attribute_flags(),
    ]  # fmt: skip
    if headless:
        command.append("--headless")
    else:
        command += ["--ui-ip", host, "--ui-port", str(ui_port or port + 1000)]
    return command


def controller_metrics_address(settings: Settings) -> tuple[str, int]:
    return settings.metrics_host, settings.metrics_port or EMBEDDED_CONTROLLER_METRICS_PORT


def api_metrics_env(settings: Settings, env: dict[str, str]) -> dict[str, str]:
    """The API's environment: its GET /metrics merges the controller worker's endpoint into its own."""
    from taskplan.metrics import metrics_url

    controller = metrics_url(*controller_metrics_address(settings))
    targets = ",".join(filter(None, [settings.metrics_merge_targets, controller]))
    return {**env, "TASKPLAN_API_METRICSMERGETARGETS": targets}


def start_child(name: str, command: Sequence[str], env: dict[str, str]) -> Child:
    print(f"[taskplan] starting {name}: {' '.join(command)}", flush=True)
    # A new session: Ctrl-C in the terminal reaches only this supervisor, which then stops children in order.
    process = subprocess.Popen(list(command), cwd=REPO_ROOT, env=env, start_new_session=True)
    return Child(name, process)


def stop_children(children: Sequence[Child], timeout: float = 40.0) -> None:
    for child in reversed(children):
        if child.process.poll() is None:
            print(f"[taskplan] stopping {child.name}", flush=True)
            child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"[taskplan] {child.name} did not stop in {timeout:.0f}s; killing it", flush=True)
                child.process.kill()
                child.process.wait()


def upgrade_catalog(settings: Settings) -> None:
    from taskplan.catalog import Catalog

    catalog = Catalog(
        settings.resolved_catalog_url,
        pool_size=settings.catalog_pool_size,
        max_overflow=settings.catalog_max_overflow,
    )  # as bootstrap.open_catalog opens it, without importing the task types bootstrap brings
    try:
        before, after = catalog.migrate()
    finally:
        catalog.close()
    if before != after:
        print(f"[taskplan] catalog upgraded from revision {before or 'none'} to {after}", flush=True)


def run_stack(settings: Settings, config_file: str | None = None, ui_port: int | None = None) -> int:
    data_dir = settings.data_dir.resolve()
    (data_dir / "input").mkdir(parents=True, exist_ok=True)
    temporal_host, temporal_port = split_address(settings.temporal_address)
    try:
        server_command = embedded_server_command(settings, ui_port)
    except PublicBindError as exc:
        print(f"[taskplan] {exc}", flush=True)
        return 1
    if port_in_use(temporal_host, temporal_port):
        print(
            f"[taskplan] {settings.temporal_address} is already in use: is another stack running?", flush=True
        )
        return 1
    metrics_host, metrics_port = controller_metrics_address(settings)
    if port_in_use(metrics_host, metrics_port):
        print(
            f"[taskplan] {metrics_host}:{metrics_port} (the controller worker's metrics) is already in use: "
            "set taskplan.metrics.port to a free port",
            flush=True,
        )
        return 1
    env = dict(os.environ)
    if config_file:
        env["TASKPLAN_CONFIG"] = str(Path(config_file).resolve())
    env.setdefault("TASKPLAN_DATADIR", str(data_dir))
    python = sys.executable
    children: list[Child] = []
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        # Start-up order (README, Performance: start-up): the dev server first, and the catalog upgrade
        # while it boots; then the controller and the API at once, without waiting for the server's port
        # (both retry their connection for 30 s while nothing listens); the minion last, once the API and
        # the controller are up, so that its imports do not compete for the CPUs on the way to /health.
        server = start_child("temporal dev server", server_command, env)
        children.append(server)
        # The embedded stack upgrades its own catalog (what `taskplan db upgrade` does), so a fresh machine
        # still needs only `make run`; the processes it starts then check the revision like any other.
        upgrade_catalog(settings)
        controller = start_child(
            "controller worker",
            [python, "worker.py", "--role", "controller",
             "--metrics-host", metrics_host, "--metrics-port", str(metrics_port)],
            env,
        )  # fmt: skip
        children.append(controller)
        api = start_child(
            "api",
            [python, "-m", "taskplan.cli", "api", "--host", settings.controller_host,
             "--port", str(settings.controller_port)],
            api_metrics_env(settings, env),
        )  # fmt: skip
        children.append(api)
        wait_for_port(temporal_host, temporal_port, 60, server.process)
        wait_for_port(settings.controller_host, settings.controller_port, 60, api.process)
        wait_for_port(metrics_host, metrics_port, 60, controller.process)
        # The minion observes none of the documented metrics; its endpoint stays off (one shared config).
        minion = [python, "worker.py", "--role", "minion", "--metrics-port", "0"]
        children.append(start_child("minion worker", minion, env))
        from taskplan.metrics import metrics_url

        ui = ui_port or temporal_port + 1000
        scheme = "https" if settings.api_tls_cert_file else "http"
        api_url = f"{scheme}://{settings.controller_host}:{settings.controller_port}"
        print(
            "\n[taskplan] the stack is up:\n"
            f"  REST API       {api_url}\n"
            f"  API docs       {api_url}/docs\n"
            f"  Metrics        {api_url}/metrics  (all documented metrics, the controller's merged in)\n"
            f"                 the controller worker's alone: {metrics_url(metrics_host, metrics_port)}"
            " (already in the above: scrape one of the two)\n"
            f"  Temporal UI    http://{temporal_host}:{ui}\n"
            f"  Temporal gRPC  {settings.temporal_address}  (temporal workflow list --address ...)\n"
            f"  data           {data_dir}\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stopping:
            for child in children:
                if child.process.poll() is not None:
                    print(f"[taskplan] {child.name} exited with code {child.process.returncode}", flush=True)
                    return 1
            time.sleep(0.5)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"[taskplan] could not start the stack: {exc}", flush=True)
        return 1
    finally:
        stop_children(children)
