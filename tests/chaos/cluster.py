"""A real taskplan cluster for fault injection: dev server (SQLite file), controller worker, minions and API,
each its own process, sharing one data directory and catalog."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from taskplan.catalog import Catalog
from taskplan.runtime import dev_server_command, wait_for_port
from taskplan.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    data_dir: Path
    temporal_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    server: subprocess.Popen[bytes] | None = None
    controller: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    minions: list[subprocess.Popen[bytes]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return Settings.model_validate(
            {"temporal.address": f"127.0.0.1:{self.temporal_port}", "taskplan.dataDir": str(self.data_dir)}
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
            "TASKPLAN_DATADIR": str(self.data_dir),
            "TASKPLAN_SUBTASK_HEARTBEATTIMEOUTSECONDS": "3",  # a dead minion is noticed in seconds
            "TASKPLAN_CLUSTERJOBS_HEARTBEATTIMEOUTSECONDS": "10",  # a killed controller's jobs move soon
            "CONTROLLER_PORT": str(self.api_port),
            **self.extra_env,
        }

    def _spawn(self, *command: str) -> subprocess.Popen[bytes]:
        log = (self.data_dir / "cluster.log").open("ab")
        return subprocess.Popen(list(command), cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT)

    def catalog(self) -> Catalog:
        return Catalog(self.settings.resolved_catalog_url)

    # ------------------------------------------------------------ processes

    def start_server(self) -> None:
        catalog = self.catalog()  # `taskplan db upgrade`: processes refuse a catalog not at their revision
        catalog.migrate()
        catalog.close()
        self.server = subprocess.Popen(
            dev_server_command(self.settings, headless=True),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.temporal_port, 60, self.server)

    def start_controller(self) -> None:
        self.controller = self._spawn(sys.executable, "worker.py", "--role", "controller")

    def start_minion(self) -> None:
        self.minions.append(
            self._spawn(sys.executable, "worker.py", "--role", "minion", "--graceful-shutdown-seconds", "1")
        )

    def start_api(self) -> None:
        self.api = self._spawn(sys.executable, "-m", "taskplan.cli", "api")
        wait_for_port("127.0.0.1", self.api_port, 60, self.api)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # healthy: Temporal answers and a controller polls
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError("the API did not become healthy")

    def start(self, minions: int = 2) -> None:
        self.start_server()
        self.start_controller()
        for _ in range(minions):
            self.start_minion()
        self.start_api()

    def kill(self, process: subprocess.Popen[bytes] | None, what: str) -> None:
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.faults.append(what)

    def kill_minion(self) -> None:
        victim = self.minions.pop(0)
        self.kill(victim, "kill -9 minion")
        self.start_minion()

    def kill_controller(self) -> None:
        self.kill(self.controller, "kill -9 controller worker")
        self.start_controller()

    def kill_api(self) -> None:
        self.kill(self.api, "kill -9 API")
        self.start_api()

    def restart_server(self) -> None:
        assert self.server is not None
        self.server.send_signal(signal.SIGTERM)
        self.server.wait(timeout=30)
        self.faults.append("dev server restart on the same SQLite file")
        self.start_server()

    def stop(self) -> None:
        for process in [self.api, self.controller, *self.minions, self.server]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [self.api, self.controller, *self.minions, self.server]:
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
