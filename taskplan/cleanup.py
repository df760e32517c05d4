"""The controller's cleanup sweep, every
``controller.startree.task.manager.orphanedTaskPlanCleanupIntervalInSeconds`` (default 28800; a cluster
config of that name overrides the property at run time: the loop rereads it every few seconds):

- orphans: plans (every run, batch and cron trigger) of a table that is no longer in the catalog, for
  example one removed from the catalog by hand, are stopped and deleted;
- retention: plans that ended more than ``taskplan.plan.retentionSeconds`` ago (default 7 days) are deleted
  with their batches' task records, and so are legacy batches and cron-trigger runs that old.

What it removes is counted in ``taskPlansCleanedUp`` (attributes ``tableNameWithType``, ``reason``). A table
whose removal fails is logged and listed in the sweep's report; the other tables are still swept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.cluster_configs import CONFIG_POLL_S, runtime_int
from taskplan.metrics import metrics
from taskplan.names import SearchAttributes
from taskplan.plans import PlanRemover
from taskplan.plans.visibility import PLAN_WORKFLOW_TYPE
from taskplan.settings import ORPHAN_CLEANUP_INTERVAL

log = logging.getLogger(__name__)

ENDED = "ExecutionStatus IN ('Completed', 'Failed', 'Terminated', 'Canceled', 'TimedOut')"


@dataclass
class SweepReport:
    orphans: dict[str, int] = field(default_factory=dict)  # table -> executions removed
    expired: dict[str, int] = field(default_factory=dict)  # table -> executions removed
    failed: dict[str, str] = field(default_factory=dict)  # table -> why removing failed (tried next sweep)


class PlanJanitor:
    def __init__(
        self,
        client: Client,
        remover: PlanRemover,
        catalog: Catalog,
        *,
        interval_s: int,
        retention_s: float,
        config_poll_s: float = CONFIG_POLL_S,
    ) -> None:
        self.client = client
        self.remover = remover
        self.catalog = catalog
        self.interval_s = interval_s  # the property; a cluster config overrides it
        self.retention_s = retention_s
        self.config_poll_s = config_poll_s

    def current_interval_s(self) -> int:
        return runtime_int(self.catalog.cluster_configs(), ORPHAN_CLEANUP_INTERVAL, self.interval_s)

    async def sweep_once(self) -> SweepReport:
        report = SweepReport()
        client = self.client
        known = await asyncio.to_thread(self.catalog.table_names)
        tables = set()
        async for execution in client.list_workflows("TaskPlanTable IS NOT NULL"):
            table = execution.typed_search_attributes.get(SearchAttributes.TABLE)
            if table:
                tables.add(table)
        tables |= await asyncio.to_thread(self.catalog.tasks.table_names)
        for table in sorted(tables - known):
            try:
                count = await self.remover.remove_table_plans(table)
            except Exception as exc:
                _failed(report, table, "removing the plans of a table that no longer exists", exc)
                continue
            report.orphans[table] = count
            _count(table, "orphan", count)
            log.warning("cleanup: removed %d executions of %s, a table that no longer exists", count, table)

        cutoff = (datetime.now(UTC) - timedelta(seconds=self.retention_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        old = f"{ENDED} AND CloseTime < '{cutoff}'"
        plan_ids: dict[str, str] = {}
        async for execution in client.list_workflows(f"WorkflowType = '{PLAN_WORKFLOW_TYPE}' AND {old}"):
            attributes = execution.typed_search_attributes
            plan_id = attributes.get(SearchAttributes.PLAN_ID)
            if plan_id:
                plan_ids[plan_id] = attributes.get(SearchAttributes.TABLE) or ""
        removed: Counter[str] = Counter()
        for plan_id, table in plan_ids.items():
            try:
                removed[table] += await self.remover.remove_plan(plan_id, "retention")
            except Exception as exc:
                _failed(report, table, f"deleting the expired plan {plan_id}", exc)
        loose = f"WorkflowType IN ('TaskBatch', 'CronTrigger') AND TaskPlanId IS NULL AND {old}"
        removed.update(await self.remover.delete_executions_by_table(loose, "retention"))
        for table, count in removed.items():
            report.expired[table] = count
            _count(table, "retention", count)
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep now, then whenever the interval has passed since the last sweep began. The interval is
        reread every ``config_poll_s``, so a shorter one set while a long one runs applies at once."""
        interval = self.interval_s
        last_sweep = float("-inf")
        while not stop.is_set():
            try:
                interval = await asyncio.to_thread(self.current_interval_s)
            except Exception:
                log.exception("cleanup: cannot read the cluster configs; the interval stays %d s", interval)
            if time.monotonic() - last_sweep >= interval:
                last_sweep = time.monotonic()
                try:
                    report = await self.sweep_once()
                    log.info(
                        "cleanup sweep: %d executions of removed tables and %d expired deleted, %d tables "
                        "failed; next in %d s",
                        sum(report.orphans.values()),
                        sum(report.expired.values()),
                        len(report.failed),
                        interval,
                    )
                except Exception:
                    log.exception("cleanup sweep failed")
            due_in = interval - (time.monotonic() - last_sweep)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, min(self.config_poll_s, due_in)))


def _failed(report: SweepReport, table: str, what: str, exc: Exception) -> None:
    # One table's failure (say Temporal refusing its query) must not keep the sweep from the others.
    report.failed[table] = f"{what}: {exc}"
    log.error("cleanup: %s failed, table %s (retried next sweep)", what, table, exc_info=exc)


def _count(table: str, reason: str, removed: int) -> None:
    if removed:
        metrics().task_plans_cleaned_up.add(removed, {"tableNameWithType": table, "reason": reason})
