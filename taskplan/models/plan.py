"""The task plan: its documented wire model (camelCase), status, options, and the records of its end."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from taskplan.models.base import WireModel
from taskplan.models.task import (
    BatchResult,
    SubtaskRecord,
    TaskState,
)


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


class BatchRecord(WireModel):
    batch_sequence: int  # 0-based
    submitted_at_ms: int
    submitted_task_name: str  # the batch's parent task name, also its workflow id
    task_state: TaskState
    num_subtasks: int = 0
    num_failed_subtasks: int = 0
    inputs_in_batch: int = 0
    finished_at_ms: int | None = None


# Druid's task report fields, summed from the counters the subtasks report (README "Plan report").
_PROCESSED = ("processed", "rowsScanned", "rowsIn", "rowsRewritten", "rowsExported")
_THROWN_AWAY = ("thrownAway", "rowsPurged")
_SEGMENTS_ADDED = ("segments", "segmentsCreated")
_SEGMENTS_REMOVED = ("segmentsMerged",)
_SEGMENTS_REPLACED = ("segmentsPurged", "segmentsRewritten")


class RowStats(WireModel):
    """Druid's ``rowStats``: rows read (ingested, scanned, merged, rewritten, exported), rows with a bad
    value, rows dropped (filtered out, purged), lines that could not be parsed."""

    processed: int = 0
    processed_bytes: int = 0
    processed_with_error: int = 0
    thrown_away: int = 0
    unparseable: int = 0


class SegmentStats(WireModel):
    """Segments the plan added (built, merged into), removed (merged away) and replaced one for one."""

    added: int = 0
    removed: int = 0
    replaced: int = 0
    skipped: int = 0


class PlanReport(WireModel):
    """A plan's report: its subtasks' counters summed over all of its batches (``counters``, as reported),
    and Druid's report fields made from them. Live while a batch runs (its subtasks that ended count)."""

    row_stats: RowStats = Field(default_factory=RowStats)
    segments: SegmentStats = Field(default_factory=SegmentStats)
    subtasks_completed: int = 0
    subtasks_failed: int = 0
    counters: dict[str, float] = Field(default_factory=dict)

    def plus(self, counters: dict[str, float], *, completed: int = 0, failed: int = 0) -> PlanReport:
        """This report with more counters (a batch's totals) and subtasks added."""
        summed = dict(self.counters)
        for key, value in counters.items():
            summed[key] = summed.get(key, 0.0) + value

        def total(*keys: str) -> int:
            return int(sum(summed.get(k, 0.0) for k in keys))

        return PlanReport(
            row_stats=RowStats(
                processed=total(*_PROCESSED),
                processed_bytes=total("processedBytes"),
                processed_with_error=total("processedWithError"),
                thrown_away=total(*_THROWN_AWAY),
                unparseable=total("unparseable"),
            ),
            segments=SegmentStats(
                added=total(*_SEGMENTS_ADDED),
                removed=total(*_SEGMENTS_REMOVED),
                replaced=total(*_SEGMENTS_REPLACED),
                skipped=total("segmentsSkipped"),
            ),
            subtasks_completed=self.subtasks_completed + completed,
            subtasks_failed=self.subtasks_failed + failed,
            counters=summed,
        )


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
    paused: bool = False  # no new batch until resumed (PUT .../pause); the reason is in pause_reason
    pause_reason: str | None = None
    report: PlanReport = Field(default_factory=PlanReport)  # counters summed over all batches

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


class AbortRequest(WireModel):
    reason: str = ""


class PauseRequest(WireModel):
    """The input of the ``pause`` and ``resume`` signals (any other input is read as the reason too)."""

    reason: str = ""


class PlanQuery(WireModel):
    """Paging of batch records in the `details` query: the most recent `batch_limit` by default."""

    batch_offset: int | None = None  # index into the retained records; None = the last `batch_limit`
    batch_limit: int = 1000


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


class CycleResult(WireModel):
    """What one trigger cycle did, per table (POST /tasks/schedule, and each cron firing)."""

    task_type: str
    task_plans: dict[str, str] = Field(default_factory=dict)  # table -> new plan id
    skipped: dict[str, str] = Field(default_factory=dict)  # table -> the active plan it found
    legacy_tasks: dict[str, str] = Field(default_factory=dict)  # table -> legacy parent task name
    errors: dict[str, str] = Field(default_factory=dict)  # table -> why generation failed
    scheduling_errors: list[str] = Field(default_factory=list)  # why nothing was scheduled (a stopped queue)
    legacy_reason: str | None = None
    note: str | None = None
