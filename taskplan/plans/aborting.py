"""Steering a plan: aborting it (its ABORT signal, then a Temporal cancel request: no new batch; the running
batch may finish, then it ends CANCELLED and its workflow Canceled), stopping its running batch (STOP_BATCH:
the batch ends STOPPED, the plan goes on), and pausing and resuming it (PAUSE: no new batch until RESUME; the
running batch finishes)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from taskplan.catalog.tasks import TaskStore
from taskplan.clock import now_ms
from taskplan.models.errors import PlanNotSteerableError
from taskplan.models.plan import AbortRequest, PauseRequest, PlanStatus, TaskPlan
from taskplan.models.task import TaskState
from taskplan.plans.reading import PlanReader
from taskplan.plans.visibility import PlanHandle, find_plan_run
from taskplan.workflows import signals


@dataclass(frozen=True)
class BatchStop:
    """What stopping a batch found: the plan's status, and the batch's state (None: no such batch)."""

    plan_status: PlanStatus
    batch_state: TaskState | None

    @property
    def signalled(self) -> bool:
        return self.plan_status.is_active and self.batch_state is TaskState.IN_PROGRESS


class PlanAborter:
    def __init__(self, client: Client, store: TaskStore, reader: PlanReader) -> None:
        self.client = client
        self.store = store
        self.reader = reader

    async def abort_plan(self, plan_id: str, reason: str = "") -> TaskPlan:
        """Abort the plan: its ``abort`` signal (the reason, kept in statusMessage), then a Temporal cancel
        request to the same run, so that its workflow ends Canceled (the plan treats the cancel as the
        abort it already has: the running batch may finish). Its state right after (ABORTING, or how it
        ended). Raises PlanNotFoundError."""
        run = await find_plan_run(self.client, plan_id)
        if run.running:
            reason = reason or "aborted through the API"
            try:
                await run.handle.signal(signals.ABORT, AbortRequest(reason=reason))
                await self._cancel(plan_id, run.handle, reason)
            except RPCError as err:
                # The plan ended between the check and the signal: its final state is the answer.
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
        plan = await self.reader.get_plan(plan_id, live=True)  # ABORTING, never an older snapshot
        # The active listing reads snapshots: it shows ABORTING from now on (unless the plan ended).
        await asyncio.to_thread(self.store.save_snapshot, plan, now_ms(), unless_ended=True)
        return plan

    async def _cancel(self, plan_id: str, handle: PlanHandle, reason: str) -> None:
        """The cancel request that ends the aborted plan's workflow Canceled. If that run continued as new
        meanwhile (the abort goes with the plan), the plan's next run gets it."""
        try:
            await handle.cancel(reason=reason)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            latest = await find_plan_run(self.client, plan_id)
            if not latest.running or latest.handle.run_id == handle.run_id:
                return  # the plan ended: nothing to cancel
            await latest.handle.cancel(reason=reason)

    async def stop_batch(self, plan_id: str, task_name: str) -> BatchStop:
        """Stop the plan's batch of that task name if it is the running one (its subtasks are cancelled, it
        ends STOPPED; the plan goes on with the next batch). Raises PlanNotFoundError."""
        run = await find_plan_run(self.client, plan_id)
        plan = await self.reader.get_plan(plan_id, live=run.running)
        batch = next((b for b in reversed(plan.batches) if b.submitted_task_name == task_name), None)
        found = BatchStop(plan.status, None if batch is None else batch.task_state)
        if not (run.running and found.signalled):
            return found
        try:
            await run.handle.signal(signals.STOP_BATCH, task_name)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            ended = await self.reader.get_plan(plan_id)  # ended meanwhile: nothing to stop
            return BatchStop(ended.status, found.batch_state)
        return found

    async def pause_plan(self, plan_id: str, reason: str = "") -> TaskPlan:
        """Signal the plan to pause; its state right after (paused). Raises PlanNotFoundError, and
        PlanNotSteerableError when the plan ended or is aborting."""
        return await self._steer(plan_id, signals.PAUSE, reason or "paused through the API", paused=True)

    async def resume_plan(self, plan_id: str, reason: str = "") -> TaskPlan:
        """Signal a paused plan to go on. Raises PlanNotFoundError, and PlanNotSteerableError when the plan
        ended or is not paused."""
        return await self._steer(plan_id, signals.RESUME, reason or "resumed through the API", paused=False)

    async def _steer(self, plan_id: str, signal: str, reason: str, *, paused: bool) -> TaskPlan:
        run = await find_plan_run(self.client, plan_id)
        plan = await self.reader.get_plan(plan_id, live=run.running)
        verb = signal
        if not run.running or plan.status is not PlanStatus.ACTIVE:
            raise PlanNotSteerableError(
                f"task plan {plan_id} is {plan.status.value} ({plan.status_message}): "
                f"only an ACTIVE plan can {verb}"
            )
        if not paused and not plan.paused:
            raise PlanNotSteerableError(f"task plan {plan_id} is not paused: nothing to resume")
        try:
            await run.handle.signal(signal, PauseRequest(reason=reason))
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            ended = await self.reader.get_plan(plan_id)
            raise PlanNotSteerableError(
                f"task plan {plan_id} ended meanwhile ({ended.status.value}): only an ACTIVE plan can {verb}"
            ) from None
        plan = await self.reader.get_plan(plan_id, live=True)
        await asyncio.to_thread(self.store.save_snapshot, plan, now_ms(), unless_ended=True)
        return plan
