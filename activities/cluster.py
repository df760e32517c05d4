"""The cluster-wide jobs' activities (the ClusterJobs workflow, workflows/cluster_jobs.py).

``run_cluster_job`` runs one job's loop (a ``JobLoop``: the progress poll, segment upkeep, the cleanup sweep)
in this process for as long as Temporal keeps the activity here, heartbeating every few seconds. It ends by
failing: when this worker shuts down (the retry then runs on another controller at once), or when Temporal
cancels it (the workflow continued as new, or a heartbeat found the attempt was given to another process
after this one stopped answering). A job whose loop ends or fails is failed the same way and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from taskplan.catalog import Catalog
from taskplan.schedules import ScheduleManager
from taskplan.workflows.activity_defs import ClusterJobActivityDefs

log = logging.getLogger(__name__)

JobLoop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]  # runs until the event is set
HEARTBEAT_S = 2.0


class ClusterJobActivities(ClusterJobActivityDefs):
    def __init__(
        self,
        jobs: Mapping[str, JobLoop],
        schedules: ScheduleManager,
        catalog: Catalog,
        *,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.jobs = dict(jobs)
        self.schedules = schedules
        self.catalog = catalog
        self.heartbeat_s = heartbeat_s

    @activity.defn(name="run_cluster_job")
    async def run_cluster_job(self, job: str) -> None:
        loop = self.jobs.get(job)
        if loop is None:
            raise ApplicationError(f"unknown cluster job {job!r}", non_retryable=True)
        stop = asyncio.Event()
        running = asyncio.create_task(loop(stop))
        shutdown = asyncio.create_task(activity.wait_for_worker_shutdown())
        log.info("cluster job %s runs in this process (attempt %d)", job, activity.info().attempt)
        try:
            while True:
                activity.heartbeat()
                done, _ = await asyncio.wait({running, shutdown}, timeout=self.heartbeat_s)
                if running in done:
                    running.result()  # its failure, if it failed
                    raise ApplicationError(f"cluster job {job} ended; it restarts")
                if shutdown in done:
                    raise ApplicationError(
                        f"worker shutting down: cluster job {job} moves to another controller"
                    )
        finally:
            stop.set()
            shutdown.cancel()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                # The loops end at their next wait; one caught mid-step gets a moment, then is cancelled.
                await asyncio.wait_for(asyncio.shield(running), timeout=2.0)
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            log.info("cluster job %s left this process", job)

    @activity.defn(name="reconcile_schedules")
    async def reconcile_schedules(self, requests: int) -> str:
        report = await self.schedules.reconcile(await asyncio.to_thread(self.catalog.list_tables))
        return (
            f"for {requests} request(s): created {report.created}, updated {len(report.updated)}, "
            f"deleted {report.deleted}"
        )
