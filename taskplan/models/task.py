"""Tasks and their subtasks: states, records, generated batches and the views the task endpoints answer with.

A task is Pinot's parent task: a batch of a plan, or a legacy (one-shot) task.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from taskplan.models.base import WireModel


class TaskState(StrEnum):
    """State of a parent task (a batch), Helix's TaskState as Pinot reports it."""

    NOT_STARTED = "NOT_STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    STOPPED = "STOPPED"
    STOPPING = "STOPPING"  # the batch's plan is aborting (or it was stopped) while subtasks still run
    FAILED = "FAILED"
    COMPLETED = "COMPLETED"
    ABORTED = "ABORTED"
    TIMED_OUT = "TIMED_OUT"
    TIMING_OUT = "TIMING_OUT"
    FAILING = "FAILING"  # a legacy task past its failure tolerance while subtasks still run (they finish)

    @property
    def is_final(self) -> bool:
        return self not in _RUNNING_TASK_STATES


_RUNNING_TASK_STATES = frozenset(
    {
        TaskState.NOT_STARTED,
        TaskState.IN_PROGRESS,
        TaskState.STOPPING,
        TaskState.TIMING_OUT,
        TaskState.FAILING,
    }
)


# Pinot's triggeredBy subtask config (MinionConstants.TRIGGERED_BY) and its values (TaskTriggers) for legacy
# tasks: a cron firing, POST /tasks/schedule, POST /tasks/execute.
TRIGGERED_BY_KEY = "triggeredBy"
CRON_TRIGGER = "CRON_TRIGGER"
MANUAL_TRIGGER = "MANUAL_TRIGGER"
ADHOC_TRIGGER = "ADHOC_TRIGGER"


class SubtaskState(StrEnum):
    """State of a subtask, Helix's TaskPartitionState as Pinot reports it."""

    INIT = "INIT"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    TASK_ERROR = "TASK_ERROR"  # failed after its attempts
    TASK_ABORTED = "TASK_ABORTED"  # fatal failure: not retried
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"  # cancelled before it finished, or never started because the batch stopped
    DROPPED = "DROPPED"  # Helix's; taskplan's subtasks do not reach it (accepted, counted as Pinot does)


class SubtaskOptions(WireModel):
    """A task type's overrides, resolved by its generator (Pinot's optional generator methods)."""

    task_timeout_ms: int
    max_attempts_per_task: int
    minion_instance_tag: str
    num_concurrent_tasks_per_instance: int | None = None  # the generator's; None in batches before it


class GeneratedBatch(WireModel):
    """A generator's batch. Keys shared by every subtask travel once in `common` to keep payloads small."""

    common: dict[str, str] = Field(default_factory=dict)
    subtasks: list[dict[str, str]] = Field(default_factory=list)
    options: SubtaskOptions | None = None
    no_more_work: bool = False
    abort_reason: str | None = None
    inputs_in_batch: int = 0
    inputs_to_process: int | None = None
    input_unit: str | None = None
    custom_stats: dict[str, str] = Field(default_factory=dict)
    cursor: dict[str, str] = Field(default_factory=dict)
    task_name: str | None = None  # the name generation recorded the batch under (plans only)

    def subtask_configs(self, index: int) -> dict[str, str]:
        return {**self.common, **self.subtasks[index]}


class PreviousBatchInfo(WireModel):
    batch_sequence: int
    task_state: TaskState
    num_subtasks: int
    num_failed_subtasks: int


class SubtaskRecord(WireModel):
    subtask_name: str
    state: SubtaskState
    attempts: int = 0
    lost_worker_retries: int = 0
    error: str | None = None
    result: dict[str, float] | None = None
    message: str | None = None
    samples: list[str] | None = None
    started_at_ms: int | None = None
    finished_at_ms: int | None = None
    worker: str | None = None  # the worker identity of the minion that ran its last attempt, once it ended


class BatchResult(WireModel):
    task_name: str
    task_state: TaskState
    num_subtasks: int
    num_completed: int
    num_failed: int
    status_message: str = ""
    totals: dict[str, float] = Field(default_factory=dict)  # sums of the subtasks' counts


class BatchDetails(WireModel):
    task_name: str
    task_type: str
    plan_id: str | None
    batch_sequence: int | None
    table_names_with_type: list[str]
    task_state: TaskState
    submitted_at_ms: int
    status_message: str = ""
    num_subtasks: int
    subtasks: list[SubtaskRecord]
    totals: dict[str, float] = Field(default_factory=dict)
    counts: SubtaskCounts = Field(default_factory=lambda: SubtaskCounts())


class SubtaskConfig(WireModel):
    subtask_name: str
    task_type: str
    configs: dict[str, str]


class SubtaskCounts(WireModel):
    """Pinot's TaskCount: subtasks by state."""

    waiting: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    unknown: int = 0
    total: int = 0

    @classmethod
    def of(cls, records: list[SubtaskRecord], *, completed: int, failed: int) -> SubtaskCounts:
        counts = cls(total=len(records), completed=completed, failed=failed)
        for record in records:
            if record.state == SubtaskState.INIT:
                counts.waiting += 1
            elif record.state == SubtaskState.RUNNING:
                counts.running += 1
            elif record.state == SubtaskState.STOPPED:
                counts.unknown += 1
        return counts


class SubtaskQuery(WireModel):
    """A page of subtask records; answers stay far below Temporal's 2 MB payload limit."""

    offset: int = 0
    limit: int = Field(1000, ge=0, le=1000)


class PinotTaskCount(WireModel):
    """Pinot's TaskCount (``GET /tasks/{taskType}/taskcounts``, the debug endpoints), its field order.

    Pinot's mapping from Helix's subtask states: not yet assigned (taskplan's INIT) is ``waiting``; running
    is ``running``; TASK_ERROR ``error``; COMPLETED ``completed``; DROPPED ``dropped``; TIMED_OUT
    ``timedOut``; TASK_ABORTED ``aborted``; anything else (taskplan's STOPPED) ``unknown``.
    """

    total: int = 0
    completed: int = 0
    running: int = 0
    waiting: int = 0
    error: int = 0
    unknown: int = 0
    dropped: int = 0
    timed_out: int = 0
    aborted: int = 0

    def add(self, state: SubtaskState | None) -> None:
        self.total += 1
        if state is None or state is SubtaskState.INIT:
            self.waiting += 1
        elif state is SubtaskState.RUNNING:
            self.running += 1
        elif state is SubtaskState.TASK_ERROR:
            self.error += 1
        elif state is SubtaskState.COMPLETED:
            self.completed += 1
        elif state is SubtaskState.DROPPED:
            self.dropped += 1
        elif state is SubtaskState.TIMED_OUT:
            self.timed_out += 1
        elif state is SubtaskState.TASK_ABORTED:
            self.aborted += 1
        else:
            self.unknown += 1

    @classmethod
    def of(cls, states: list[SubtaskState | None]) -> PinotTaskCount:
        count = cls()
        for state in states:
            count.add(state)
        return count


def pinot_subtask_state(state: SubtaskState) -> SubtaskState | None:
    """A subtask's state as Pinot reports it: one not yet assigned to a minion (INIT) is null."""
    return None if state is SubtaskState.INIT else state
