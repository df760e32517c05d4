"""Schemathesis against a live API (its own process, on a real cluster), with and without credentials:
no request may get a 5xx, and every response must match the OpenAPI schema."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chaos.cluster import Cluster

P = "TASKPLAN_PROP_controller.admin.access.control.principals"
EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "8")


def schemathesis(url: str, report: Path, *headers: str) -> tuple[int, str]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--phases", "examples,fuzzing", "-n", EXAMPLES, "--no-color",
        "--report", "junit", "--report-junit-path", str(report),
        "--suppress-health-check", "all", "--request-timeout", "60",
    ]  # fmt: skip
    for header in headers:
        command += ["-H", header]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("credentials", ["admin", "none"])
async def test_fuzzing_the_api_finds_no_server_error(tmp_path: Path, credentials: str) -> None:
    cluster = Cluster(
        tmp_path, extra_env={P: "admin", f"{P}.admin.password": "fuzz-s3cret", "CONTROLLER_HOST": "127.0.0.1"}
    )
    await asyncio.to_thread(cluster.start)
    try:
        headers = []
        if credentials == "admin":
            token = base64.b64encode(b"admin:fuzz-s3cret").decode()
            headers.append(f"Authorization: Basic {token}")
        code, output = await asyncio.to_thread(schemathesis, cluster.url, tmp_path / "junit.xml", *headers)
    finally:
        await asyncio.to_thread(cluster.stop)
    cases = (
        sum(int(n) for n in re.findall(r'tests="(\d+)"', (tmp_path / "junit.xml").read_text()))
        if (tmp_path / "junit.xml").exists()
        else 0
    )
    print("FUZZ", json.dumps({"credentials": credentials, "exit": code, "junit_tests": cases}))
    print(output[-3000:])
    assert code == 0, output[-6000:]
    assert "fuzz-s3cret" not in (tmp_path / "cluster.log").read_text()
