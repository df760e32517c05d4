"""deploy/ is checked statically (deploy/check.py, also run by `make check`): it checks out as shipped, and
each kind of drift or slip is caught: an unknown or invalid property, a setting that differs from the
multi-host test's, a probe on the wrong path, a root or unpinned Dockerfile, a manifest Kubernetes would
refuse."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_check", DEPLOY / "check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = load_check()


def test_the_shipped_deployment_checks_out() -> None:
    assert check.check_all(DEPLOY) == []


@pytest.mark.parametrize(
    ("file", "old", "new", "problem"),
    [
        (
            "k8s/taskplan.properties",
            "taskplan.metrics.port = 9101",
            "taskplan.metrics.prot = 9101",
            "'taskplan.metrics.prot'",
        ),
        (
            "k8s/taskplan.properties",
            "taskplan.duckdb.memoryLimit = 1GB",
            "taskplan.duckdb.memoryLimit = lots",
            "memoryLimit = 'lots'",
        ),
        (
            "k8s/taskplan.properties",
            "taskplan.metrics.port = 9101",
            "taskplan.metrics.port = 9102",
            "must GET /health/liveness on port 9102",
        ),
        (
            "k8s/api.yaml",
            "path: /health/readiness",
            "path: /health",
            "readinessProbe must GET /health/readiness",
        ),
        (
            "k8s/taskplan.properties",
            "taskplan.deepStore.dir = s3://taskplan/deepstore",
            "taskplan.deepStore.dir = s3://elsewhere/deepstore",
            "taskplan.deepStore.dir is 's3://elsewhere/deepstore', the multi-host test runs 's3://taskplan/",
        ),
        (
            "k8s/taskplan.properties",
            "temporal.sdk.metricsPort = 9102\n",
            "",
            "temporal.sdk.metricsPort is None, the multi-host test runs '9102'",
        ),
        ("k8s/minion.yaml", "replicas: 2", "replicas: two", "does not validate at spec.replicas"),
        ("k8s/minion.yaml", "              memory: 3Gi\n", "", "resources.limits must set cpu and memory"),
        (
            "compose/docker-compose.yml",
            "TEMPORAL_ADDRESS: temporal:7233",
            "TEMPORAL_ADRESS: temporal:7233",
            "TEMPORAL_ADRESS is not one",
        ),
        (
            "compose/docker-compose.yml",
            "image: temporalio/ui:2.34.0",
            "image: temporalio/ui:latest",
            "'temporalio/ui:latest' is not pinned",
        ),
        ("Dockerfile", "USER 10001:10001", "USER root", "non-root USER"),
        (
            "Dockerfile",
            "FROM python:3.11.11-slim-bookworm AS runtime",
            "FROM python:3-slim AS runtime",
            "'python:3-slim' is not pinned",
        ),
    ],
)
def test_drift_is_caught(tmp_path: Path, file: str, old: str, new: str, problem: str) -> None:
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    path = copy / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    problems = check.check_all(copy)
    assert any(problem in p for p in problems), problems
