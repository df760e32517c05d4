"""Worker processes: the controller (plan and batch workflows, generators) and minions (executors).

    python worker.py --role controller
    python worker.py --role minion --tag minion_untagged --tag gpu
    python worker.py --role both

A minion polls one task queue per (instance tag, task type), ``minion-<tag>.<TaskType>``, so each task
type gets its generator's per-instance concurrency. SIGINT/SIGTERM shut down gracefully: running subtasks
get ``--graceful-shutdown-seconds`` to finish; those still running are handed back and retried elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from taskplan.activities.cluster import ClusterJobActivities, JobLoop
from taskplan.activities.generation import GenerationActivities
from taskplan.activities.plans import PlanActivities
from taskplan.activities.subtasks import SubtaskActivities
from taskplan.activities.triggers import TriggerActivities
from taskplan.bootstrap import open_stack, plan_options
from taskplan.catalog import Catalog
from taskplan.cleanup import PlanJanitor
from taskplan.data.maintenance import SegmentMaintenance
from taskplan.data.parquet import DuckDBConfig
from taskplan.data.segments import SegmentManager
from taskplan.gate import ClusterGate
from taskplan.metrics import metrics_url
from taskplan.models.table import TableConfigSource
from taskplan.names import (
    CLUSTER_JOBS_TASK_QUEUE,
    CLUSTER_JOBS_WORKFLOW_ID,
    CONTROLLER_TASK_QUEUE,
    DEFAULT_MINION_TAG,
    minion_task_queue,
    validate_minion_tag,
)
from taskplan.plans import PlanServices
from taskplan.plugin import PluginContext
from taskplan.probes import WorkerHealth, serve_worker_port
from taskplan.progress import ProgressPoller
from taskplan.registry import TaskTypeRegistry
from taskplan.schedules import ScheduleManager
from taskplan.settings import Settings
from taskplan.workflows.batch import BatchWorkflow
from taskplan.workflows.cluster_jobs import RECONCILE_SIGNAL, ClusterJobsWorkflow
from taskplan.workflows.cron_trigger import CronTriggerWorkflow
from taskplan.workflows.models import (
    CLEANUP_SWEEP_JOB,
    PROGRESS_POLL_JOB,
    SEGMENT_UPKEEP_JOB,
    ClusterJobsInput,
)
from taskplan.workflows.task_plan import TaskPlanWorkflow
from taskplan.workflows.validation import TableConfigValidatorWorkflow, ValidateTableConfigWorkflow

Role = Literal["controller", "minion", "both"]
log = logging.getLogger("taskplan.worker")


@dataclass
class WorkerOptions:
    role: Role = "both"
    tags: Sequence[str] = (DEFAULT_MINION_TAG,)
    max_concurrent_subtasks: int | None = None  # overrides the generators' per-instance concurrency
    generator_threads: int = 8
    graceful_shutdown_seconds: float = 30.0
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")


def build_workers(
    client: Client,
    settings: Settings,
    registry: TaskTypeRegistry,
    tables: TableConfigSource,
    options: WorkerOptions,
    catalog: Catalog,
) -> list[Worker]:
    context = PluginContext(
        settings=settings,
        catalog=catalog,
        duckdb_config=DuckDBConfig(
            threads=settings.duckdb_threads, memory_limit=settings.duckdb_memory_limit
        ),
    )
    workers: list[Worker] = []
    shutdown = timedelta(seconds=options.graceful_shutdown_seconds)
    if options.role in ("controller", "both"):
        generation = GenerationActivities(registry, context, tables)
        gate = ClusterGate(settings, catalog, client, _running_loop())
        plans = PlanActivities(generation, gate, catalog.tasks, catalog.table_names)
        activities: list[Callable[..., Any]] = [
            plans.next_batch,
            plans.record_batch_end,
            plans.record_plan_end,
            generation.generate_one_shot,
            generation.validate_task_configs,
        ]
        services = PlanServices.build(client, catalog, plan_options(settings))
        triggers = TriggerActivities(
            services.starter,
            services.one_shot,
            registry,
            catalog,
            enable_task_orchestration=settings.enable_task_orchestration,
        )
        activities.append(triggers.run_scheduled_trigger)
        workers.append(
            Worker(
                client,
                task_queue=CONTROLLER_TASK_QUEUE,
                workflows=[
                    TaskPlanWorkflow,
                    BatchWorkflow,
                    ValidateTableConfigWorkflow,
                    TableConfigValidatorWorkflow,
                    CronTriggerWorkflow,
                    ClusterJobsWorkflow,
                ],
                activities=activities,
                activity_executor=ThreadPoolExecutor(
                    options.generator_threads, thread_name_prefix="generator"
                ),
                max_concurrent_activities=options.generator_threads,
                identity=f"controller@{options.identity}",
                graceful_shutdown_timeout=shutdown,
            )
        )
        # The cluster-wide jobs: the controller Temporal hands one to runs it (workflows/cluster_jobs.py).
        workers.append(
            Worker(
                client,
                task_queue=CLUSTER_JOBS_TASK_QUEUE,
                activities=[*cluster_job_activities(client, settings, catalog, services).values()],
                max_concurrent_activities=8,
                identity=f"controller@{options.identity}",
                graceful_shutdown_timeout=shutdown,
            )
        )
    if options.role in ("minion", "both"):
        slots = {
            (tag, t.task_type): options.max_concurrent_subtasks
            or settings.minion_max_concurrent_subtasks
            or t.new_generator(context).get_num_concurrent_tasks_per_instance(tag)
            for tag in map(validate_minion_tag, options.tags)
            for t in registry
        }
        subtasks = SubtaskActivities(
            registry, context, threads=sum(slots.values()), identity=options.identity
        )
        for (tag, task_type_name), concurrency in slots.items():
            workers.append(
                Worker(
                    client,
                    task_queue=minion_task_queue(tag, task_type_name),
                    activities=[subtasks.run_subtask],
                    max_concurrent_activities=concurrency,
                    identity=f"minion[{tag}]@{options.identity}",
                    graceful_shutdown_timeout=shutdown,
                )
            )
    return workers


def cluster_job_activities(
    client: Client, settings: Settings, catalog: Catalog, plans: PlanServices
) -> dict[str, Callable[..., Any]]:
    """The cluster-wide jobs this controller runs when Temporal hands it one: the orchestration poll (plan
    gauges), segment upkeep (flush by time, crash leftovers), the plan cleanup sweep; and the schedules'
    reconciliation. Each job object is made once per process, so its state outlives a job's move."""
    poller = ProgressPoller(plans.reconciler, plans.reader, table_names=catalog.table_names)
    segments = SegmentMaintenance(SegmentManager.from_settings(settings, catalog), catalog)
    janitor = PlanJanitor(
        client,
        plans.remover,
        catalog,
        interval_s=settings.orphaned_plan_cleanup_interval_s,
        retention_s=settings.plan_retention_s,
    )
    jobs: dict[str, JobLoop] = {
        PROGRESS_POLL_JOB: poller.run,
        SEGMENT_UPKEEP_JOB: segments.run,
        CLEANUP_SWEEP_JOB: janitor.run,
    }
    cluster = ClusterJobActivities(jobs, ScheduleManager(client), catalog)
    return {"run_cluster_job": cluster.run_cluster_job, "reconcile_schedules": cluster.reconcile_schedules}


