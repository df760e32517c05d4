"""The cluster's periodic orchestration poll: plan gauges from Temporal's view of the active plans. One
controller runs it (workflows/cluster_jobs.py), and only that process exports the gauges.

Every interval it first corrects the catalog's plan snapshots from Temporal (plans ended at the Temporal
level, aborted through the CLI, started without a snapshot: taskplan/plans/snapshots.py), then
lists the active plans, setting activeTaskPlansCount, taskPlansAbortingCount and the taskPlanInputs* gauges
per table and task type, and removes the series of tables dropped since; orchestrationTimeSinceLastPollMs
rises if this loop stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection

from taskplan.metrics import (
    OrchestrationMetrics,
    forget_dropped_tables,
    metrics,
    set_last_poll,
    set_poll_owner,
)
from taskplan.models.plan import PlanQuery, PlanStatus
from taskplan.plans import PlanReader, SnapshotReconciler

log = logging.getLogger(__name__)


class ProgressPoller:
    def __init__(
        self,
        reconciler: SnapshotReconciler,
        reader: PlanReader,
        interval_s: float = 15.0,
        table_names: Callable[[], Collection[str]] | None = None,  # the catalog's, to forget dropped tables
    ) -> None:
        self._reconciler = reconciler
        self._reader = reader
        self._interval_s = interval_s
        self._table_names = table_names
        self._seen: set[tuple[str, str]] = set()  # plans' (table, type) to zero once they end

    async def poll_once(self) -> None:
        corrected = await self._reconciler.reconcile_plan_snapshots()
        if corrected:
            log.info("orchestration poll: %d plan snapshot(s) corrected from Temporal", corrected)
        plans = await self._reader.list_active_plans(query=PlanQuery(batch_limit=0))
        active: Counter[tuple[str, str]] = Counter()
        aborting: Counter[tuple[str, str]] = Counter()
        gauges = metrics()
        for plan in plans:
            key = (plan.table_name_with_type, plan.task_type)
            (aborting if plan.status == PlanStatus.ABORTING else active)[key] += 1
            attrs = OrchestrationMetrics.attributes(*key)
            gauges.task_plan_inputs_to_process.set(plan.inputs_to_process, attrs)
            gauges.task_plan_inputs_being_processed.set(plan.inputs_being_processed, attrs)
            gauges.task_plan_inputs_processed.set(plan.inputs_processed, attrs)
        for key in self._seen | set(active) | set(aborting):
            attrs = OrchestrationMetrics.attributes(*key)
            gauges.active_task_plans_count.set(active[key], attrs)
            gauges.task_plans_aborting_count.set(aborting[key], attrs)
            if key not in active and key not in aborting:
                gauges.task_plan_inputs_being_processed.set(0, attrs)
        self._seen = set(active) | set(aborting)
        if self._table_names is not None:  # a dropped table's series go with it
            await asyncio.to_thread(forget_dropped_tables, self._table_names, force=True)
        set_last_poll(time.time())
        set_poll_owner(True)  # this process's gauges are the cluster's now

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop``; then this process's gauges stop being exported (the poll moved elsewhere).
        The same poller is reused when the job comes back, so it zeroes what ended meanwhile."""
        try:
            while not stop.is_set():
                try:
                    await self.poll_once()
                except Exception:  # a failed poll shows as a rising orchestrationTimeSinceLastPollMs
                    log.exception("orchestration poll failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._interval_s)
        finally:
            set_poll_owner(False)
