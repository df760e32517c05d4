"""ClusterJobs: the cluster-wide jobs, run once per cluster (namespace), not once per controller process.

One workflow with the fixed id ``taskplan-cluster-jobs``, started (or signalled, if it runs) by every
controller worker as it starts (signal-with-start). It keeps one long-running activity per job on the queue
``taskplan-cluster-jobs``, which every controller polls: Temporal hands each to exactly one controller, which
runs the job's loop there (the progress poll and its plan gauges, segment upkeep, the cleanup sweep) and
heartbeats. When that controller shuts down the activity fails and its retry runs on another; when it dies,
the heartbeat timeout (``taskplan.clusterJobs.heartbeatTimeoutSeconds``) moves it. Schedule reconciliation
runs once per ``reconcile_schedules`` signal (each controller start sends one; a burst is coalesced).

The workflow itself does no I/O: the jobs are activities. Its history grows only when a job moves or a
reconciliation runs; it continues as new when Temporal suggests it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from taskplan.names import CLUSTER_JOBS_TASK_QUEUE
from taskplan.workflows.activity_defs import ClusterJobActivityDefs
from taskplan.workflows.models import ClusterJobsInput

CLUSTER_JOBS_WORKFLOW = "ClusterJobs"
RECONCILE_SIGNAL = "reconcile_schedules"
# A job runs until its controller goes; each attempt ends at the latest after this, and is retried at once.
JOB_ATTEMPT = timedelta(days=30)
JOB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,  # forever: a job must always be running somewhere
)


@workflow.defn(name=CLUSTER_JOBS_WORKFLOW, sandboxed=False)
class ClusterJobsWorkflow:
    def __init__(self) -> None:
        self._reconcile_requests = 0
        self._stopping = False

    @workflow.signal(name=RECONCILE_SIGNAL)
    def request_reconcile(self) -> None:
        self._reconcile_requests += 1

    @workflow.run
    async def run(self, params: ClusterJobsInput) -> None:
        jobs = [asyncio.create_task(self._keep_running(job, params)) for job in params.jobs]
        reconciled = 0

        def woken() -> bool:
            return self._reconcile_requests > reconciled or workflow.info().is_continue_as_new_suggested()

        while True:
            await workflow.wait_condition(woken)
            if workflow.info().is_continue_as_new_suggested():
                break
            requests, reconciled = self._reconcile_requests - reconciled, self._reconcile_requests
            try:
                summary = await workflow.execute_activity_method(
                    ClusterJobActivityDefs.reconcile_schedules,
                    requests,
                    task_queue=CLUSTER_JOBS_TASK_QUEUE,
                    start_to_close_timeout=timedelta(minutes=10),
                    retry_policy=RetryPolicy(maximum_attempts=5),
                )
                workflow.logger.info("cron schedules reconciled: %s", summary)
            except ActivityError as exc:  # logged; the next controller start asks again
                workflow.logger.warning("cron schedule reconciliation failed: %s", exc.cause or exc)
        self._stopping = True
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        workflow.continue_as_new(params)

    async def _keep_running(self, job: str, params: ClusterJobsInput) -> None:
        while not self._stopping:
            try:
                await workflow.execute_activity_method(
                    ClusterJobActivityDefs.run_cluster_job,
                    job,
                    task_queue=CLUSTER_JOBS_TASK_QUEUE,
                    start_to_close_timeout=JOB_ATTEMPT,
                    heartbeat_timeout=timedelta(seconds=params.heartbeat_timeout_s),
                    retry_policy=JOB_RETRY,
                )
            except ActivityError as exc:  # an unknown job (not retried), or cancelled as the run continues
                if self._stopping:
                    return
                workflow.logger.error("cluster job %s failed: %s", job, exc.cause or exc)
                await workflow.sleep(timedelta(minutes=1))