async def start_cluster_jobs(client: Client, settings: Settings) -> WorkflowHandle[Any, Any]:
    """Start the cluster's jobs workflow, or find it running; either way ask it to reconcile the cron
    Schedules with the catalog (each controller start does, so none is missing or left over)."""
    return await client.start_workflow(
        ClusterJobsWorkflow.run,
        ClusterJobsInput(heartbeat_timeout_s=settings.cluster_jobs_heartbeat_timeout_s),
        id=CLUSTER_JOBS_WORKFLOW_ID,
        task_queue=CONTROLLER_TASK_QUEUE,
        start_signal=RECONCILE_SIGNAL,
        # What the Web UI's list shows of it: housekeeping, not a plan.
        static_summary="housekeeping: taskplan's cluster-wide jobs (one per cluster; no table)",
    )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def run_workers(workers: Sequence[Worker], stop: asyncio.Event) -> None:
    """Run until `stop` is set, then shut every worker down gracefully."""
    tasks = [asyncio.create_task(w.run()) for w in workers]
    stop_wait = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    stop_wait.cancel()
    for task in tasks:
        if task in done and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # checked just above: an exception, not None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="taskplan worker: controller and/or minion")
    parser.add_argument("--role", choices=["controller", "minion", "both"], default="both")
    parser.add_argument(
        "--tag",
        action="append",
        dest="tags",
        help=f"minion instance tag to serve (repeatable; default {DEFAULT_MINION_TAG})",
    )
    parser.add_argument(
        "--max-concurrent-subtasks",
        type=int,
        default=None,
        help="subtasks run at once per task type and tag (default: taskplan.minion.maxConcurrentSubtasks, "
        "else the task type's own setting: one per CPU of the container's quota for the data task types)",
    )
    parser.add_argument("--generator-threads", type=int, default=8)
    parser.add_argument("--graceful-shutdown-seconds", type=float, default=30.0)
    parser.add_argument(
        "--metrics-host",
        default=None,
        help="address the Prometheus endpoint binds (default: taskplan.metrics.host, 127.0.0.1)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on PORT (default: taskplan.metrics.port; 0 = off)",
    )
    parser.add_argument("--config", help="properties file (default: $TASKPLAN_CONFIG)")
    return parser.parse_args(argv)


