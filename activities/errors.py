"""Error types that cross from activities to workflows (ApplicationError.type values)."""

from __future__ import annotations

from typing import Final

from temporalio.exceptions import ApplicationError

TASK_CONFIG_ERROR: Final = "TaskConfigError"
UNKNOWN_TASK_TYPE: Final = "UnknownTaskType"
TABLE_NOT_FOUND: Final = "TableNotFound"
FATAL_TASK_ERROR: Final = "FatalTaskError"
BATCH_TOO_LARGE: Final = "BatchTooLarge"
WORKER_SHUTDOWN: Final = "WorkerShutdown"

NON_RETRYABLE: Final = (
    TASK_CONFIG_ERROR,
    UNKNOWN_TASK_TYPE,
    TABLE_NOT_FOUND,
    FATAL_TASK_ERROR,
    BATCH_TOO_LARGE,
)


def refuse(message: str, error_type: str) -> ApplicationError:
    """A failure no retry can fix: bad configs, unknown names."""
    return ApplicationError(message, type=error_type, non_retryable=True)


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 2000 else text[:2000] + "..."
