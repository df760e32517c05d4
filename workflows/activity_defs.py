"""The activities the workflows start, as typed definitions: name, input and output, no implementation.

Workflows start activities through these (``workflow.execute_activity_method(SubtaskActivityDefs.run_subtask,
...)``), never by a string name, so a renamed activity or a changed input or output is a type error in the
workflow that starts it, and the result type comes from the definition. The workflows import nothing of the
implementations (activities/, which pull in SQLAlchemy, DuckDB and plugin code): the classes there subclass
these, register under the same names, and tests/engine/test_activity_defs.py checks that the controller and
minion workers register an implementation of every definition here, with the same name and signature.

The names and inputs are part of the workflows' commands: see CHANGELOG.md before changing one.
"""

from __future__ import annotations

from temporalio import activity

from taskplan.models.plan import BatchEnd, CycleResult, PlanEnd
from taskplan.models.table import TableConfig
from taskplan.models.task import GeneratedBatch
from taskplan.workflows.models import (
    CronTriggerInput,
    NextBatch,
    NextBatchInput,
    OneShotRequest,
    SubtaskInput,
    SubtaskOutput,
)


class PlanActivityDefs:
    """A plan's steps with the catalog and the cluster (local activities on the controller)."""

    @activity.defn(name="next_batch")
    def next_batch(self, step: NextBatchInput) -> NextBatch:
        """Between two batches: record how the last one ended, ask the cluster's gate, generate (and record)
        the next batch. Nothing is generated when the gate says no (``blocked_reason``)."""
        raise NotImplementedError

    @activity.defn(name="record_batch_end")
    def record_batch_end(self, end: BatchEnd) -> None:
        """The last batch's end, when no next step records it (the plan ends or continues as new)."""
        raise NotImplementedError

    @activity.defn(name="record_plan_end")
    def record_plan_end(self, end: PlanEnd) -> None:
        """The plan's end (its final snapshot, its last batch's end), before its workflow closes."""
        raise NotImplementedError


class GenerationActivityDefs:
    """Task generators (plugin code) outside a plan: the legacy one-shot flow and config validation."""

    @activity.defn(name="generate_one_shot")
    def generate_one_shot(self, request: OneShotRequest) -> GeneratedBatch:
        """A legacy task's subtasks (a TaskBatch's only batch)."""
        raise NotImplementedError

    @activity.defn(name="validate_task_configs")
    def validate_task_configs(self, table_config: TableConfig) -> list[str]:
        """The problems of every task type's configs of a table config (none: it is valid)."""
        raise NotImplementedError


class SubtaskActivityDefs:
    """Task executors (plugin code), on the minions' queues ``minion-<tag>.<TaskType>``."""

    @activity.defn(name="run_subtask")
    async def run_subtask(self, request: SubtaskInput) -> SubtaskOutput:
        """One subtask, heartbeating while its executor runs."""
        raise NotImplementedError


class TriggerActivityDefs:
    """What a cron Schedule's firing does (the CronTrigger workflow's one activity)."""

    @activity.defn(name="run_scheduled_trigger")
    async def run_scheduled_trigger(self, trigger: CronTriggerInput) -> CycleResult:
        """One trigger cycle for the table and task type that fired."""
        raise NotImplementedError


class ClusterJobActivityDefs:
    """The cluster-wide jobs (the ClusterJobs workflow's activities), on ``taskplan-cluster-jobs``."""

    @activity.defn(name="run_cluster_job")
    async def run_cluster_job(self, job: str) -> None:
        """Run one cluster job's loop in this process, heartbeating, until the worker shuts down (it then
        fails, and the retry runs on another controller) or Temporal cancels it."""
        raise NotImplementedError

    @activity.defn(name="reconcile_schedules")
    async def reconcile_schedules(self, requests: int) -> str:
        """Make the cron Schedules match the catalog's table configs (for ``requests`` controller starts,
        coalesced); a summary of what changed."""
        raise NotImplementedError