def metrics_address(args: argparse.Namespace, settings: Settings) -> tuple[str, int] | None:
    """Where this worker serves its metrics: the flags, else taskplan.metrics.host/port (None: off)."""
    port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    if not 0 <= port <= 65535:
        raise SystemExit(f"--metrics-port must be between 0 and 65535, got {port}")
    return (args.metrics_host or settings.metrics_host, port) if port else None


async def main_async(args: argparse.Namespace) -> None:
    stack = open_stack(args.config)
    options = WorkerOptions(
        role=args.role,
        tags=args.tags or [DEFAULT_MINION_TAG],
        max_concurrent_subtasks=args.max_concurrent_subtasks,
        generator_threads=args.generator_threads,
        graceful_shutdown_seconds=args.graceful_shutdown_seconds,
    )
    address = metrics_address(args, stack.settings)
    health = WorkerHealth(asyncio.get_running_loop())
    if address is not None:
        try:
            serve_worker_port(address[0], address[1], health)
        except OSError as exc:  # the port is taken, or the host is not this machine's
            raise SystemExit(f"cannot serve metrics on {address[0]}:{address[1]}: {exc}") from None
        log.info(
            "Prometheus metrics on %s (probes: /health/liveness, /health/readiness)", metrics_url(*address)
        )
    client = await stack.connect(retries=60, identity=options.identity)
    health.checks["catalog"] = lambda: asyncio.to_thread(stack.catalog.ping)

    async def temporal_answers() -> None:
        await client.service_client.check_health()

    health.checks["temporal"] = temporal_answers
    workers = build_workers(client, stack.settings, stack.registry, stack.catalog, options, stack.catalog)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker %s started: role=%s tags=%s task types=%s",
        options.identity,
        options.role,
        list(options.tags),
        stack.registry.task_types(),
    )
    if options.role in ("controller", "both"):
        # The cluster-wide jobs run once per cluster, in whichever controller Temporal hands each to.
        await start_cluster_jobs(client, stack.settings)
    health.waiting_for = None
    await run_workers(workers, stop)
    log.info("worker %s stopped", options.identity)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    main()
