"""Inputs, outputs and state of the workflows and activities; also the documented task plan wire model.

Everything here crosses Temporal as JSON through the pydantic data converter, camelCase on the wire, so
``temporal workflow query --name details`` prints the plan exactly as the REST API documents it.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from taskplan.models.base import WireModel


class PlanStatus(StrEnum):
    ACTIVE = "ACTIVE"
    ABORTING = "ABORTING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"

    @property
    def is_active(self) -> bool:
        return self in (PlanStatus.ACTIVE, PlanStatus.ABORTING)


class PlanSource(StrEnum):
    ADHOC_CONFIG = "ADHOC_CONFIG"
    TABLE_CONFIG = "TABLE_CONFIG"


class TaskState(StrEnum):
    """State of a parent task (a batch), Helix's TaskState as Pinot reports it."""

    NOT_STARTED = "NOT_STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    COMPLETED = "COMPLETED"
    ABORTED = "ABORTED"

    @property
    def is_final(self) -> bool:
        return self not in (TaskState.NOT_STARTED, TaskState.IN_PROGRESS)


class SubtaskState(StrEnum):
    """State of a subtask, Helix's TaskPartitionState as Pinot reports it."""

    INIT = "INIT"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    TASK_ERROR = "TASK_ERROR"  # failed after its attempts
    TASK_ABORTED = "TASK_ABORTED"  # fatal failure: not retried
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"  # cancelled before it finished, or never started because the batch stopped


# ----------------------------------------------------------------------------------------------- plan


class BatchRecord(WireModel):
    batch_sequence: int  # 0-based
    submitted_at_ms: int
    submitted_task_name: str  # the batch's parent task name, also its workflow id
    task_state: TaskState
    num_subtasks: int = 0
    num_failed_subtasks: int = 0
    inputs_in_batch: int = 0
    finished_at_ms: int | None = None


class TaskPlan(WireModel):
    """The documented task plan model, plus a few read-only extras (marked) for operators."""

    plan_id: str
    table_name_with_type: str
    task_type: str
    status: PlanStatus
    source: PlanSource
    properties: dict[str, str] = Field(default_factory=dict)
    batches: list[BatchRecord] = Field(default_factory=list)
    inputs_to_process: int = 0
    inputs_being_processed: int = 0
    input_unit: str = ""
    status_message: str = ""
    custom_stats: dict[str, str] = Field(default_factory=dict)
    # extras
    inputs_processed: int = 0
    num_batches: int = 0  # all batches ever submitted; `batches` holds the most recent ones (see README)
    num_failed_batches: int = 0
    created_at_ms: int = 0
    finished_at_ms: int | None = None

    def with_batch_page(self, query: PlanQuery | None) -> TaskPlan:
        """A copy holding one page of the retained batch records (the most recent ones by default)."""
        page = query or PlanQuery()
        limit = max(0, page.batch_limit)
        start = max(0, len(self.batches) - limit) if page.batch_offset is None else max(0, page.batch_offset)
        return self.model_copy(update={"batches": self.batches[start : start + limit]})


class PlanOptions(WireModel):
    """Knobs fixed when a plan starts (from settings and task configs)."""

    max_failed_batches: int = 3
    max_failed_subtasks_per_batch: int = 0
    max_generation_attempts: int = 10
    retained_batch_records: int = 1000
    max_pending_subtasks: int = 1000
    heartbeat_timeout_s: int = 30
    lost_worker_retries: int = 5
    generation_timeout_s: int = 600
    # Continue-as-new after this many batches in one run (0: when Temporal suggests it).
    max_batches_per_run: int = 0
    blocked_recheck_s: int = 10  # while progression is blocked, look again this often


class PlanState(WireModel):
    """Everything a plan carries across continue-as-new."""

    plan: TaskPlan
    cursor: dict[str, str] = Field(default_factory=dict)
    abort_reason: str | None = None
    run_number: int = 0
    batches_this_run: int = 0
    blocked_reason: str | None = None


class PlanInput(WireModel):
    plan_id: str
    table_name_with_type: str
    task_type: str
    source: PlanSource
    properties: dict[str, str] = Field(default_factory=dict)
    options: PlanOptions = Field(default_factory=PlanOptions)
    carried: PlanState | None = None  # set when the plan continues as new


class AbortRequest(WireModel):
    reason: str = ""


class PlanQuery(WireModel):
    """Paging of batch records in the `details` query: the most recent `batch_limit` by default."""

    batch_offset: int | None = None  # index into the retained records; None = the last `batch_limit`
    batch_limit: int = 1000


# ---------------------------------------------------------------------------------------------- batch


class SubtaskOptions(WireModel):
    """A task type's overrides, resolved by its generator (Pinot's optional generator methods)."""

    task_timeout_ms: int
    max_attempts_per_task: int
    minion_instance_tag: str


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


class BatchInput(WireModel):
    task_name: str
    task_type: str
    table_names_with_type: list[str]
    plan_id: str | None = None
    batch_sequence: int | None = None
    batch: GeneratedBatch | None = None  # given by a plan
    one_shot: OneShotRequest | None = None  # or generated here (legacy flow)
    options: PlanOptions = Field(default_factory=PlanOptions)


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


class BatchPageQuery(WireModel):
    """A page of the subtasks of a plan's running batch, by task name (asked of the plan)."""

    task_name: str
    page: SubtaskQuery = Field(default_factory=lambda: SubtaskQuery())


class BatchEnd(WireModel):
    """A plan's batch that ended, for the catalog's task records (local activity ``record_batch_end``)."""

    task_name: str
    finished_at_ms: int
    result: BatchResult
    subtasks: list[SubtaskRecord] = Field(default_factory=list)
    plan: TaskPlan | None = None  # the plan after this batch, without its batches (for the listings)


class PlanEnd(WireModel):
    """A plan that ended, recorded before its workflow closes (local activity ``record_plan_end``)."""

    plan: TaskPlan  # the final state, without its batches
    batch: BatchEnd | None = None  # the last batch's end, if no later step recorded it
    aborted: bool = False  # a failure-threshold breach or a generator abort: counted as taskPlanAborted


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


class CronTriggerInput(WireModel):
    """What a cron Schedule's firing hands its CronTrigger workflow: which table and task type fired."""

    table_name_with_type: str
    task_type: str


class CycleResult(WireModel):
    """What one trigger cycle did, per table (POST /tasks/schedule, and each cron firing)."""

    task_type: str
    task_plans: dict[str, str] = Field(default_factory=dict)  # table -> new plan id
    skipped: dict[str, str] = Field(default_factory=dict)  # table -> the active plan it found
    legacy_tasks: dict[str, str] = Field(default_factory=dict)  # table -> legacy parent task name
    errors: dict[str, str] = Field(default_factory=dict)  # table -> why generation failed
    legacy_reason: str | None = None
    note: str | None = None
