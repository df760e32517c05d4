"""Every error of the domain, in one place.

Two kinds cross a boundary:

* **Error types** (``ApplicationError.type``): what an activity tells the workflow that called it, and what a
  workflow's failure tells its caller. The names below are the only spellings; a type listed in
  ``NON_RETRYABLE`` is a failure no retry can fix (bad configs, unknown names).
* **Exceptions of the client side** (starting, reading and aborting plans and tasks), which the API maps to
  HTTP statuses (``api/errors.py``)::

      Exception
      ├── PlanAlreadyActiveError          409: one active plan per table and task type
      ├── TaskAlreadyExistsError          409: an ad hoc task name already taken
      ├── TaskStillRunningError           409: deleting what still runs, unforced
      ├── PlanNotSteerableError           409: pausing or resuming a plan that ended (or is not paused)
      ├── TaskGenerationError             legacy generation failed (error_type tells 400 from 500)
      └── LookupError
          ├── PlanNotFoundError           404
          └── TaskNotFoundError           404

Errors of a lower layer stay beside it: the catalog's (``taskplan.catalog.errors``: table, schema, segment
and lineage lookups and conflicts), the plugin API's (``taskplan.plugin``: ``TaskConfigError``,
``FatalTaskError``), settings (``SettingsError``) and names (``InvalidNameError``).
"""

from __future__ import annotations

from typing import Final

from temporalio.exceptions import ApplicationError

# ---------------------------------------------------------------- error types (ApplicationError.type)

TASK_CONFIG_ERROR: Final = "TaskConfigError"
UNKNOWN_TASK_TYPE: Final = "UnknownTaskType"
TABLE_NOT_FOUND: Final = "TableNotFound"
FATAL_TASK_ERROR: Final = "FatalTaskError"
BATCH_TOO_LARGE: Final = "BatchTooLarge"
WORKER_SHUTDOWN: Final = "WorkerShutdown"
INVALID_EXECUTOR_RESULT: Final = "InvalidExecutorResult"
NOT_READY: Final = "NotReady"  # a query or signal that came before the workflow's first task
PLAN_ENDED: Final = "TaskPlanEnded"  # an abort Update on a plan that already ended (rejected)

# How a FAILED plan's workflow fails (its ApplicationError type; the details carry the plan): the cause.
PLAN_FAILED_THRESHOLD: Final = "TaskPlanFailureThresholdBreached"
PLAN_FAILED_GENERATOR_ABORT: Final = "TaskPlanAbortedByGenerator"
PLAN_FAILED_GENERATION: Final = "TaskPlanGenerationFailed"

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


# ---------------------------------------------------------------- client side


class PlanAlreadyActiveError(Exception):
    """A plan is already active for this table and task type (the API answers 409)."""

    def __init__(self, table_name_with_type: str, task_type: str, active_plan_id: str | None) -> None:
        super().__init__(
            f"a task plan is already active for table {table_name_with_type} and task type {task_type}: "
            f"{active_plan_id or 'unknown'}"
        )
        self.active_plan_id = active_plan_id


class TaskAlreadyExistsError(Exception):
    """An ad hoc task's name (``Task_<taskType>_<taskName>``) is taken (the API answers 409, as Pinot)."""

    def __init__(self, task_name: str, requested_name: str | None = None) -> None:
        # Pinot's message names the taskName of the request, not the parent task's name.
        super().__init__(f"Task already exists: {requested_name or task_name}")
        self.task_name = task_name


class TaskStillRunningError(Exception):
    """A delete of a task (or a task type's tasks) that still runs, without ``forceDelete`` (409)."""


class PlanNotSteerableError(Exception):
    """A pause or resume the plan cannot take: it ended, is aborting, or (resume) is not paused (409)."""


class PlanNotFoundError(LookupError):
    def __init__(self, plan_id: str) -> None:
        super().__init__(f"task plan {plan_id} not found")


class TaskNotFoundError(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"task {name} not found")


class TaskGenerationError(Exception):
    """Legacy generation failed; `error_type` tells a config problem (400) from others."""

    def __init__(self, message: str, error_type: str | None) -> None:
        super().__init__(message)
        self.error_type = error_type
