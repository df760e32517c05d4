"""The controller's cleanup sweep, every
``controller.startree.task.manager.orphanedTaskPlanCleanupIntervalInSeconds`` (default 28800):

- orphans: plans (every run, batch and cron trigger) of a table that is no longer in the catalog, for
  example one removed from the catalog by hand, are stopped and deleted;
- retention: plans that ended more than ``taskplan.plan.retentionSeconds`` ago (default 7 days) are deleted
  with their batches' task records, and so are legacy batches and cron-trigger runs that old.

What it removes is counted in ``taskPlansCleanedUp`` (attributes ``tableNameWithType``, ``reason``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from taskplan.catalog import Catalog
from taskplan.metrics import metrics
from taskplan.names import SearchAttributes
from taskplan.service import TaskPlanService
from taskplan.service import quote_value as _quote

log = logging.getLogger(__name__)

ENDED = "ExecutionStatus IN ('Completed', 'Failed', 'Terminated', 'Canceled', 'TimedOut')"


@dataclass
class SweepReport:
    orphans: dict[str, int] = field(default_factory=dict)  # table -> executions removed
    expired: dict[str, int] = field(default_factory=dict)  # table -> executions removed


class PlanJanitor:
    def __init__(
        self, service: TaskPlanService, catalog: Catalog, *, interval_s: float, retention_s: float
    ) -> None:
        self.service = service
        self.catalog = catalog
        self.interval_s = interval_s
        self.retention_s = retention_s

    async def sweep_once(self) -> SweepReport:
        report = SweepReport()
        client = self.service.client
        known = await asyncio.to_thread(self.catalog.table_names)
        tables = set()
        async for execution in client.list_workflows("TaskPlanTable IS NOT NULL"):
            table = execution.typed_search_attributes.get(SearchAttributes.TABLE)
            if table:
                tables.add(table)
        if self.service.tasks is not None:
            tables |= await asyncio.to_thread(self.service.tasks.table_names)
        for table in sorted(tables - known):
            count = await self.service.remove_table_plans(table)
            report.orphans[table] = count
            _count(table, "orphan", count)
            log.warning("cleanup: removed %d executions of %s, a table that no longer exists", count, table)

        cutoff = (datetime.now(UTC) - timedelta(seconds=self.retention_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        old = f"{ENDED} AND CloseTime < '{cutoff}'"
        plan_ids: dict[str, str] = {}
        async for execution in client.list_workflows(f"WorkflowType = 'TaskPlan' AND {old}"):
            attributes = execution.typed_search_attributes
            plan_id = attributes.get(SearchAttributes.PLAN_ID)
            if plan_id:
                plan_ids[plan_id] = attributes.get(SearchAttributes.TABLE) or ""
        removed: Counter[str] = Counter()
        for plan_id, table in plan_ids.items():
            query = f"TaskPlanId = {_quote(plan_id)}"
            removed[table] += await self.service.delete_executions(query, "retention")
            if self.service.tasks is not None:
                removed[table] += await asyncio.to_thread(self.service.tasks.delete_plans, [plan_id])
        loose = f"WorkflowType IN ('TaskBatch', 'CronTrigger') AND TaskPlanId IS NULL AND {old}"
        removed.update(await self.service.delete_executions_by_table(loose, "retention"))
        for table, count in removed.items():
            report.expired[table] = count
            _count(table, "retention", count)
        return report

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep_once()
            except Exception:
                log.exception("cleanup sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)


def _count(table: str, reason: str, removed: int) -> None:
    if removed:
        metrics().task_plans_cleaned_up.add(removed, {"tableNameWithType": table, "reason": reason})
