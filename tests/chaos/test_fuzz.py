"""Schemathesis against a live API (its own process, on a real cluster), with and without credentials:
no request may get a 5xx, and every response must match the OpenAPI schema.

Two runs each: stateless (the CLI: every operation, examples and fuzzing), and stateful (the Python state
machine following the API's OpenAPI links, taskplan/api/openapi_links.py: a schema, its table, a plan
triggered on it, read, paused, aborted, the table dropped). FUZZ_EXAMPLES sets the stateless examples per
operation, FUZZ_STATEFUL_EXAMPLES the stateful scenarios and FUZZ_STATEFUL_STEPS their longest length.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.generation.stateful import run_state_machine_as_test
from schemathesis.hooks import HookContext
from schemathesis.specs.openapi.checks import response_schema_conformance

from taskplan.api.openapi_links import LINKS
from tests.chaos.cluster import Cluster

P = "TASKPLAN_PROP_controller.admin.access.control.principals"
EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "8")
STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "15"))
STATEFUL_STEPS = int(os.environ.get("FUZZ_STATEFUL_STEPS", "10"))
PASSWORD = "fuzz-s3cret"
ADMIN = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the module's runs (starting one costs a dev server, workers and an API)."""
    running = Cluster(
        tmp_path_factory.mktemp("fuzz"),
        extra_env={P: "admin", f"{P}.admin.password": PASSWORD, "CONTROLLER_HOST": "127.0.0.1"},
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()  # also when it did not start: no process is left behind
    assert PASSWORD not in (running.data_dir / "cluster.log").read_text()


def schemathesis_cli(url: str, report: Path, *headers: str) -> tuple[int, str]:
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
async def test_fuzzing_the_api_finds_no_server_error(
    cluster: Cluster, tmp_path: Path, credentials: str
) -> None:
    headers = [f"Authorization: {ADMIN}"] if credentials == "admin" else []
    report = tmp_path / "junit.xml"
    code, output = await asyncio.to_thread(schemathesis_cli, cluster.url, report, *headers)
    cases = sum(int(n) for n in re.findall(r'tests="(\d+)"', report.read_text())) if report.exists() else 0
    print("FUZZ", json.dumps({"credentials": credentials, "exit": code, "junit_tests": cases}))
    print(output[-3000:])
    assert code == 0, output[-6000:]


def stateful_run(url: str, headers: dict[str, str], scenarios: int, steps: int) -> Counter[str]:
    """Run the links state machine; answer how often each operation answered each status."""
    linked = {end for link in LINKS for end in (link.source, link.target)}
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json").include(
        lambda ctx: (ctx.operation.method.lower(), ctx.operation.path) in linked
    )
    seen: Counter[str] = Counter()
    failures: list[str] = []
    scenarios_run = [0]

    @schema.hook
    def before_generate_body(
        context: HookContext, strategy: st.SearchStrategy[Any]
    ) -> st.SearchStrategy[Any]:
        # Half of the schemas saved are valid ones (random bodies almost never declare a column), so that
        # scenarios go on to their table and its plans; the other half stay random.
        if context.operation is not None and context.operation.label == "POST /schemas":
            return st.one_of(strategy, VALID_SCHEMAS)
        return strategy

    class Links(schema.as_state_machine()):  # type: ignore[misc]  # a class schemathesis builds at run time
        def setup(self) -> None:
            scenarios_run[0] += 1

        def before_call(self, case: Case[Any]) -> None:
            body = case.body if isinstance(case.body, dict) else {}
            if body.get("metricFieldSpecs") == VALID_SCHEMA_COLUMNS["metricFieldSpecs"]:
                case.media_type = "application/json"  # not as a form: its first part would be the schema

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"headers": headers, "timeout": 60}

        def after_call(self, response: Response, case: Case[Any]) -> None:
            seen[f"{case.operation.label} {response.status_code}"] += 1
            if not headers and response.status_code != 401:
                print(
                    "FUZZ unauthenticated answer:",
                    case.operation.label,
                    response.status_code,
                    response.text[:200],
                )

        def validate_response(self, response: Response, case: Case[Any], *args: Any, **kwargs: Any) -> None:
            # Failures are collected, not raised: a replay could not reproduce them (the server's state has
            # moved on), and Hypothesis would report that instead of the failure.
            try:
                case.validate_response(
                    response,
                    checks=[not_a_server_error, response_schema_conformance],
                    transport_kwargs=kwargs,
                )
            except (AssertionError, FailureGroup) as exc:
                failures.append(
                    f"{case.as_curl_command()}\n-> {response.status_code} {response.text[:500]}\n{exc}"
                )

    # The server's state moves on between scenarios (a name taken, a plan ended), so a later scenario may
    # draw differently after the same first choices: Hypothesis then raises Flaky, as it does when it
    # replays. Like schemathesis' own engine, start a new run until the scenarios asked for have run.
    runs = 0
    while scenarios_run[0] < scenarios and runs < 20:
        runs += 1
        try:
            run_state_machine_as_test(
                Links,
                settings=hypothesis.settings(
                    max_examples=scenarios - scenarios_run[0],
                    stateful_step_count=steps,
                    deadline=None,
                    database=None,
                    phases=[hypothesis.Phase.generate],
                    suppress_health_check=list(hypothesis.HealthCheck),
                ),
            )
        except hypothesis.errors.Flaky:
            continue
        break
    seen["scenarios"] = scenarios_run[0]
    assert not failures, "\n\n".join(failures[:5])
    return seen


