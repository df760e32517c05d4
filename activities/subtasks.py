"""Minion activity: run one subtask with its task type's executor (plugin code), heartbeating meanwhile.

The executor runs in a thread so that blocking I/O (DuckDB, files) does not stall the worker; the activity
heartbeats on its behalf, so a killed minion is noticed within the heartbeat timeout and the subtask is
handed to another minion. Cancellation (abort, worker shutdown) reaches the executor through ``cancel()``.

An executor that fails because the catalog or the object store is out of reach for a moment (a database
restart, a dropped connection, S3 answering 5xx or SlowDown, a full scratch disk) is run again here, after a
backoff, for up to ``UNAVAILABLE_RETRY_SECONDS``: executors are safe to run twice (README, "Exactly once"),
and such a failure is no fault of the subtask's, so it must not use up the task type's attempts (one, by
default: a moment's outage would fail every batch it touched, and then the plan).
"""

from __future__ import annotations

import asyncio
import errno
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from taskplan.catalog import is_unavailable as catalog_unavailable
from taskplan.models.errors import (
    FATAL_TASK_ERROR,
    INVALID_EXECUTOR_RESULT,
    TASK_CONFIG_ERROR,
    UNKNOWN_TASK_TYPE,
    WORKER_SHUTDOWN,
    describe,
)
from taskplan.plugin import (
    ExecutionContext,
    FatalTaskError,
    PinotTaskConfig,
    PluginContext,
    SubtaskResult,
    TaskConfigError,
)
from taskplan.registry import TaskTypeRegistry, UnknownTaskTypeError
from taskplan.storage import StorageUnavailableError
from taskplan.workflows.activity_defs import SubtaskActivityDefs
from taskplan.workflows.models import SubtaskInput, SubtaskOutput

# How long a cancelled executor gets to stop before the activity gives up waiting for its thread.
CANCEL_GRACE_SECONDS = 10.0
# How long a subtask keeps running its executor again while the catalog or the store is unavailable.
UNAVAILABLE_RETRY_SECONDS = 300.0
UNAVAILABLE_BACKOFF_SECONDS = (1.0, 30.0)  # the first wait, doubled each time up to the second


class SubtaskActivities(SubtaskActivityDefs):
    def __init__(
        self,
        registry: TaskTypeRegistry,
        context: PluginContext,
        threads: int = 32,
        identity: str | None = None,
    ) -> None:
        self._registry = registry
        self._context = context
        self._identity = identity  # the process's (<host>-<pid>): a subtask's output names its minion
        # Executors block (files, DuckDB): one thread per subtask slot, not asyncio's small default pool.
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="executor")

    @activity.defn(name="run_subtask")
    async def run_subtask(self, request: SubtaskInput) -> SubtaskOutput:
        info = activity.info()
        try:
            executor = self._registry.get(request.task_type).new_executor()
        except UnknownTaskTypeError as exc:
            raise ApplicationError(str(exc), type=UNKNOWN_TASK_TYPE, non_retryable=True) from None
        latest_details: list[Any] = []
        details_lock = threading.Lock()

        def record_heartbeat(*details: Any) -> None:
            with details_lock:
                latest_details[:] = details

        context = ExecutionContext(
            subtask_name=request.subtask_name,
            attempt=info.attempt,
            plugin=self._context,
            heartbeat=record_heartbeat,
        )
        task = PinotTaskConfig(request.task_type, dict(request.configs))
        interval = _heartbeat_interval(
            info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else None
        )

        async def heartbeat_until(work: asyncio.Future[Any]) -> None:
            while True:
                done, _ = await asyncio.wait({work}, timeout=interval)
                if done:
                    return
                with details_lock:
                    activity.heartbeat(*latest_details)

        give_up_at = time.monotonic() + UNAVAILABLE_RETRY_SECONDS
        backoff, max_backoff = UNAVAILABLE_BACKOFF_SECONDS
        try:
            while True:
                work = asyncio.get_running_loop().run_in_executor(self._pool, executor.execute, task, context)
                await heartbeat_until(work)
                try:
                    result = work.result()
                    break
                except Exception as exc:
                    if not _unavailable(exc) or time.monotonic() + backoff > give_up_at:
                        raise
                    activity.logger.warning(
                        "subtask %s: %s; running it again in %.0f s",
                        request.subtask_name,
                        describe(exc),
                        backoff,
                    )
                await heartbeat_until(asyncio.ensure_future(asyncio.sleep(backoff)))
                backoff = min(2 * backoff, max_backoff)
                executor = self._registry.get(request.task_type).new_executor()
        except asyncio.CancelledError:
            context.cancelled.set()
            executor.cancel()
            await asyncio.wait({work}, timeout=CANCEL_GRACE_SECONDS)
            if activity.is_worker_shutdown():
                raise ApplicationError(
                    f"minion {info.task_queue} is shutting down; subtask {request.subtask_name} handed back",
                    {"attempt": info.attempt},
                    type=WORKER_SHUTDOWN,
                ) from None
            raise
        except FatalTaskError as exc:
            raise ApplicationError(
                describe(exc), {"attempt": info.attempt}, type=FATAL_TASK_ERROR, non_retryable=True
            ) from exc
        except TaskConfigError as exc:
            raise ApplicationError(
                describe(exc), {"attempt": info.attempt}, type=TASK_CONFIG_ERROR, non_retryable=True
            ) from exc
        except Exception as exc:
            raise ApplicationError(describe(exc), {"attempt": info.attempt}, type=type(exc).__name__) from exc
        output = _output(result, info.attempt)
        if self._identity:
            output.worker = f"minion[{_tag_of(info.task_queue)}]@{self._identity}"  # the Worker's identity
        return output


def _unavailable(exc: BaseException) -> bool:
    """Whether the executor failed for want of the catalog, the store or scratch space, not by its own fault
    (the error itself or what it was raised from)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, StorageUnavailableError) or catalog_unavailable(seen):
            return True
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(seen):  # DuckDB's IOException, writing a staged segment
            return True
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return False


def _heartbeat_interval(timeout_s: float | None) -> float:
    if not timeout_s:
        return 10.0
    return max(0.2, min(10.0, timeout_s / 3))


def _tag_of(queue: str) -> str:
    """The minion tag of a ``minion-<tag>.<TaskType>`` queue (task types have no dot)."""
    return queue.removeprefix("minion-").rpartition(".")[0]


def _output(result: object, attempt: int) -> SubtaskOutput:
    if result is None:
        return SubtaskOutput(attempt=attempt)
    if not isinstance(result, SubtaskResult):
        raise ApplicationError(
            f"executor returned {type(result).__name__}; expected SubtaskResult",
            {"attempt": attempt},
            type=INVALID_EXECUTOR_RESULT,
            non_retryable=True,
        )
    return SubtaskOutput(
        counts={str(k): float(v) for k, v in result.counts.items()},
        message=result.message[:2000],
        samples=[s[:500] for s in list(result.samples)[:10]],
        attempt=attempt,
    )
