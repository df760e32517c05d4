"""A legacy parent task (Pinot's task, no plan) as a workflow: TaskBatch, its task name as workflow id.

It generates its subtasks in an activity, then runs them (workflows/batch_run.py). A plan runs its batches
itself, in its own history (see workflows/task_plan.py): a TaskBatch is always a legacy task.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from taskplan.models.errors import NON_RETRYABLE
    from taskplan.models.task import (
        BatchDetails,
        BatchResult,
        GeneratedBatch,
        SubtaskConfig,
        SubtaskOptions,
        SubtaskQuery,
        TaskState,
    )
    from taskplan.names import SearchAttributes
    from taskplan.workflows.activity_defs import GenerationActivityDefs
    from taskplan.workflows.batch_run import BatchRun
    from taskplan.workflows.clock import epoch_ms
    from taskplan.workflows.models import BatchInput, GenerationOutcome

GENERATION_TIMEOUT = timedelta(minutes=10)


# Not sandboxed: the sandbox's per-payload bookkeeping cost ~4x the CPU of a 2,000-subtask batch (measured
# with cProfile on a replay). Determinism rests on this module's discipline (no I/O, time from workflow.now)
# and on tests/engine/test_replay.py, which replays real histories.
@workflow.defn(name="TaskBatch", sandboxed=False)
class BatchWorkflow:
    def __init__(self) -> None:
        self._input: BatchInput | None = None
        self._run: BatchRun | None = None
        self._generation: GenerationOutcome | None = None
        self._state = TaskState.NOT_STARTED
        self._message = ""
        self._submitted_at_ms = 0

    @workflow.run
    async def run(self, request: BatchInput) -> BatchResult:
        self._input = request
        self._submitted_at_ms = epoch_ms()
        batch = await self._generate(request)
        if batch is None:
            return self._result()
        run = BatchRun(request, batch, on_state=self._set_state, failing_state=True, record_workers=True)
        self._run = run
        self._generation = GenerationOutcome(num_subtasks=len(batch.subtasks))
        return await run.run()

    async def _generate(self, request: BatchInput) -> GeneratedBatch | None:
        assert request.one_shot is not None, "a TaskBatch needs its one-shot request"
        try:
            batch = await workflow.execute_activity_method(
                GenerationActivityDefs.generate_one_shot,
                request.one_shot,
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

    def _set_state(self, state: TaskState) -> None:
        self._state = state
        updates: list[SearchAttributeUpdate[Any]] = [SearchAttributes.TASK_STATE.value_set(state.value)]
        # A running batch shows its size, for the in-flight subtask limits (taskplan/gate.py).
        if state is TaskState.IN_PROGRESS and self._run is not None:
            updates.append(SearchAttributes.BATCH_SUBTASKS.value_set(len(self._run.records)))
        workflow.upsert_search_attributes(updates)

    def _result(self) -> BatchResult:
        if self._run is not None:
            return self._run.result()
        request = self._input
        assert request is not None
        return BatchResult(
            task_name=request.task_name,
            task_state=self._state,
            num_subtasks=0,
            num_completed=0,
            num_failed=0,
            status_message=self._message,
        )

    @workflow.query
    def details(self, query: SubtaskQuery | None = None) -> BatchDetails:
        if self._run is not None:
            return self._run.details(query)
        request = self._input
        assert request is not None
        return BatchDetails(
            task_name=request.task_name,
            task_type=request.task_type,
            plan_id=request.plan_id,
            batch_sequence=request.batch_sequence,
            table_names_with_type=request.table_names_with_type,
            task_state=self._state,
            submitted_at_ms=self._submitted_at_ms,
            status_message=self._message,
            num_subtasks=0,
            subtasks=[],
        )

    @workflow.query
    def subtask_configs(self, query: SubtaskQuery | None = None) -> list[SubtaskConfig]:
        """The configs of a page of subtasks, as the generator made them."""
        return [] if self._run is None else self._run.configs(query)

    @workflow.query
    def runtime_options(self) -> SubtaskOptions | None:

        return None if self._run is None else self._run.batch.options

    @workflow.query
    def state(self) -> TaskState:
        return self._state

    @workflow.update
    async def generated(self) -> GenerationOutcome:
        """Wait until the subtasks exist (legacy flow): the API answers the trigger with this."""
        await workflow.wait_condition(lambda: self._generation is not None)
        assert self._generation is not None
        return self._generation