def undo_the_stateless_runs(url: str) -> None:
    """The stateless runs may have stopped the purge queue (its documented example) or switched
    orchestration off (a cluster config): the links' trigger would then start no plan."""
    auth = {"Authorization": ADMIN}
    assert httpx.put(f"{url}/tasks/SegmentPurgeTask/resume", headers=auth, timeout=60).status_code == 200
    switch = "controller.startree.task.manager.enableTaskOrchestration"
    assert httpx.delete(f"{url}/cluster/configs/{switch}", headers=auth, timeout=60).status_code == 200


VALID_SCHEMA_COLUMNS = {
    "dimensionFieldSpecs": [{"name": "country", "dataType": "STRING"}],
    "metricFieldSpecs": [{"name": "amount", "dataType": "DOUBLE"}],
}
VALID_SCHEMAS = st.from_regex(r"[a-z][a-z0-9]{0,11}", fullmatch=True).map(
    lambda name: {"schemaName": name, **VALID_SCHEMA_COLUMNS}
)


@pytest.mark.parametrize("credentials", ["admin", "none"])
async def test_stateful_fuzzing_follows_the_links_without_a_server_error(
    cluster: Cluster, credentials: str
) -> None:
    headers = {"Authorization": ADMIN} if credentials == "admin" else {}
    await asyncio.to_thread(undo_the_stateless_runs, cluster.url)
    started = time.monotonic()
    # Without credentials every scenario stops at its first call (401): a few show it.
    scenarios = STATEFUL_EXAMPLES if credentials == "admin" else max(3, STATEFUL_EXAMPLES // 5)
    seen = await asyncio.to_thread(stateful_run, cluster.url, headers, scenarios, STATEFUL_STEPS)
    figures = {
        "credentials": credentials,
        "calls": sum(seen.values()),
        "seconds": round(time.monotonic() - started),
    }
    print("FUZZ stateful", json.dumps(figures), json.dumps(dict(sorted(seen.items()))))
    if credentials == "none":
        # Nothing is done without credentials. (A body FastAPI cannot parse as JSON is a 400 before the
        # credentials are looked at: its parsing precedes the dependencies; the answer says nothing else.)
        assert seen["POST /schemas 401"] and not [k for k in seen if k.split()[-1].startswith("2")], seen
        return
    # The links were followed: tables were created from the schemas the run saved (a random body does not
    # name a schema that exists); longer runs get to the plans triggered on them, read and aborted.
    assert seen["POST /tables 200"], seen
    if scenarios >= 100:
        assert seen["POST /tasks/execute 200"] and seen["GET /tasks/taskPlans/{planId} 200"], seen
