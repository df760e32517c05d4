"""Where the metrics are served: a worker's bind host and port, and the API merging its merge targets'."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.metrics import FAMILIES, MERGE_TARGET_UP, OrchestrationMetrics, metrics, prometheus_text
from taskplan.runtime import REPO_ROOT, port_in_use, wait_for_port
from taskplan.settings import Settings, load_settings
from taskplan.worker import metrics_address, parse_args
from tests.chaos.cluster import free_port
from tests.support.api import api_client

DOCUMENTED = {family.name: family.kind for family in FAMILIES}


def families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Family name -> its samples, asserting each documented family has the documented type."""
    found: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in found, f"{family.name} exported twice"
        if family.name in DOCUMENTED:
            assert family.type == DOCUMENTED[family.name], family.name
        found[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    return found


def value(found: dict[str, list[tuple[str, dict[str, str], float]]], name: str, table: str) -> float | None:
    for _sample, labels, sample_value in found.get(name, []):
        if labels.get("tableNameWithType") == table:
            return sample_value
    return None


# ------------------------------------------------------------------ properties and flags


def test_bind_host_and_port_come_from_the_properties_and_the_flags(tmp_path: Path) -> None:
    config = tmp_path / "worker.properties"
    config.write_text("taskplan.metrics.host = 0.0.0.0\ntaskplan.metrics.port = 9555\n", encoding="utf-8")
    settings = load_settings(config, environ={})
    assert (settings.metrics_host, settings.metrics_port) == ("0.0.0.0", 9555)
    assert metrics_address(parse_args([]), settings) == ("0.0.0.0", 9555)
    assert metrics_address(parse_args(["--metrics-port", "9600"]), settings) == ("0.0.0.0", 9600)
    flags = parse_args(["--metrics-host", "127.0.0.1", "--metrics-port", "9601"])
    assert metrics_address(flags, settings) == ("127.0.0.1", 9601)
    assert metrics_address(parse_args(["--metrics-port", "0"]), settings) is None  # off despite the property
    environment = load_settings(
        environ={"TASKPLAN_METRICS_HOST": "127.0.0.3", "TASKPLAN_METRICS_PORT": "9602"}
    )
    assert metrics_address(parse_args([]), environment) == ("127.0.0.3", 9602)
    assert metrics_address(parse_args([]), Settings()) is None  # off by default
    with pytest.raises(SystemExit, match="between 0 and 65535"):
        metrics_address(parse_args(["--metrics-port", "70000"]), settings)


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("taskplan.metrics.port", "70000"),
        ("taskplan.metrics.port", "-1"),
        ("taskplan.metrics.host", ""),
        ("taskplan.api.metricsMergeTargets", "127.0.0.1"),  # no port
        ("taskplan.api.metricsMergeTargets", "127.0.0.1:9101,ftp://x:1"),
        ("taskplan.api.metricsMergeTargets", "http://127.0.0.1:99999/metrics"),
    ],
)
def test_bad_metrics_properties_are_refused(key: str, bad: str) -> None:
    with pytest.raises(ValidationError, match=key.replace(".", r"\.")):
        Settings.model_validate({key: bad})


def test_merge_targets_are_host_port_or_urls() -> None:
    settings = Settings.model_validate(
        {"taskplan.api.metricsMergeTargets": " 127.0.0.1:9101 , https://ctl.example/prom/metrics"}
    )
    assert settings.metrics_merge_urls == {
        "127.0.0.1:9101": "http://127.0.0.1:9101/metrics",
        "https://ctl.example/prom/metrics": "https://ctl.example/prom/metrics",
    }
    assert Settings().metrics_merge_urls == {}


# ------------------------------------------------------------------ a worker's own endpoint


