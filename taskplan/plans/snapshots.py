"""Keeping the catalog's plan snapshots true: what a plan cannot record itself, corrected from Temporal.

A plan saves its snapshot as it starts, as each batch ends and as it ends, before its workflow closes (the
active-plans listing reads those). It cannot record an end at the Temporal level (terminated, timed out,
deleted) or one while the catalog was out of reach, an abort sent through Temporal (the CLI's signal or
cancel), or its start when its snapshot was not saved; nor end the batch records it left running. The
controller's orchestration poll (taskplan/progress.py) runs ``reconcile_plan_snapshots`` for those.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.service import RPCError

from taskplan.catalog.tasks import TaskStore
from taskplan.clock import now_ms
from taskplan.models.errors import PlanNotFoundError
from taskplan.models.plan import PlanQuery, PlanStatus, TaskPlan
from taskplan.plans.reading import PlanReader
from taskplan.plans.visibility import running_plans

log = logging.getLogger(__name__)


class SnapshotReconciler:
    def __init__(
        self, client: Client, store: TaskStore, reader: PlanReader, *, grace_s: float = 10.0
    ) -> None:
        self.client = client
        self.store = store
        self.reader = reader
        # A snapshot saved this recently is not corrected from a visibility listing (which may lag behind).
        self.grace_ms = int(grace_s * 1000)

    async def reconcile_plan_snapshots(self) -> int:
        """Correct the catalog's plan snapshots from Temporal, then end the batch records that ended plans
        left running (end_orphaned_batches). Returns how many snapshots changed."""
        listed_at_ms = now_ms()
        running = await running_plans(self.client)
        saved = await asyncio.to_thread(self.store.snapshot_states, list(running))
        active = await asyncio.to_thread(self.store.snapshot_states)
        settled_ms = listed_at_ms - self.grace_ms  # older than this: not a race with a start
        stale = [
            plan_id
            for plan_id, (status, _) in saved.items()
            if status is PlanStatus.ACTIVE and running[plan_id].status == PlanStatus.ABORTING.value
        ]
        unknown = [p for p, run in running.items() if p not in saved and run.started_ms < settled_ms]
        gone = [p for p, (_, updated_ms) in active.items() if p not in running and updated_ms < settled_ms]
        corrected = 0
        for plan_id in stale + unknown + gone:
            plan = await self._ended_or_latest(plan_id)
            if plan is None or (plan_id in gone and plan.status.is_active):
                continue  # running after all (the listing lagged)
            if await asyncio.to_thread(self.store.save_snapshot, plan, now_ms(), unless_ended=True):
                corrected += 1
        await self.end_orphaned_batches(set(running), settled_ms)
        return corrected

    async def end_orphaned_batches(self, running: set[str], settled_ms: int) -> int:
        """End the batch records (ABORTED) of plans that ended without recording them: terminated or deleted
        in Temporal, or whose end missed the catalog. Until then they show IN_PROGRESS in the task listings
        and count against the in-flight limits of every other plan. ``running``: the plans the visibility
        listing has running; a batch submitted after ``settled_ms`` may be a plan's that it has not listed
        yet. Returns how many records ended."""
        ended = 0
        for plan_id in await asyncio.to_thread(self.store.plans_with_open_batches, settled_ms):
            if plan_id in running:
                continue
            try:
                plan = await self._ended_or_latest(plan_id)
            except RPCError as err:  # this plan cannot be read now: the others still can
                log.warning("plan %s: not read, its running batch records stay so: %s", plan_id, err)
                continue
            if plan is not None and plan.status.is_active:
                continue  # running after all (the listing lagged)
            why = (
                "its plan is not in Temporal"
                if plan is None
                else f"its plan ended {plan.status.value}: {plan.status_message}"
            )
            count = await asyncio.to_thread(self.store.end_open_batches, plan_id, now_ms(), why)
            if count:
                log.info("plan %s: %d running batch record(s) ended ABORTED (%s)", plan_id, count, why)
            ended += count
        return ended

    async def _ended_or_latest(self, plan_id: str) -> TaskPlan | None:
        """The plan as Temporal has it (ended, if it ended at the Temporal level), or as its snapshot has it
        if Temporal no longer has it; None when neither has it."""
        try:
            return await self.reader.get_plan(plan_id, PlanQuery(batch_limit=0), live=True)
        except PlanNotFoundError:
            return await self._vanished(plan_id)

    async def _vanished(self, plan_id: str) -> TaskPlan | None:
        """A plan the catalog lists as active that Temporal no longer has (deleted, or past retention)."""
        snapshot = (await asyncio.to_thread(self.store.plan_snapshots, [plan_id], 0)).get(plan_id)
        if snapshot is None:
            return None
        return snapshot.model_copy(
            update={
                "status": PlanStatus.FAILED,
                "status_message": "plan workflow not found in Temporal",
                "finished_at_ms": snapshot.finished_at_ms or now_ms(),
                "inputs_being_processed": 0,
            }
        )
