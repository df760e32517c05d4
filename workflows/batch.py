"""A batch (Pinot's parent task): one child workflow whose subtasks are activities on a minion queue.

At most ``max_pending_subtasks`` activities are pending at once (Temporal stops a workflow holding more than
2,000). A subtask is retried by its activity retry policy up to the task type's max attempts; a fatal
failure is not retried; a subtask lost with its minion (heartbeat timeout, worker shutdown) is handed to
another minion without using up an attempt. Once more subtasks failed than the batch tolerates, no new
subtask starts and the batch ends FAILED when the running ones finish.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from activities.errors import FATAL_TASK_ERROR, NON_RETRYABLE, TASK_CONFIG_ERROR, WORKER_SHUTDOWN
    from taskplan.names import SearchAttributes, minion_task_queue, subtask_name
    from workflows.models import (
        BatchDetails,
        BatchInput,
        BatchResult,
        GeneratedBatch,
        GenerationOutcome,
        SubtaskConfig,
        SubtaskCounts,
        SubtaskInput,
        SubtaskOutput,
        SubtaskQuery,
        SubtaskRecord,
        SubtaskState,
        TaskState,
    )

GENERATION_TIMEOUT = timedelta(minutes=10)


def epoch_ms() -> int:
    return int(workflow.now().timestamp() * 1000)


# Not sandboxed: the sandbox's per-payload bookkeeping cost ~4x the CPU of a 2,000-subtask batch (measured
# with cProfile on a replay). Determinism rests on this module's discipline (no I/O, time from workflow.now)
# and on tests/engine/test_replay.py, which replays real histories.
@workflow.defn(name="TaskBatch", sandboxed=False)
class BatchWorkflow:
    def __init__(self) -> None:
        self._input: BatchInput | None = None
        self._batch: GeneratedBatch | None = None
        self._generation: GenerationOutcome | None = None
        self._records: list[SubtaskRecord] = []
        self._state = TaskState.NOT_STARTED
        self._message = ""
        self._failed = 0
        self._completed = 0
        self._totals: dict[str, float] = {}
        self._submitted_at_ms = 0
        self._size_attribute = False

    @workflow.run
    async def run(self, request: BatchInput) -> BatchResult:
        # Decided before any command, so the patch marker has a fixed place in the history.
        self._size_attribute = workflow.patched("batch-subtasks-search-attribute")
        self._input = request
        self._submitted_at_ms = epoch_ms()
        batch = request.batch or await self._generate(request)
        if batch is None:
            return self._result()
        self._batch = batch
        self._records = [
            SubtaskRecord(subtask_name=subtask_name(request.task_name, i), state=SubtaskState.INIT)
            for i in range(len(batch.subtasks))
        ]
        self._generation = GenerationOutcome(num_subtasks=len(batch.subtasks))
        self._set_state(TaskState.IN_PROGRESS)
        try:
            await self._run_window(request, batch)
        except asyncio.CancelledError:
            # Cancelled by an operator (temporal workflow cancel <task name>): stop, report what ran.
            self._message = "batch cancelled"
            self._stop_unfinished()
            self._set_state(TaskState.STOPPED)
            return self._result()
        if self._failed > request.options.max_failed_subtasks_per_batch:
            self._stop_unfinished()
            self._message = (
                f"{self._failed} of {len(self._records)} subtasks failed "
                f"(the batch tolerates {request.options.max_failed_subtasks_per_batch})"
            )
            self._set_state(TaskState.FAILED)
        else:
            self._message = f"{self._completed} of {len(self._records)} subtasks completed"
            self._set_state(TaskState.COMPLETED)
        return self._result()

    async def _generate(self, request: BatchInput) -> GeneratedBatch | None:
        assert request.one_shot is not None, "a batch needs a generated batch or a one-shot request"
        try:
            batch: GeneratedBatch = await workflow.execute_activity(
                "generate_one_shot",
                request.one_shot,
                result_type=GeneratedBatch,
                start_to_close_timeout=GENERATION_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=list(NON_RETRYABLE)),
            )
            return batch
        except ActivityError as err:
            cause = err.cause
            message = str(cause) if cause is not None else str(err)
            error_type = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
            self._generation = GenerationOutcome(num_subtasks=0, error=message, error_type=error_type)
            self._message = f"task generation failed: {message}"
            self._set_state(TaskState.FAILED)
            return None

    async def _run_window(self, request: BatchInput, batch: GeneratedBatch) -> None:
        window = asyncio.Semaphore(max(1, request.options.max_pending_subtasks))
        running: list[asyncio.Task[None]] = []

        async def run_and_release(index: int) -> None:
            try:
                await self._run_subtask(request, batch, index)
            finally:
                window.release()

        try:
            for index in range(len(batch.subtasks)):
                await window.acquire()
                if self._failed > request.options.max_failed_subtasks_per_batch:
                    window.release()
                    break
                running.append(asyncio.create_task(run_and_release(index)))
            await asyncio.gather(*running)
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise

    async def _run_subtask(self, request: BatchInput, batch: GeneratedBatch, index: int) -> None:
        options = batch.options
        assert options is not None
        record = self._records[index]
        record.state = SubtaskState.RUNNING
        record.started_at_ms = epoch_ms()
        configs = batch.subtask_configs(index)
        while True:
            try:
                output: SubtaskOutput = await workflow.execute_activity(
                    "run_subtask",
                    SubtaskInput(
                        task_type=request.task_type,
                        subtask_name=record.subtask_name,
                        configs=configs,
                        plan_id=request.plan_id,
                    ),
                    result_type=SubtaskOutput,
                    task_queue=minion_task_queue(options.minion_instance_tag, request.task_type),
                    activity_id=f"{record.subtask_name}.{record.lost_worker_retries}",
                    start_to_close_timeout=timedelta(milliseconds=options.task_timeout_ms),
                    heartbeat_timeout=timedelta(seconds=request.options.heartbeat_timeout_s),
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=1),
                        backoff_coefficient=2.0,
                        maximum_interval=timedelta(minutes=1),
                        maximum_attempts=options.max_attempts_per_task,
                        non_retryable_error_types=[FATAL_TASK_ERROR, TASK_CONFIG_ERROR],
                    ),
                )
            except ActivityError as err:
                if (
                    _lost_with_worker(err)
                    and record.lost_worker_retries < request.options.lost_worker_retries
                ):
                    record.lost_worker_retries += 1
                    continue
                self._record_failure(record, err, options.max_attempts_per_task)
                return
            except asyncio.CancelledError:
                record.state = SubtaskState.STOPPED
                record.finished_at_ms = epoch_ms()
                raise
            record.state = SubtaskState.COMPLETED
            record.attempts = output.attempt
            record.result = output.counts
            record.message = output.message or None
            record.samples = output.samples or None
            record.finished_at_ms = epoch_ms()
            self._completed += 1
            for key, value in output.counts.items():
                self._totals[key] = self._totals.get(key, 0.0) + value
            return

    def _record_failure(self, record: SubtaskRecord, err: ActivityError, max_attempts: int) -> None:
        cause = err.cause
        record.finished_at_ms = epoch_ms()
        record.attempts = max_attempts
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
        self._failed += 1

    def _stop_unfinished(self) -> None:
        for record in self._records:
            if record.state in (SubtaskState.INIT, SubtaskState.RUNNING):
                record.state = SubtaskState.STOPPED

    def _set_state(self, state: TaskState) -> None:
        self._state = state
        updates: list[SearchAttributeUpdate[Any]] = [SearchAttributes.TASK_STATE.value_set(state.value)]
        # A running batch shows its size, for the in-flight subtask limits (taskplan/gate.py).
        if state is TaskState.IN_PROGRESS and self._size_attribute:
            updates.append(SearchAttributes.BATCH_SUBTASKS.value_set(len(self._records)))
        workflow.upsert_search_attributes(updates)

    def _result(self) -> BatchResult:
        request = self._input
        assert request is not None
        return BatchResult(
            task_name=request.task_name,
            task_state=self._state,
            num_subtasks=len(self._records),
            num_completed=self._completed,
            num_failed=self._failed,
            status_message=self._message,
            totals=dict(self._totals),
        )

    @workflow.query
    def details(self, query: SubtaskQuery | None = None) -> BatchDetails:
        request = self._input
        assert request is not None
        page = query or SubtaskQuery()
        offset = max(0, page.offset)
        return BatchDetails(
            task_name=request.task_name,
            task_type=request.task_type,
            plan_id=request.plan_id,
            batch_sequence=request.batch_sequence,
            table_names_with_type=request.table_names_with_type,
            task_state=self._state,
            submitted_at_ms=self._submitted_at_ms,
            status_message=self._message,
            num_subtasks=len(self._records),
            subtasks=self._records[offset : offset + max(0, page.limit)],
            totals=dict(self._totals),
            counts=self._counts(),
        )

    def _counts(self) -> SubtaskCounts:
        counts = SubtaskCounts(total=len(self._records), completed=self._completed, failed=self._failed)
        for record in self._records:
            if record.state == SubtaskState.INIT:
                counts.waiting += 1
            elif record.state == SubtaskState.RUNNING:
                counts.running += 1
            elif record.state == SubtaskState.STOPPED:
                counts.unknown += 1
        return counts

    @workflow.query
    def subtask_configs(self, query: SubtaskQuery | None = None) -> list[SubtaskConfig]:
        """The configs of a page of subtasks, as the generator made them."""
        request, batch = self._input, self._batch
        assert request is not None
        if batch is None:
            return []
        page = query or SubtaskQuery()
        start = max(0, page.offset)
        return [
            SubtaskConfig(
                subtask_name=subtask_name(request.task_name, i),
                task_type=request.task_type,
                configs=batch.subtask_configs(i),
            )
            for i in range(start, min(len(batch.subtasks), start + max(0, page.limit)))
        ]

    @workflow.query
    def state(self) -> TaskState:
        return self._state

    @workflow.update
    async def generated(self) -> GenerationOutcome:
        """Wait until the subtasks exist (legacy flow): the API answers the trigger with this."""
        await workflow.wait_condition(lambda: self._generation is not None)
        assert self._generation is not None
        return self._generation


def _lost_with_worker(err: ActivityError) -> bool:
    cause = err.cause
    if isinstance(cause, TimeoutError):
        return cause.type == TimeoutType.HEARTBEAT
    return isinstance(cause, ApplicationError) and cause.type == WORKER_SHUTDOWN
