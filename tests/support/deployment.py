"""Processes as a deployment runs them (worker.py, `taskplan api`, configured only by their environment),
and one plan through the REST API, for the production-Temporal tests (TLS, setup, catalog rights)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from taskplan.runtime import REPO_ROOT, wait_for_port


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return spawn(["worker.py", "--role", "both", "--graceful-shutdown-seconds", "1"], env, log)


def start_api(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    return spawn(["-m", "taskplan.cli", "api", "--port", str(port)], env, log)


def refused(args: list[str], env: dict[str, str], log: Path, within_s: float = 180) -> tuple[str, float]:
    """Run a process that must stop by itself at start: its output and how long it took (it fails the
    test if it still runs after ``within_s``, the hang a bad connection must not be). The bound is loose:
    on a loaded 2-CPU machine a Python process takes tens of seconds to import; the tests measure the
    refusal itself in-process (Stack.connect), where it is seconds."""
    started = time.monotonic()
    process = spawn(args, env, log)
    try:
        code = process.wait(within_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"{args} still ran after {within_s}s: {log.read_text()[-2000:]}") from None
    elapsed = time.monotonic() - started
    output = log.read_text(encoding="utf-8", errors="replace")
    assert code != 0, output
    return output, elapsed


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_plan(api_url: str, api: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    """Create a table, trigger a small NoOpTask plan and wait for its end; returns the plan."""
    wait_for_port("127.0.0.1", int(api_url.rsplit(":", 1)[1]), 180, api)  # imports are slow under load
    with httpx.Client(base_url=api_url, timeout=60) as http:
        deadline = time.monotonic() + 180
        while http.get("/health").status_code != 200:  # Temporal answers and a controller polls
            assert time.monotonic() < deadline, f"the API never became healthy: {log.read_text()[-2000:]}"
            time.sleep(0.3)
        table = f"t{uuid.uuid4().hex[:10]}"
        answer = http.post(
            "/schemas",
            json={"schemaName": table, "dimensionFieldSpecs": [{"name": "c", "dataType": "STRING"}]},
        )
        assert answer.status_code == 200, answer.text
        answer = http.post("/tables", json={"tableName": table, "tableType": "OFFLINE"})
        assert answer.status_code == 200, answer.text
        answer = http.post(
            "/tasks/execute",
            json={
                "taskType": "NoOpTask",
                "tableName": f"{table}_OFFLINE",
                "taskConfigs": {
                    "enableTaskOrchestration": "true",
                    "numBatches": "2",
                    "numSubtasksPerBatch": "2",
                },
            },
        )
        assert answer.status_code == 200, answer.text
        plan_id = answer.json()["taskPlanId"]
        answer = http.get(f"/tasks/taskPlans/{plan_id}", params={"waitForTerminalSeconds": 120})
        assert answer.status_code == 200, answer.text
        plan: dict[str, Any] = answer.json()
        return plan
