"""Temporal envelopes: the inputs, outputs and carried state of the workflows and their activities.

The domain model they carry (plans, batches, tasks, subtasks) lives in ``taskplan.models``. Everything here
crosses Temporal as JSON through the pydantic data converter, camelCase on the wire.
"""

from __future__ import annotations

from pydantic import Field

from taskplan.models.base import WireModel
from taskplan.models.plan import (
    BatchEnd,
    PlanOptions,
    PlanSource,
    PlanStatus,
    TaskPlan,
)
from taskplan.models.task import (
    GeneratedBatch,
    PreviousBatchInfo,
    SubtaskQuery,
)

# ----------------------------------------------------------------------------------------------- plan


class PlanState(WireModel):
    """Everything a plan carries across continue-as-new."""

    plan: TaskPlan
    cursor: dict[str, str] = Field(default_factory=dict)
    abort_reason: str | None = None
    run_number: int = 0
    batches_this_run: int = 0
    blocked_reason: str | None = None
    last_error: str | None = None  # the last generation, batch or subtask error (the Web UI shows it)


class PlanAbortAnswer(WireModel):
    """The answer to the ``abort`` Update: the plan's status right after it."""

    plan_id: str
    status: PlanStatus
    status_message: str


class PlanInput(WireModel):
    plan_id: str
    table_name_with_type: str
    task_type: str
    source: PlanSource
    properties: dict[str, str] = Field(default_factory=dict)
    options: PlanOptions = Field(default_factory=PlanOptions)
    carried: PlanState | None = None  # set when the plan continues as new


# ---------------------------------------------------------------------------------------------- batch


class ProgressionCheck(WireModel):
    table_name_with_type: str
    task_type: str
    plan_id: str | None = None  # the asking plan: its own (just ended) batches are not counted in flight


class GenerateBatchInput(WireModel):
    plan_id: str
    table_name_with_type: str
    task_type: str
    properties: dict[str, str]
    batch_sequence: int
    cursor: dict[str, str] = Field(default_factory=dict)
    inputs_processed: int = 0
    previous_batch: PreviousBatchInfo | None = None
    # The name the batch gets if there is one: generation then records it as a running task (catalog).
    task_name: str | None = None
    submitted_at_ms: int = 0


class OneShotRequest(WireModel):
    """Legacy (non-orchestrated) generation: one batch, no plan."""

    task_type: str
    table_names_with_type: list[str]  # one table for ad hoc; every configured table for a scheduled cycle
    task_configs: dict[str, str] | None = None  # ad hoc task configs; None = scheduled (from table configs)
    minion_instance_tag: str | None = None  # POST /tasks/schedule?minionInstanceTag=: overrides the tables'
    # Pinot's triggeredBy of the subtasks (CRON_TRIGGER, MANUAL_TRIGGER, ADHOC_TRIGGER); None: ADHOC_TRIGGER
    # when task_configs are given, else MANUAL_TRIGGER.
    triggered_by: str | None = None


class BatchInput(WireModel):
    """A batch to run: a plan's (run by the plan itself) or a legacy task's (the TaskBatch workflow)."""

    task_name: str
    task_type: str
    table_names_with_type: list[str]
    plan_id: str | None = None  # set for a plan's batch
    batch_sequence: int | None = None  # set for a plan's batch
    one_shot: OneShotRequest | None = None  # a legacy task: what its TaskBatch generates
    options: PlanOptions = Field(default_factory=PlanOptions)


class BatchPageQuery(WireModel):
    """A page of the subtasks of a plan's running batch, by task name (asked of the plan)."""

    task_name: str
    page: SubtaskQuery = Field(default_factory=lambda: SubtaskQuery())


class NextBatchInput(WireModel):
    """A plan's step between two batches, one local activity: record how the last batch ended, ask the
    cluster's gate, and if it allows, generate (and record) the next batch."""

    generate: GenerateBatchInput
    check: ProgressionCheck
    ended: BatchEnd | None = None


class NextBatch(WireModel):
    batch: GeneratedBatch | None = None
    blocked_reason: str | None = None  # the gate said no: nothing was generated


class GenerationOutcome(WireModel):
    """Answer of the batch's `generated` update: how many subtasks the legacy generation produced."""

    num_subtasks: int
    error: str | None = None
    error_type: str | None = None


# ------------------------------------------------------------------------------------------- subtask


class SubtaskInput(WireModel):
    task_type: str
    subtask_name: str
    configs: dict[str, str]
    plan_id: str | None = None


class SubtaskOutput(WireModel):
    counts: dict[str, float] = Field(default_factory=dict)
    message: str = ""
    samples: list[str] = Field(default_factory=list)
    attempt: int = 1
    # The minion's worker identity (minion[<tag>]@<host>-<pid>): Pinot's participant of the subtask.
    worker: str | None = None


class CronTriggerInput(WireModel):
    """What a cron Schedule's firing hands its CronTrigger workflow: which table and task type fired."""

    table_name_with_type: str
    task_type: str


# --------------------------------------------------------------------------------------- cluster jobs

PROGRESS_POLL_JOB = "progress-poll"
SEGMENT_UPKEEP_JOB = "segment-upkeep"
CLEANUP_SWEEP_JOB = "cleanup-sweep"
CLUSTER_JOBS = (PROGRESS_POLL_JOB, SEGMENT_UPKEEP_JOB, CLEANUP_SWEEP_JOB)


class ClusterJobsInput(WireModel):
    jobs: list[str] = list(CLUSTER_JOBS)  # pydantic copies a default per instance
    heartbeat_timeout_s: int = 30  # how fast a dead controller's jobs move to another
