"""A plan's steps with the catalog and the cluster: local activities on the controller.

Between two batches a plan takes one step (``next_batch``): record how the last batch ended, ask the
cluster's gate (taskplan/gate.py), and generate the next batch (GenerationActivities), recording it as a
running task. When the plan ends or continues as new, ``record_batch_end`` and ``record_plan_end`` record
what no next step will.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from temporalio import activity

from taskplan.activities.generation import GenerationActivities
from taskplan.catalog.tasks import TaskStore
from taskplan.clock import now_ms
from taskplan.metrics import OrchestrationMetrics, forget_dropped_tables, metrics
from taskplan.models.plan import BatchEnd, PlanEnd
from taskplan.models.task import GeneratedBatch
from taskplan.workflows.activity_defs import PlanActivityDefs
from taskplan.workflows.models import GenerateBatchInput, NextBatch, NextBatchInput, ProgressionCheck

# Why a plan may not take its next batch now (None: it may): table name with type, task type, plan id.
ProgressionGate = Callable[[str, str, "str | None"], "str | None"]


class PlanActivities(PlanActivityDefs):
    """Built once per controller worker, on the generators, the cluster's gate and the task records."""

    def __init__(
        self,
        generation: GenerationActivities,
        gate: ProgressionGate,
        tasks: TaskStore,
        table_names: Callable[[], Collection[str]] | None = None,  # the catalog's, to forget dropped tables
    ) -> None:
        self._generation = generation
        self._gate = gate
        self._tasks = tasks  # task records of plan batches
        self._table_names = table_names

    @activity.defn(name="next_batch")
    def next_batch(self, step: NextBatchInput) -> NextBatch:
        if step.ended is not None:
            self.record_batch_end(step.ended)
        reason = self._check_progression(step.check)
        if reason is not None:
            return NextBatch(blocked_reason=reason)
        return NextBatch(batch=self._generate(step.generate))

    @activity.defn(name="record_batch_end")
    def record_batch_end(self, end: BatchEnd) -> None:
        """The batch's task record takes its result and subtask reports."""
        if not self._tasks.record_ended(end):
            activity.logger.warning("batch %s ended but has no task record (table dropped?)", end.task_name)

    @activity.defn(name="record_plan_end")
    def record_plan_end(self, end: PlanEnd) -> None:
        """The plan's last batch's end and its final snapshot (so it leaves the active listing as it ends),
        and taskPlanAborted if it was aborted."""
        if end.aborted and activity.info().attempt == 1:  # counted once, whatever the catalog does
            metrics().task_plan_aborted.add(
                1, OrchestrationMetrics.attributes(end.plan.table_name_with_type, end.plan.task_type)
            )
        self._tasks.record_plan_end(end)

    def _check_progression(self, check: ProgressionCheck) -> str | None:
        """Why the plan may not progress now (None: it may), shown in taskPlanProgressionBlocked."""
        attrs = OrchestrationMetrics.attributes(check.table_name_with_type, check.task_type)
        try:
            reason = self._gate(check.table_name_with_type, check.task_type, check.plan_id)
        except Exception:
            metrics().orchestration_cycle_failure.add(1, attrs)
            raise
        metrics().task_plan_progression_blocked.set(0 if reason is None else 1, attrs)
        if self._table_names is not None:  # at most once a minute: a controller not running the poll too
            forget_dropped_tables(self._table_names)
        return reason

    def _generate(self, request: GenerateBatchInput) -> GeneratedBatch:
        """The next batch; one to run gets its task record (a generator's "no more work" or abort makes
        none), under the name the plan gave it or the next free millisecond's."""
        try:
            batch = self._generation.generate_next_batch(request)
            if request.task_name and batch.subtasks and not batch.abort_reason:
                name = self._tasks.record_started(
                    request.task_name,
                    table_name=request.table_name_with_type,
                    plan_id=request.plan_id,
                    batch_sequence=request.batch_sequence,
                    submitted_ms=request.submitted_at_ms or now_ms(),
                    batch=batch,
                )
                batch = batch.model_copy(update={"task_name": name})
            return batch
        except Exception:
            attrs = OrchestrationMetrics.attributes(request.table_name_with_type, request.task_type)
            metrics().task_generation_failure_count.add(1, attrs)
            metrics().orchestration_cycle_failure.add(1, attrs)
            raise
