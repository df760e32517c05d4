"""Running one batch's subtasks: the part shared by a plan (which runs its batches itself) and TaskBatch.

Subtasks are activities on a minion queue. At most ``max_pending_subtasks`` activities are pending at once
(Temporal stops a workflow holding more than 2,000). A subtask is retried by its activity retry policy up to
the task type's max attempts; a fatal failure is not retried; a subtask lost with its minion (heartbeat
timeout, worker shutdown) is handed to another minion without using up an attempt. Once more subtasks
failed than the batch tolerates, no new subtask starts and the batch ends FAILED when the running ones end;
a TaskBatch (a legacy task) is FAILING meanwhile, as Helix calls such a job (``failing_state``).

Workflow code: deterministic, no I/O, time from ``workflow.now()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from taskplan.models.errors import FATAL_TASK_ERROR, TASK_CONFIG_ERROR, WORKER_SHUTDOWN
    from taskplan.models.task import (
        BatchDetails,
        BatchResult,
        GeneratedBatch,
        SubtaskConfig,
        SubtaskCounts,
        SubtaskQuery,
        SubtaskRecord,
        SubtaskState,
        TaskState,
    )
    from taskplan.names import minion_task_queue, subtask_name
    from taskplan.workflows.activity_defs import SubtaskActivityDefs
    from taskplan.workflows.clock import epoch_ms
    from taskplan.workflows.models import BatchInput, SubtaskInput
    from taskplan.workflows.plan_details import subtask_summary


PATCH_FAILING = "batch-failing-state"  # a TaskBatch past its failure tolerance is FAILING while subtasks run


class BatchRun:
    """One batch's subtasks, their records and its state; ``run()`` drives them to an end."""

    def __init__(
        self,
        request: BatchInput,
        batch: GeneratedBatch,
        on_state: Callable[[TaskState], None] = lambda _state: None,
        *,
        on_progress: Callable[[], None] = lambda: None,
        summaries: bool = False,
        failing_state: bool = False,
        record_workers: bool = False,
    ) -> None:
        self.request = request
        self.batch = batch
        self.state = TaskState.NOT_STARTED
        self.message = ""
        self.submitted_at_ms = epoch_ms()
        self.records = [
            SubtaskRecord(subtask_name=subtask_name(request.task_name, i), state=SubtaskState.INIT)
            for i in range(len(batch.subtasks))
        ]
        self.completed = 0
        self.failed = 0
        self.totals: dict[str, float] = {}
        self._on_state = on_state
        self.last_error: str | None = None  # the last failed subtask's error
        self._on_progress = on_progress  # called as each subtask ends
        self._summaries = summaries  # each subtask activity carries a summary (the Web UI shows it)
        self._failing_state = failing_state  # FAILING between the tolerance breached and the batch's end
        # Each ended subtask's minion in its record (a TaskBatch; a plan's batch end payload stays as it was).
        self._record_workers = record_workers

    @property
    def task_name(self) -> str:
        return self.request.task_name

    # ---------------------------------------------------------------- running

    async def run(self) -> BatchResult:
        self.set_state(TaskState.IN_PROGRESS)
        limit = self.request.options.max_failed_subtasks_per_batch
        try:
            await self._run_window()
        except asyncio.CancelledError:
            # Stopped by an operator (a cancel of the batch's workflow): report what ran.
            self.message = "batch cancelled"
            self._stop_unfinished()
            self.set_state(TaskState.STOPPED)
            return self.result()
        if self.failed > limit:
            self._stop_unfinished()
            self.message = (
                f"{self.failed} of {len(self.records)} subtasks failed (the batch tolerates {limit})"
            )
            self.set_state(TaskState.FAILED)
        else:
            self.message = f"{self.completed} of {len(self.records)} subtasks completed"
            self.set_state(TaskState.COMPLETED)
        return self.result()

    def set_state(self, state: TaskState) -> None:
        self.state = state
        self._on_state(state)

    async def _run_window(self) -> None:
        options = self.request.options
        window = asyncio.Semaphore(max(1, options.max_pending_subtasks))
        running: list[asyncio.Task[None]] = []

        async def run_and_release(index: int) -> None:
            try:
                await self._run_subtask(index)
            finally:
                window.release()

        try:
            for index in range(len(self.records)):
                await window.acquire()
                if self.failed > options.max_failed_subtasks_per_batch:
                    window.release()
                    break
                running.append(asyncio.create_task(run_and_release(index)))
            await asyncio.gather(*running)
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise

    async def _run_subtask(self, index: int) -> None:
        request, options = self.request, self.batch.options
        assert options is not None
        record = self.records[index]
        record.state = SubtaskState.RUNNING
        record.started_at_ms = epoch_ms()
        configs = self.batch.subtask_configs(index)
        while True:
            try:
                output = await workflow.execute_activity_method(
                    SubtaskActivityDefs.run_subtask,
                    SubtaskInput(
                        task_type=request.task_type,
                        subtask_name=record.subtask_name,
                        configs=configs,
                        plan_id=request.plan_id,
                    ),
                    task_queue=minion_task_queue(options.minion_instance_tag, request.task_type),
                    activity_id=f"{record.subtask_name}.{record.lost_worker_retries}",
                    start_to_close_timeout=timedelta(milliseconds=options.task_timeout_ms),
                    heartbeat_timeout=timedelta(seconds=request.options.heartbeat_timeout_s),
                    summary=subtask_summary(record.subtask_name, configs) if self._summaries else None,
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=1),
                        backoff_coefficient=2.0,
                        maximum_interval=timedelta(minutes=1),
                        maximum_attempts=options.max_attempts_per_task,
                        non_retryable_error_types=[FATAL_TASK_ERROR, TASK_CONFIG_ERROR],
                    ),
                )
            except ActivityError as err:
                if isinstance(err.cause, CancelledError):
                    # The batch was stopped: the cancelled activity is reported as such, not as failed.
                    record.state = SubtaskState.STOPPED
                    record.finished_at_ms = epoch_ms()
                    return
                if (
                    _lost_with_worker(err)
                    and record.lost_worker_retries < request.options.lost_worker_retries
                ):
                    record.lost_worker_retries += 1
                    continue
                self._record_failure(record, err, options.max_attempts_per_task)
                self._note_failing()
                self._on_progress()
                return
            except asyncio.CancelledError:
                record.state = SubtaskState.STOPPED
                record.finished_at_ms = epoch_ms()
                raise
            record.state = SubtaskState.COMPLETED
            record.attempts = output.attempt
            record.worker = output.worker if self._record_workers else None
            record.result = output.counts
            record.message = output.message or None
            record.samples = output.samples or None
            record.finished_at_ms = epoch_ms()
            self.completed += 1
            for key, value in output.counts.items():
                self.totals[key] = self.totals.get(key, 0.0) + value
            self._on_progress()
            return

    def _record_failure(self, record: SubtaskRecord, err: ActivityError, max_attempts: int) -> None:
        cause = err.cause
        record.finished_at_ms = epoch_ms()
        record.attempts = max_attempts
        record.worker = (err.identity or None) if self._record_workers else None
        if isinstance(cause, ApplicationError):
            record.state = SubtaskState.TASK_ABORTED if cause.non_retryable else SubtaskState.TASK_ERROR
            record.error = f"{cause.type}: {cause.message}" if cause.type else cause.message
            details = cause.details[0] if cause.details else None
            if isinstance(details, dict) and isinstance(details.get("attempt"), int):
                record.attempts = details["attempt"]
        elif isinstance(cause, TimeoutError):
            record.state = SubtaskState.TIMED_OUT
            record.error = f"timed out ({cause.type.name if cause.type else 'unknown'})"
        else:
            record.state = SubtaskState.TASK_ERROR
            record.error = str(cause or err)
        self.failed += 1
        self.last_error = f"{record.subtask_name}: {record.error}"

    def _note_failing(self) -> None:
        """Helix's FAILING: more subtasks failed than the batch tolerates and others still run (they
        finish, no new one starts), until the batch ends FAILED. Histories from before the patch stay
        IN_PROGRESS until then."""
        if (
            self._failing_state
            and self.state is TaskState.IN_PROGRESS
            and self.failed > self.request.options.max_failed_subtasks_per_batch
            and any(r.state is SubtaskState.RUNNING for r in self.records)
            and workflow.patched(PATCH_FAILING)
        ):
            self.set_state(TaskState.FAILING)

    def _stop_unfinished(self) -> None:
        for record in self.records:
            if record.state in (SubtaskState.INIT, SubtaskState.RUNNING):
                record.state = SubtaskState.STOPPED

    # ---------------------------------------------------------------- reading

    def result(self) -> BatchResult:
        return BatchResult(
            task_name=self.request.task_name,
            task_state=self.state,
            num_subtasks=len(self.records),
            num_completed=self.completed,
            num_failed=self.failed,
            status_message=self.message,
            totals=dict(self.totals),
        )

    def details(self, query: SubtaskQuery | None = None) -> BatchDetails:
        request = self.request
        page = query or SubtaskQuery()
        offset = max(0, page.offset)
        return BatchDetails(
            task_name=request.task_name,
            task_type=request.task_type,
            plan_id=request.plan_id,
            batch_sequence=request.batch_sequence,
            table_names_with_type=request.table_names_with_type,
            task_state=self.state,
            submitted_at_ms=self.submitted_at_ms,
            status_message=self.message,
            num_subtasks=len(self.records),
            subtasks=self.records[offset : offset + max(0, page.limit)],
            totals=dict(self.totals),
            counts=self.counts(),
        )

    def counts(self) -> SubtaskCounts:
        return SubtaskCounts.of(self.records, completed=self.completed, failed=self.failed)

    def configs(self, query: SubtaskQuery | None = None) -> list[SubtaskConfig]:
        page = query or SubtaskQuery()
        start = max(0, page.offset)
        end = min(len(self.batch.subtasks), start + max(0, page.limit))
        return [
            SubtaskConfig(
                subtask_name=self.records[i].subtask_name,
                task_type=self.request.task_type,
                configs=self.batch.subtask_configs(i),
            )
            for i in range(start, end)
        ]


def _lost_with_worker(err: ActivityError) -> bool:
    cause = err.cause
    if isinstance(cause, TimeoutError):
        return cause.type == TimeoutType.HEARTBEAT
    return isinstance(cause, ApplicationError) and cause.type == WORKER_SHUTDOWN
