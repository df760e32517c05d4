"""`make run` as a user meets it: the stack's printed metrics URL shows every documented family, from the
start and after a plan ran to its end, with the gauges' current values and no event counted twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from taskplan.metrics import MERGE_TARGET_UP
from taskplan.runtime import REPO_ROOT
from tests.api.test_metrics_targets import DOCUMENTED, families, value
from tests.api.test_tables_and_triggers_api import create_table, new_name, wait_inactive
from tests.chaos.cluster import free_port
from tests.support.engine import cycle_of, eventually

pytestmark = pytest.mark.slow


@dataclass
class EmbeddedStack:
    banner: str
    api: str


@pytest.fixture
def embedded_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    """`taskplan run` (what `make run` runs) on free ports, its output in run.log. A port picked free can be
    taken before the stack binds it (the other test worker, the dev server's own random ports): the stack
    then refuses to start, naming the address in use, and is started again on fresh ports."""
    for attempt in range(3):
        process, api_port, log = _start_stack(tmp_path / f"try{attempt}")
        try:
            deadline = time.monotonic() + 180
            while "Ctrl-C stops everything" not in (output := log.read_text(errors="replace")):
                if process.poll() is not None:
                    break
                assert time.monotonic() < deadline, output
                time.sleep(0.3)
            else:
                yield EmbeddedStack(output, f"http://127.0.0.1:{api_port}")
                return
            assert "Address already in use" in output and attempt < 2, output
        finally:
            process.send_signal(signal.SIGTERM)  # the supervisor stops its children in order
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _start_stack(workdir: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    workdir.mkdir()
    api_port, metrics_port = free_port(), free_port()
    config = workdir / "taskplan.properties"
    config.write_text(
        f"temporal.address = 127.0.0.1:{free_port()}\ncontroller.port = {api_port}\n"
        f"taskplan.metrics.port = {metrics_port}\ntaskplan.dataDir = {workdir / 'data'}\n",
        encoding="utf-8",
    )
    # The stack reads only this test's properties, not what the environment of the test run sets.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKPLAN_", "TEMPORAL_", "CONTROLLER_"))}
    log = workdir / "run.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "taskplan.cli", "--config", str(config), "run"]
        process = subprocess.Popen(
            [*command, "--ui-port", str(free_port())], cwd=REPO_ROOT, env=env, stdout=out, stderr=out
        )
    return process, api_port, log


async def scrape(http: httpx.AsyncClient, url: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    response = await http.get(url)
    assert response.status_code == 200, response.text
    return families(response.text)


async def test_make_run_prints_one_metrics_url_showing_every_documented_family(
    embedded_stack: EmbeddedStack,
) -> None:
    printed = re.search(r"^  Metrics +(\S+)", embedded_stack.banner, re.MULTILINE)
    assert printed is not None, embedded_stack.banner
    url = printed.group(1)
    assert url == f"{embedded_stack.api}/metrics"  # where a user of the API looks
    controller = re.search(r"the controller worker's alone: (\S+)", embedded_stack.banner)
    assert controller is not None
    async with httpx.AsyncClient(base_url=embedded_stack.api, timeout=10) as http:
        # Before any plan: every family, the poll's gauge with its value, the controller's endpoint merged.
        async def first_poll_seen() -> dict[str, list[tuple[str, dict[str, str], float]]]:
            found = await scrape(http, url)
            assert found["orchestrationTimeSinceLastPollMs"], "the controller's first poll is not merged"
            return found

        found = await eventually(first_poll_seen, timeout=60)
        assert set(DOCUMENTED) <= set(found)
        text = (await http.get(url)).text
        for name, kind in DOCUMENTED.items():
            exported = f"{name}_total" if kind == "counter" else name
            assert f"# HELP {exported} " in text and f"# TYPE {exported} {kind}\n" in text
        assert [v for _, _, v in found[MERGE_TARGET_UP]] == [1]
        assert found["orchestrationTimeSinceLastPollMs"][0][2] < 60_000

        # A plan that spans more than one orchestration poll (every 15 s), run to its end.
        noop = {"enableTaskOrchestration": "true", "numBatches": "4", "numSubtasksPerBatch": "2"}
        table = await create_table(http, new_name(), {"NoOpTask": {**noop, "subtaskSleepMs": "5000"}})
        started = await http.post("/tasks/schedule", params={"taskType": "NoOpTask", "tableName": table})
        assert started.status_code == 200, started.text
        plan_id = cycle_of(started.json(), "NoOpTask")["taskPlans"][table]
        assert started.json()["NoOpTask"] == plan_id
        again = await http.post("/tasks/schedule", params={"taskType": "NoOpTask", "tableName": table})
        assert cycle_of(again.json(), "NoOpTask")["skipped"] == {table: plan_id}  # counted by the API process

        async def seen_active() -> None:
            found = await scrape(http, url)
            assert value(found, "activeTaskPlansCount", table) == 1
            assert value(found, "taskPlanInputsToProcess", table) == 8

        await eventually(seen_active, timeout=60, interval=1)
        await wait_inactive(http, plan_id)
        assert (await http.get(f"/tasks/taskPlans/{plan_id}")).json()["status"] == "COMPLETED"

        async def seen_ended() -> None:
            found = await scrape(http, url)
            assert value(found, "activeTaskPlansCount", table) == 0

        await eventually(seen_ended, timeout=60, interval=1)
        found = await scrape(http, url)
        assert set(DOCUMENTED) <= set(found)
        assert value(found, "taskPlansAbortingCount", table) == 0
        assert value(found, "taskPlanInputsToProcess", table) == 8
        # The poll sets a plan's input gauges while it is active: the last one it saw (all 8 if it saw
        # the last batch end), and nothing in progress once the plan ended.
        assert value(found, "taskPlanInputsProcessed", table) in (0, 2, 4, 6, 8)
        assert value(found, "taskPlanInputsBeingProcessed", table) == 0
        assert value(found, "taskPlanProgressionBlocked", table) == 0  # set by the controller's gate
        assert value(found, "scheduledTriggerActivePlanConflict", table) == 1  # once, not once per process
        assert value(found, "taskPlanAborted", table) is None
        assert value(found, "taskGenerationFailureCount", table) is None

        # The controller's own endpoint holds what the controller observed; the API's merge shows the same.
        own = await scrape(http, controller.group(1))
        assert value(own, "activeTaskPlansCount", table) == 0
        assert value(own, "taskPlanInputsProcessed", table) == value(found, "taskPlanInputsProcessed", table)
        assert value(own, "scheduledTriggerActivePlanConflict", table) is None  # the API counted that one
