"""TaskPlanWorkflow: one plan, looping generate-batch then await-batch until done, aborted or failed.

Status flow::

    ACTIVE --(generator: no more work)------------------------------> COMPLETED
    ACTIVE --(abort signal / temporal cancel)--> ABORTING --(batch ends)--> CANCELLED
    ACTIVE --(failed batches over threshold, generator abort, generation keeps failing)--> FAILED

A ``pause`` signal (patch ``plan-pause-resume``) keeps the plan ACTIVE but starts no new batch until a
``resume``: the running batch finishes; the flag and reason are plan state, so they outlive worker restarts
and continue-as-new. A batch whose generation had started when the pause came still runs.

The workflow id is ``<tableNameWithType>__<taskType>``, so Temporal itself keeps at most one running plan
per table and task type; the plan id lives in the TaskPlanId search attribute and in the state carried
across continue-as-new. How the workflow closes mirrors the plan (patch ``plan-ends-as-its-status``): a
COMPLETED plan completes and returns its final details; a FAILED one fails with a non-retryable
ApplicationError whose type names the cause and whose details carry the plan; a CANCELLED one ends Canceled
when a Temporal cancel was asked for (Temporal allows no other way: the API's abort sends its ``abort``
signal, then a cancel request), else it completes (an abort by the ``abort`` signal or Update alone). A
cancel never interrupts a step of the plan's own (patch ``plan-cancel-finishes-steps``): the running batch
and the local activity in flight (generation, recording a batch's or the plan's end) finish and their
results are used, then the plan ends as an abort. The plan's own status is also the TaskPlanStatus search
attribute and the ``status`` field.
The Web UI's current details show the plan's progress in Markdown (patch ``progress-in-web-ui``,
``plan_details.py``).

Why one module past 400 lines: it is the plan loop (``run``) and the handlers that steer it, which share the
plan's state; a batch's own subtasks are ``batch_run.py``, signal decoding ``signals.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from taskplan.models.errors import (
        NON_RETRYABLE,
        NOT_READY,
        PLAN_ENDED,
        PLAN_FAILED_GENERATION,
        PLAN_FAILED_GENERATOR_ABORT,
        PLAN_FAILED_THRESHOLD,
    )
    from taskplan.models.plan import (
        BatchEnd,
        BatchRecord,
        PlanEnd,
        PlanOptions,
        PlanQuery,
        PlanStatus,
        TaskPlan,
    )
    from taskplan.models.task import BatchDetails, BatchResult, GeneratedBatch, PreviousBatchInfo, TaskState
    from taskplan.names import SearchAttributes, task_name
    from taskplan.workflows import signals
    from taskplan.workflows.activity_defs import PlanActivityDefs
    from taskplan.workflows.batch_run import BatchRun
    from taskplan.workflows.clock import epoch_ms
    from taskplan.workflows.models import (
        BatchInput,
        BatchPageQuery,
        GenerateBatchInput,
        NextBatch,
        NextBatchInput,
        PlanAbortAnswer,
        PlanInput,
        PlanState,
        ProgressionCheck,
    )
    from taskplan.workflows.plan_details import current_details

MAX_GENERATION_BACKOFF_S = 300.0
# Patches (CHANGELOG.md), asked for at the start of each run.
PATCH_END_STATUS = "plan-ends-as-its-status"  # FAILED fails the workflow; Temporal-cancelled: Canceled
PATCH_WEB_UI = "progress-in-web-ui"  # current details, summaries on subtask activities and waits
PATCH_PAUSE = "plan-pause-resume"  # pause/resume signals: no new batch while paused
PATCH_STEPS = "plan-cancel-finishes-steps"  # a Temporal cancel waits for the local activity in flight

_T = TypeVar("_T")


class _PlanEnded(Exception):
    """Internal: unwinds the loop once the plan reached a terminal status."""

    def __init__(self, status: PlanStatus, message: str, *, aborted: bool, cause: str | None) -> None:
        super().__init__()
        self.status = status  # the status to end with, once the catalog has the plan's end
        self.message = message
        self.aborted = aborted  # a failure-threshold breach or a generator abort: counted as taskPlanAborted
        self.cause = cause  # a FAILED plan's cause: the type of the error its workflow fails with


# Not sandboxed, like TaskBatch (see workflows/batch.py); guarded by tests/engine/test_replay.py.
@workflow.defn(name="TaskPlan", sandboxed=False)
class TaskPlanWorkflow:
    def __init__(self) -> None:
        self._state: PlanState | None = None
        self._batch: BatchRun | None = None  # the running batch
        self._batch_task: asyncio.Task[BatchResult] | None = None
        self._submitted_at_ms = 0  # when the batch being generated was asked for
        self._pending_end: BatchEnd | None = None  # the last batch's end, until the catalog has it
        self._ends_as_status = False  # patch PATCH_END_STATUS
        self._web_ui = False  # patch PATCH_WEB_UI
        self._pausable = False  # patch PATCH_PAUSE
        self._finishes_steps = False  # patch PATCH_STEPS
        self._paused_while_blocked = False  # _generate gave up waiting for the gate: the plan is paused
        self._temporal_cancel = False  # a Temporal cancel was seen: a CANCELLED plan ends Canceled
        self._ending = False  # the plan's end is being recorded: no more aborts

    # ---------------------------------------------------------------- handlers

    @workflow.signal(dynamic=True)
    async def operator_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """``abort``, ``stop_batch``, ``pause`` and ``resume``, whatever input they come with (read raw: see
        workflows/signals.py).

        abort: ABORTING at once, no new batch; the running batch may finish, then CANCELLED.
        stop_batch: stop the running batch of that name (its subtasks are cancelled, it ends STOPPED); the
        plan goes on. ``temporal workflow signal -w <plan workflow id> --name stop_batch --input '"Task_.."'``
        pause / resume: no new batch until resumed (the running one finishes); the reason in statusMessage.
        """
        if self._state is None:  # signalled with its start: act once the run has its state
            await workflow.wait_condition(lambda: self._state is not None)
        plan = self._require_state().plan
        request = signals.read_input(args, workflow.payload_converter())
        for note in request.notes():
            workflow.logger.warning("plan %s: signal %s: %s", plan.plan_id, name, note)
        if name == signals.ABORT:
            self._abort(signals.abort_reason(request))
        elif name == signals.STOP_BATCH:
            self._stop_batch(signals.batch_to_stop(request))
        elif name == signals.PAUSE:
            self._pause(signals.abort_reason(request, signals.DEFAULT_PAUSE_REASON))
        elif name == signals.RESUME:
            self._resume(signals.abort_reason(request, signals.DEFAULT_RESUME_REASON))
        else:
            self._note_ignored(
                f"signal {name!r} ignored: a task plan takes {', '.join(signals.SIGNALS[:-1])} "
                f"or {signals.SIGNALS[-1]}"
            )

    def _abort(self, reason: str) -> None:
        state = self._require_state()
        if not state.plan.status.is_active or state.abort_reason is not None:
            return
        state.abort_reason = reason
        self._set_status(PlanStatus.ABORTING, f"aborting: {state.abort_reason}")

    def _pause(self, reason: str) -> None:
        plan = self._require_state().plan
        if not self._pausable:
            self._note_ignored("pause ignored: this plan started before plans could be paused")
            return
        if plan.status != PlanStatus.ACTIVE or self._ending:
            self._note_ignored(f"pause ignored: the plan is {plan.status.value}")
            return
        plan.paused, plan.pause_reason = True, reason
        running = self._batch_task is not None and self._batch is not None
        self._set_status(
            plan.status, f"paused: {reason}" + ("; the running batch finishes first" if running else "")
        )

    def _resume(self, reason: str) -> None:
        plan = self._require_state().plan
        if not plan.paused:
            self._note_ignored("resume ignored: the plan is not paused")
            return
        plan.paused, plan.pause_reason = False, None
        self._set_status(plan.status, f"resumed: {reason}")

    async def _wait_while_paused(self, state: PlanState) -> None:
        """No new batch until a resume (or an abort). A wait without a timer: no command, no history."""
        message = f"paused: {state.plan.pause_reason}"
        if state.plan.status_message != message:
            self._set_status(state.plan.status, message)
        await workflow.wait_condition(lambda: not state.plan.paused or state.abort_reason is not None)

    def _stop_batch(self, task_name: str | None) -> None:
        """Stop the running batch if it is the one named (None: whichever runs); else say why not."""
        batch, running = self._batch, self._batch_task
        current = batch.task_name if batch is not None and running is not None else None
        if running is not None and current is not None and task_name in (None, current):
            running.cancel()
            return
        named = "(no task name)" if task_name is None else task_name
        why = f"the running batch is {current}" if current else "no batch is running"
        self._note_ignored(f"stop_batch {named} ignored: {why}")

    def _note_ignored(self, message: str) -> None:
        """A signal that does nothing: said in the plan's status message (what operators read), and logged."""
        plan = self._require_state().plan
        workflow.logger.warning("plan %s: %s", plan.plan_id, message)
        if plan.status.is_active:
            self._set_status(plan.status, message)

    @workflow.update(dynamic=True)
    async def operator_update(self, name: str, args: Sequence[RawValue]) -> PlanAbortAnswer:
        """Update ``abort`` (any input, read as the abort signal's): answers the plan's new status.
        ``temporal workflow update execute -w <plan workflow id> --name abort --input '"maintenance"'``"""
        if self._state is None:
            await workflow.wait_condition(lambda: self._state is not None)
        plan = self._require_state().plan
        request = signals.read_input(args, workflow.payload_converter())
        for note in request.notes():
            workflow.logger.warning("plan %s: update %s: %s", plan.plan_id, name, note)
        self._abort(signals.abort_reason(request))
        return PlanAbortAnswer(plan_id=plan.plan_id, status=plan.status, status_message=plan.status_message)

    @operator_update.validator
    def check_update(self, name: str, args: Sequence[RawValue]) -> None:
        """Rejected (nothing written to the history): another update name, and a plan that ended."""
        if name != signals.ABORT:
            raise ApplicationError(f"update {name!r} unknown: a task plan takes the update {signals.ABORT!r}")
        if self._state is None:
            return  # sent with the start: the plan runs
        plan = self._state.plan
        if not plan.status.is_active or self._ending:
            raise ApplicationError(
                f"plan {plan.plan_id} already ended ({plan.status.value}: {plan.status_message}): "
                "nothing to abort",
                type=PLAN_ENDED,
                non_retryable=True,
            )

    @workflow.query
    def details(self, query: PlanQuery | None = None) -> TaskPlan:
        plan = self._require_state().plan.with_batch_page(query)
        batch = self._batch
        if batch is not None and self._batch_task is not None:  # a running batch's ended subtasks count
            report = plan.report.plus(batch.totals, completed=batch.completed, failed=batch.failed)
            plan = plan.model_copy(update={"report": report})
        return plan

    @workflow.query
    def status(self) -> PlanStatus:
        return self._require_state().plan.status

    @workflow.query
    def batch_details(self, query: BatchPageQuery) -> BatchDetails | None:
        """A page of the running batch's subtasks, live (None when that batch is not running here)."""
        batch = self._batch  # the running batch, or the last one until its end is recorded
        if batch is None or batch.task_name != query.task_name:
            return None
        return batch.details(query.page)

    # ---------------------------------------------------------------- main loop

    @workflow.run
    async def run(self, request: PlanInput) -> TaskPlan:
        self._ends_as_status = workflow.patched(PATCH_END_STATUS)
        self._web_ui = workflow.patched(PATCH_WEB_UI)
        self._pausable = workflow.patched(PATCH_PAUSE)
        self._finishes_steps = workflow.patched(PATCH_STEPS)
        if self._state is None:
            self._state = request.carried or PlanState(
                plan=TaskPlan(
                    plan_id=request.plan_id,
                    table_name_with_type=request.table_name_with_type,
                    task_type=request.task_type,
                    status=PlanStatus.ACTIVE,
                    source=request.source,
                    properties=dict(request.properties),
                    status_message="plan created",
                    created_at_ms=epoch_ms(),
                )
            )
        state = self._state
        if request.carried is not None:
            state.run_number += 1
            state.batches_this_run = 0
        try:
            while True:
                if state.abort_reason is not None:
                    self._finish(PlanStatus.CANCELLED, f"aborted: {state.abort_reason}")
                if self._pausable and state.plan.paused:
                    await self._wait_while_paused(state)
                    continue
                generated = await self._generate(request, state)
                if state.abort_reason is not None:
                    self._drop_generated(request, state, generated)
                    continue  # an abort that came during generation: no new batch
                if self._paused_while_blocked:
                    self._paused_while_blocked = False
                    continue  # paused while progression was blocked: no batch was generated
                if generated.abort_reason:
                    self._finish(
                        PlanStatus.FAILED,
                        f"aborted by the generator: {generated.abort_reason}",
                        aborted=True,
                        cause=PLAN_FAILED_GENERATOR_ABORT,
                    )
                self._absorb_progress(state, generated)
                if generated.no_more_work:
                    self._finish(PlanStatus.COMPLETED, "completed: no more work")
                await self._run_batch(request, state, generated)
                if state.plan.num_failed_batches > request.options.max_failed_batches:
                    self._finish(
                        PlanStatus.FAILED,
                        f"failure threshold breached: {state.plan.num_failed_batches} batches failed "
                        f"(the plan tolerates {request.options.max_failed_batches})",
                        aborted=True,
                        cause=PLAN_FAILED_THRESHOLD,
                    )
                state.batches_this_run += 1
                if self._should_continue_as_new(request.options, state):
                    await self._record_pending_end()
                    if self._finishes_steps and state.abort_reason is not None:
                        continue  # aborted (or cancelled) while the end was recorded: end here
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(request.model_copy(update={"carried": state}))
        except _PlanEnded as ended:
            await self._end_plan(ended.status, ended.message, aborted=ended.aborted)
            self._close_as_status(ended.status, ended.cause)
        except asyncio.CancelledError:
            # `temporal workflow cancel` is treated as an abort; a running batch was already waited for.
            self._temporal_cancel = True
            if state.abort_reason is None:
                state.abort_reason = "cancelled through Temporal"
            await self._end_plan(PlanStatus.CANCELLED, f"aborted: {state.abort_reason}", aborted=False)
            self._close_as_status(PlanStatus.CANCELLED, None)
        return state.plan

    def _close_as_status(self, status: PlanStatus, cause: str | None) -> None:
        """Close the workflow as the plan ended (returning is Completed): FAILED fails it, with the plan in
        the error's details; CANCELLED after a Temporal cancel ends it Canceled (the SDK sends the cancel
        command for a CancelledError once a cancel was asked for). The plan's end is in the catalog already,
        so reading it needs no worker."""
        if not self._ends_as_status:
            return
        plan = self._require_state().plan
        if status is PlanStatus.FAILED:
            raise ApplicationError(
                f"task plan {plan.plan_id} FAILED: {plan.status_message}",
                plan,
                type=cause or PLAN_FAILED_GENERATION,
                non_retryable=True,
            ) from None
        if status is PlanStatus.CANCELLED and self._temporal_cancel:
            raise asyncio.CancelledError(plan.status_message) from None

    async def _end_plan(self, status: PlanStatus, message: str, *, aborted: bool) -> None:
        """Record the plan's end in the catalog (its last batch's end and its final snapshot), then end it
        here: once Temporal shows the plan ended (or the plan itself answers so), the active listing, which
        reads the catalog, no longer has it. If the catalog is out of reach, the controller's orchestration
        poll corrects the snapshot later."""
        plan = self._require_state().plan
        self._ending = True
        final = plan.model_copy(
            update={
                "status": status,
                "status_message": message,
                "finished_at_ms": epoch_ms(),
                "inputs_being_processed": 0,
                "paused": False,  # as _set_status(final=True) leaves the plan: an ended plan is not paused
                "pause_reason": None,
                "batches": [],
            }
        )
        pending = self._pending_end
        try:
            await self._finish_step(
                workflow.start_local_activity_method(
                    PlanActivityDefs.record_plan_end,
                    PlanEnd(
                        plan=final,
                        batch=None if pending is None else pending.model_copy(update={"plan": None}),
                        aborted=aborted,
                    ),
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(maximum_attempts=5),
                    summary=f"record the plan's end: {status.value}" if self._web_ui else None,
                )
            )
        except FailureError as err:
            workflow.logger.warning("plan %s: its end was not recorded in the catalog: %s", plan.plan_id, err)
        self._pending_end, self._batch = None, None
        self._set_status(status, message, final=True)
        plan.finished_at_ms = final.finished_at_ms

    def _note_progression_allowed(self, state: PlanState) -> None:
        if state.blocked_reason is not None:
            state.blocked_reason = None
            self._set_status(state.plan.status, "progression resumed")

    async def _wait_while_blocked(self, request: PlanInput, state: PlanState, reason: str) -> None:
        """Say why the plan waits, then wait (durably, abortably) until it is time to ask again."""
        if state.blocked_reason != reason:
            state.blocked_reason = reason
            self._set_status(state.plan.status, f"progression blocked: {reason}")
        with contextlib.suppress(TimeoutError):  # ask again when the wait runs out
            await workflow.wait_condition(
                lambda: state.abort_reason is not None or (self._pausable and state.plan.paused),
                timeout=request.options.blocked_recheck_s,
                timeout_summary=f"progression blocked: {reason}"[:200] if self._web_ui else None,
            )

    async def _generate(self, request: PlanInput, state: PlanState) -> GeneratedBatch:
        plan = state.plan
        previous = plan.batches[-1] if plan.batches else None
        generate_input = GenerateBatchInput(
            plan_id=plan.plan_id,
            table_name_with_type=plan.table_name_with_type,
            task_type=plan.task_type,
            properties=plan.properties,
            batch_sequence=plan.num_batches,
            cursor=state.cursor,
            inputs_processed=plan.inputs_processed,
            previous_batch=None
            if previous is None
            else PreviousBatchInfo(
                batch_sequence=previous.batch_sequence,
                task_state=previous.task_state,
                num_subtasks=previous.num_subtasks,
                num_failed_subtasks=previous.num_failed_subtasks,
            ),
            # Generation records the batch as a task under this name (or the next free millisecond's) in
            # the catalog, submitted now.
            task_name=task_name(plan.task_type, epoch_ms()),
            submitted_at_ms=epoch_ms(),
        )
        self._submitted_at_ms = generate_input.submitted_at_ms
        attempt = 0
        while True:
            attempt += 1
            try:
                step = await self._generate_once(request, generate_input)
            except FailureError as err:
                # A local activity's failure arrives unwrapped (the ApplicationError or TimeoutError itself).
                cause = err.cause if isinstance(err, ActivityError) else err
                if isinstance(cause, CancelledError):
                    # `temporal workflow cancel` while the step ran: an abort, not a failed generation.
                    self._note_temporal_cancel(state)
                    return GeneratedBatch(no_more_work=False)
                message = str(cause) if cause is not None else str(err)
                fatal = isinstance(cause, ApplicationError) and (
                    cause.non_retryable or cause.type in NON_RETRYABLE
                )
                state.last_error = f"batch generation: {message}"
                if self._finishes_steps and state.abort_reason is not None:
                    return GeneratedBatch(no_more_work=False)  # aborted while it ran: the abort wins
                if fatal or attempt >= request.options.max_generation_attempts:
                    self._finish(
                        PlanStatus.FAILED,
                        f"batch generation failed after {attempt} attempt(s): {message}",
                        cause=PLAN_FAILED_GENERATION,
                    )
                backoff = min(MAX_GENERATION_BACKOFF_S, 2.0 ** (attempt - 1))
                self._set_status(
                    plan.status,
                    f"batch generation failed (attempt {attempt} of "
                    f"{request.options.max_generation_attempts}): {message}; retrying in {backoff:.0f}s",
                )
                with contextlib.suppress(TimeoutError):  # the backoff ran out without an abort
                    await workflow.wait_condition(
                        lambda: state.abort_reason is not None,
                        timeout=backoff,
                        timeout_summary=f"generation backoff after failed attempt {attempt}"
                        if self._web_ui
                        else None,
                    )
                if state.abort_reason is not None:
                    return GeneratedBatch(no_more_work=False)
                continue
            if step.blocked_reason is not None:
                if self._finishes_steps and state.abort_reason is not None:
                    return GeneratedBatch(no_more_work=False)  # aborted while the step ran: no wait
                # The cluster said no (kill switch, stopped queue, in-flight limit): wait, ask again.
                attempt -= 1
                await self._wait_while_blocked(request, state, step.blocked_reason)
                if state.abort_reason is not None:
                    return GeneratedBatch(no_more_work=False)
                if self._pausable and state.plan.paused:
                    self._paused_while_blocked = True  # nothing generated: the loop waits for a resume
                    return GeneratedBatch(no_more_work=False)
                continue
            self._note_progression_allowed(state)
            if attempt > 1:
                self._set_status(plan.status, "batch generation recovered")
            assert step.batch is not None
            return step.batch

    async def _generate_once(self, request: PlanInput, generate_input: GenerateBatchInput) -> NextBatch:
        """One local activity per batch: record how the last batch ended, ask the cluster's gate, and
        generate (and record) the next batch, so the next subtasks follow in the same workflow task. (The
        generator runs on this controller either way; a local activity saves a task-queue round trip: see
        the README's performance notes.)"""
        state = self._require_state()
        running = workflow.start_local_activity_method(
            PlanActivityDefs.next_batch,
            NextBatchInput(
                generate=generate_input,
                check=ProgressionCheck(
                    table_name_with_type=state.plan.table_name_with_type,
                    task_type=state.plan.task_type,
                    plan_id=state.plan.plan_id,
                ),
                ended=self._pending_end,
            ),
            start_to_close_timeout=timedelta(seconds=request.options.generation_timeout_s),
            retry_policy=RetryPolicy(maximum_attempts=1),
            summary=f"generate batch {state.plan.num_batches}" if self._web_ui else None,
        )
        step = await self._finish_step(running)
        self._pending_end, self._batch = None, None  # the last batch's end is recorded
        return step

    def _absorb_progress(self, state: PlanState, generated: GeneratedBatch) -> None:
        plan = state.plan
        if generated.inputs_to_process is not None:
            plan.inputs_to_process = generated.inputs_to_process
        if generated.input_unit:
            plan.input_unit = generated.input_unit
        if generated.custom_stats:
            plan.custom_stats = dict(generated.custom_stats)
        state.cursor = dict(generated.cursor)

    async def _run_batch(self, request: PlanInput, state: PlanState, generated: GeneratedBatch) -> None:
        """Run the subtasks here, so the next batch follows the last one without a child's round trips.

        The batch's task record (name, state, configs, subtask reports) is in the catalog: the step that
        generated it recorded it as running, the next step (or ``record_batch_end``) records how it ended.
        Until then this workflow answers for its subtasks (the ``batch_details`` query).
        """
        submitted_at = self._submitted_at_ms  # as in the task record
        name = generated.task_name or task_name(state.plan.task_type, submitted_at)
        run = BatchRun(
            self._batch_input(request, state, name, generated),
            generated,
            on_progress=self._on_subtask_end,
            summaries=self._web_ui,
        )
        record = self._begin_batch(request, state, name, submitted_at, generated)
        self._batch, self._batch_task = run, asyncio.create_task(run.run())
        try:
            result = await self._await_batch(self._batch_task, state)
        finally:
            self._batch_task = None
        self._end_batch(state, record, generated, result)
        # Recorded by the next step's local activity (or, if there is none, by _record_pending_end); until
        # then this workflow answers for the batch (batch_details).
        self._pending_end = BatchEnd(
            task_name=name,
            finished_at_ms=record.finished_at_ms or epoch_ms(),
            result=result,
            subtasks=run.records,
            plan=state.plan.model_copy(update={"batches": []}),
        )

    def _drop_generated(self, request: PlanInput, state: PlanState, generated: GeneratedBatch) -> None:
        """An abort came while the batch was generated: generation recorded it as running (under its task
        name, in the catalog), but none of it runs. It ends ABORTED: in the plan's batch records and, with
        the plan's end, in its task record (its subtasks never started: STOPPED)."""
        name = generated.task_name
        if not name or generated.no_more_work or generated.abort_reason:
            return
        record = self._begin_batch(request, state, name, self._submitted_at_ms, generated)
        record.task_state = TaskState.ABORTED
        record.finished_at_ms = epoch_ms()
        state.plan.inputs_being_processed = 0
        message = f"not started: the plan was aborted ({state.abort_reason})"
        self._pending_end = BatchEnd(
            task_name=name,
            finished_at_ms=record.finished_at_ms,
            result=BatchResult(
                task_name=name,
                task_state=TaskState.ABORTED,
                num_subtasks=len(generated.subtasks),
                num_completed=0,
                num_failed=0,
                status_message=message,
            ),
            # No subtask reports: none ran (the task endpoints show them STOPPED).
        )

    async def _record_pending_end(self) -> None:
        """The last batch's end, when no next step records it (the plan ends or continues as new)."""
        end = self._pending_end
        if end is None:
            return
        try:
            await self._finish_step(
                workflow.start_local_activity_method(
                    PlanActivityDefs.record_batch_end,
                    end,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(maximum_attempts=5),
                    summary=f"record the end of {end.task_name}" if self._web_ui else None,
                )
            )
        except FailureError as err:
            # The catalog is out of reach: the plan's own batch record has the outcome.
            workflow.logger.warning("batch %s: its task record was not updated: %s", end.task_name, err)
        self._pending_end = None
        self._batch = None

    def _batch_input(
        self, request: PlanInput, state: PlanState, name: str, generated: GeneratedBatch
    ) -> BatchInput:
        plan = state.plan
        return BatchInput(
            task_name=name,
            task_type=plan.task_type,
            table_names_with_type=[plan.table_name_with_type],
            plan_id=plan.plan_id,
            batch_sequence=plan.num_batches,
            options=request.options,
        )

    def _begin_batch(
        self, request: PlanInput, state: PlanState, name: str, submitted_at: int, generated: GeneratedBatch
    ) -> BatchRecord:
        plan = state.plan
        record = BatchRecord(
            batch_sequence=plan.num_batches,
            submitted_at_ms=submitted_at,
            submitted_task_name=name,
            task_state=TaskState.IN_PROGRESS,
            num_subtasks=len(generated.subtasks),
            inputs_in_batch=generated.inputs_in_batch,
        )
        plan.batches.append(record)
        plan.num_batches += 1
        plan.inputs_being_processed = generated.inputs_in_batch
        del plan.batches[: max(0, len(plan.batches) - request.options.retained_batch_records)]
        if plan.status == PlanStatus.ACTIVE:
            self._set_status(
                plan.status,
                f"batch {record.batch_sequence} ({name}) running: {len(generated.subtasks)} subtasks",
            )
        self._publish_details()
        return record

    def _end_batch(
        self, state: PlanState, record: BatchRecord, generated: GeneratedBatch, result: BatchResult
    ) -> None:
        plan = state.plan
        record.task_state = result.task_state
        record.num_failed_subtasks = result.num_failed
        record.finished_at_ms = epoch_ms()
        plan.inputs_being_processed = 0
        plan.report = plan.report.plus(
            result.totals, completed=result.num_completed, failed=result.num_failed
        )
        if result.task_state == TaskState.COMPLETED:
            plan.inputs_processed += generated.inputs_in_batch
        else:
            plan.num_failed_batches += 1
            if result.task_state == TaskState.FAILED:
                failed = self._batch.last_error if self._batch is not None else None
                state.last_error = f"batch {record.batch_sequence} FAILED: {result.status_message}" + (
                    f"; {failed}" if failed else ""
                )
        if plan.status == PlanStatus.ACTIVE:
            self._set_status(
                plan.status,
                f"batch {record.batch_sequence} ({record.submitted_task_name}) "
                f"{result.task_state.value}: {result.status_message}",
            )

    async def _await_batch(self, batch: asyncio.Task[BatchResult], state: PlanState) -> BatchResult:
        """Wait for the batch even through a Temporal cancel of the plan: the running batch may finish."""
        return await self._through_cancels(batch, state)

    async def _finish_step(self, step: asyncio.Task[_T]) -> _T:
        """A local activity of the plan's (patch PATCH_STEPS): a Temporal cancel that comes while it runs
        does not interrupt it; the step finishes, its result is used, and the cancel is noted as an abort.
        (Before the patch the cancel interrupted it: its result was lost, a catalog record it made stayed
        for the orchestration poll to end.)"""
        if not self._finishes_steps:
            return await step
        return await self._through_cancels(step, self._require_state())

    async def _through_cancels(self, task: asyncio.Task[_T], state: PlanState) -> _T:
        """The task's result, waited for through any Temporal cancel of the plan (each noted as an abort)."""
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.done():
                    return task.result()
                self._note_temporal_cancel(state)

    def _note_temporal_cancel(self, state: PlanState) -> None:
        # `temporal workflow cancel` on the plan is an abort: note it, keep waiting for the batch.
        self._temporal_cancel = True
        if state.abort_reason is None:
            state.abort_reason = "cancelled through Temporal"
            self._set_status(PlanStatus.ABORTING, f"aborting: {state.abort_reason}")

    @staticmethod
    def _should_continue_as_new(options: PlanOptions, state: PlanState) -> bool:
        if 0 < options.max_batches_per_run <= state.batches_this_run:
            return True
        return workflow.info().is_continue_as_new_suggested()

    # ---------------------------------------------------------------- status helpers

    def _finish(
        self, status: PlanStatus, message: str, *, aborted: bool = False, cause: str | None = None
    ) -> None:
        raise _PlanEnded(status, message, aborted=aborted, cause=cause)  # ended by _end_plan

    def _set_status(self, status: PlanStatus, message: str, *, final: bool = False) -> None:
        plan = self._require_state().plan
        if status != plan.status:
            workflow.upsert_search_attributes([SearchAttributes.STATUS.value_set(status.value)])
        plan.status = status
        plan.status_message = message
        if final:
            plan.finished_at_ms = epoch_ms()
            plan.inputs_being_processed = 0
            plan.paused, plan.pause_reason = False, None
        self._publish_details()

    def _on_subtask_end(self) -> None:
        """A subtask ended: the current details follow, about 100 times a batch at most (and on errors)."""
        batch, state = self._batch, self._state
        if batch is None or state is None:
            return
        failed = batch.last_error is not None and batch.last_error != state.last_error
        if failed:
            state.last_error = batch.last_error
        ended = batch.completed + batch.failed
        if failed or ended % max(1, len(batch.records) // 100) == 0:
            self._publish_details()

    def _publish_details(self) -> None:
        """The Web UI's current details (and the ``__temporal_workflow_metadata`` query's): the plan now."""
        if not self._web_ui or self._state is None:
            return
        state, batch = self._state, self._batch
        workflow.set_current_details(
            current_details(
                state.plan,
                batch_state=None if batch is None else batch.state,
                batch_done=0 if batch is None else batch.completed + batch.failed,
                batch_failed=0 if batch is None else batch.failed,
                blocked_reason=state.blocked_reason,
                last_error=state.last_error,
                run_number=state.run_number,
            )
        )

    def _require_state(self) -> PlanState:
        if self._state is None:
            raise ApplicationError("plan state is not initialised yet", type=NOT_READY)
        return self._state