@pytest.fixture
def worker_without_temporal(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    """Worker processes pointed at a Temporal address nobody serves: they serve their metrics while they
    wait to connect, and take no work from the session's dev server."""
    config = tmp_path / "worker.properties"
    config.write_text(
        f"temporal.address = 127.0.0.1:{free_port()}\ntaskplan.dataDir = {tmp_path / 'data'}\n"
        f"taskplan.metrics.host = 127.0.0.2\ntaskplan.metrics.port = {free_port()}\n",
        encoding="utf-8",
    )
    (tmp_path / "data").mkdir()
    catalog = Catalog(load_settings(config, environ={}).resolved_catalog_url)
    catalog.migrate()  # a worker starts only on an upgraded catalog
    catalog.close()
    processes: list[subprocess.Popen[bytes]] = []
    yield config, processes
    for process in processes:
        process.kill()
        process.wait()


def start_worker(config: Path, processes: list[subprocess.Popen[bytes]], *flags: str) -> None:
    command = [sys.executable, "worker.py", "--role", "controller", "--config", str(config), *flags]
    processes.append(
        subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    )


def test_a_worker_serves_every_documented_family_on_its_configured_host_and_port(
    worker_without_temporal: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    config, processes = worker_without_temporal
    settings = load_settings(config, environ={})
    start_worker(config, processes)
    wait_for_port("127.0.0.2", settings.metrics_port, 60, processes[0])
    assert not port_in_use("127.0.0.1", settings.metrics_port)  # bound to the configured host only
    text = httpx.get(f"http://127.0.0.2:{settings.metrics_port}/metrics", timeout=10).text
    assert set(DOCUMENTED) <= set(families(text))
    for name, kind in DOCUMENTED.items():  # HELP and TYPE before any event
        exported = f"{name}_total" if kind == "counter" else name
        assert f"# HELP {exported} " in text and f"# TYPE {exported} {kind}\n" in text

    port = free_port()
    start_worker(config, processes, "--metrics-host", "127.0.0.1", "--metrics-port", str(port))
    wait_for_port("127.0.0.1", port, 60, processes[1])
    assert set(DOCUMENTED) <= set(families(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text))


# ------------------------------------------------------------------ the API's merge


def test_merge_sums_counters_takes_the_highest_gauge_and_drops_the_rest() -> None:
    table = f"merge{uuid.uuid4().hex[:10]}_OFFLINE"
    attrs = OrchestrationMetrics.attributes(table, "NoOpTask")
    metrics().task_plan_aborted.add(2, attrs)
    metrics().active_task_plans_count.set(1, attrs)
    metrics().task_plan_inputs_processed.set(4, attrs)
    labels = f'tableNameWithType="{table}",taskType="NoOpTask"'
    controller = (
        "# HELP taskPlanAborted_total plans aborted\n# TYPE taskPlanAborted_total counter\n"
        f"taskPlanAborted_total{{{labels}}} 3.0\n"
        f"taskPlanAborted_created{{{labels}}} 1.7e9\n"
        "# TYPE activeTaskPlansCount gauge\n"
        f"activeTaskPlansCount{{{labels}}} 1.0\n"
        "# TYPE taskPlanInputsProcessed gauge\n"
        f"taskPlanInputsProcessed{{{labels}}} 6.0\n"
        "# TYPE taskPlansAbortingCount gauge\n"
        f'taskPlansAbortingCount{{tableNameWithType="other{table}",taskType="NoOpTask"}} 1.0\n'
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 99.0\n"
    )
    merged = prometheus_text({"controller:9101": controller, "down:9102": None, "junk:9103": "{ not text"})
    found = families(merged.decode())
    assert value(found, "taskPlanAborted", table) == 5  # this process's 2 and the controller's 3
    assert not any(s.endswith("_created") for s, _, _ in found["taskPlanAborted"])
    assert value(found, "activeTaskPlansCount", table) == 1  # both saw the same plan: not 2
    assert value(found, "taskPlanInputsProcessed", table) == 6
    assert value(found, "taskPlansAbortingCount", f"other{table}") == 1  # a series only the target has
    assert 99.0 not in [v for _, _, v in found.get("process_cpu_seconds", [])]  # the API's own, not both
    up = {labels["target"]: v for _, labels, v in found[MERGE_TARGET_UP]}
    assert up == {"controller:9101": 1, "down:9102": 0, "junk:9103": 0}
    assert set(DOCUMENTED) <= set(found)


async def test_the_api_merges_a_workers_endpoint_and_shows_a_target_that_is_down(
    engine: Client,
    tables: Catalog,
    worker_without_temporal: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    config, processes = worker_without_temporal
    port = free_port()
    start_worker(config, processes, "--metrics-host", "127.0.0.1", "--metrics-port", str(port))
    wait_for_port("127.0.0.1", port, 60, processes[0])
    down = f"127.0.0.1:{free_port()}"
    targets = {"taskplan.api.metricsMergeTargets": f"127.0.0.1:{port},{down}"}
    async with api_client(engine, tables, targets) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    found = families(response.text)
    assert set(DOCUMENTED) <= set(found)
    up = {labels["target"]: v for _, labels, v in found[MERGE_TARGET_UP]}
    assert up == {f"127.0.0.1:{port}": 1, down: 0}
