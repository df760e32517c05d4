"""A subtask whose executor fails because the catalog or the store is out of reach for a moment is run again
in the same attempt (activities/subtasks.py), so a moment's outage does not use up a task type's single
attempt and fail the batch; any other error still fails it at once. Found by the multi-host fault campaign
(tests/multihost/test_faults.py): S3 answering SlowDown for 6 s failed four batches of every plan.

The activity runs in Temporal's ActivityEnvironment with a task type of the test's whose executor raises
what a real outage raises first (a refused PostgreSQL connection through SQLAlchemy, the S3 backend's
error, a full disk) and then succeeds."""

from __future__ import annotations

import errno
import threading
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import taskplan.activities.subtasks as subtasks
from taskplan.activities.subtasks import SubtaskActivities
from taskplan.catalog import Catalog
from taskplan.data.parquet import DuckDBConfig
from taskplan.plugin import (
    BaseTaskExecutor,
    BaseTaskGenerator,
    ExecutionContext,
    PinotTaskConfig,
    PluginContext,
    SubtaskResult,
    TaskTypePlugin,
)
from taskplan.registry import TaskTypeRegistry
from taskplan.settings import Settings
from taskplan.storage import StorageUnavailableError
from taskplan.workflows.models import SubtaskInput
from tests.support.s3 import free_port

_failures: dict[str, list[BaseException]] = {}  # subtask name -> what its next runs raise, in turn
_runs: dict[str, int] = {}
_lock = threading.Lock()


def refused_connection() -> OperationalError:
    """What SQLAlchemy raises when the catalog's PostgreSQL does not answer (here: nothing listens)."""
    engine = create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x")
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("a connection to a closed port succeeded")


class OutageGenerator(BaseTaskGenerator):
    task_type: ClassVar[str] = "TestOutageTask"


class OutageExecutor(BaseTaskExecutor):
    def execute(self, task: PinotTaskConfig, context: ExecutionContext) -> SubtaskResult:
        with _lock:
            _runs[context.subtask_name] = _runs.get(context.subtask_name, 0) + 1
            failures = _failures[context.subtask_name]
            failure = failures.pop(0) if failures else None
        if failure is not None:
            raise failure
        return SubtaskResult(counts={"runs": _runs[context.subtask_name]})


@pytest.fixture
def activities(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SubtaskActivities:
    monkeypatch.setattr(subtasks, "UNAVAILABLE_BACKOFF_SECONDS", (0.05, 0.1))  # the waits, not the logic
    registry = TaskTypeRegistry()
    registry.register(TaskTypePlugin(generator=OutageGenerator, executor=OutageExecutor))
    settings = Settings.model_validate({"taskplan.dataDir": str(tmp_path)})
    context = PluginContext(settings, Catalog(f"sqlite:///{tmp_path / 'catalog.db'}"), DuckDBConfig())
    return SubtaskActivities(registry, context, threads=2)


async def run(activities: SubtaskActivities, name: str, failures: list[BaseException]) -> Any:
    _failures[name] = list(failures)
    request = SubtaskInput(task_type=OutageGenerator.task_type, subtask_name=name, configs={})
    return await ActivityEnvironment().run(activities.run_subtask, request)


async def test_an_outage_is_waited_out_within_the_attempt(activities: SubtaskActivities) -> None:
    outages: list[BaseException] = [
        refused_connection(),
        StorageUnavailableError("reading s3://b/k: SlowDown: Please reduce your request rate. (HTTP 503)"),
        OSError(errno.ENOSPC, "No space left on device"),
        duckdb.IOException('IO Error: Could not write file ".staging-1.parquet": No space left on device'),
    ]
    output = await run(activities, "outage-1", outages)
    assert output.attempt == 1 and output.counts == {"runs": 5.0}


async def test_other_errors_still_fail_the_attempt(activities: SubtaskActivities) -> None:
    with pytest.raises(ApplicationError, match="division by zero"):
        await run(activities, "broken-1", [ZeroDivisionError("division by zero")])
    assert _runs["broken-1"] == 1
