"""Aborting a plan: its ABORT signal (no new batch; the running batch may finish, then it ends CANCELLED)."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from taskplan.catalog.tasks import TaskStore
from taskplan.clock import now_ms
from taskplan.models.plan import AbortRequest, TaskPlan
from taskplan.plans.reading import PlanReader
from taskplan.plans.visibility import find_plan_run
from taskplan.workflows import signals


class PlanAborter:
    def __init__(self, client: Client, store: TaskStore, reader: PlanReader) -> None:
        self.client = client
        self.store = store
        self.reader = reader

    async def abort_plan(self, plan_id: str, reason: str = "") -> TaskPlan:
        """Signal the plan to abort; its state right after (ABORTING, or how it ended). Raises
        PlanNotFoundError."""
        run = await find_plan_run(self.client, plan_id)
        if run.running:
            try:
                await run.handle.signal(
                    signals.ABORT, AbortRequest(reason=reason or "aborted through the API")
                )
            except RPCError as err:
                # The plan ended between the check and the signal: its final state is the answer.
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
        plan = await self.reader.get_plan(plan_id, live=True)  # ABORTING, never an older snapshot
        # The active listing reads snapshots: it shows ABORTING from now on (unless the plan ended).
        await asyncio.to_thread(self.store.save_snapshot, plan, now_ms(), unless_ended=True)
        return plan
