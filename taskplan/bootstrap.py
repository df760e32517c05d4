"""Build what every process shares from one Settings: the task-type registry, the catalog, the client."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

from temporalio.client import Client

from taskplan.catalog import Catalog, CatalogVersionError
from taskplan.models.plan import PlanOptions
from taskplan.registry import TaskTypeRegistry, build_registry
from taskplan.settings import Settings, load_settings
from taskplan.storage import BadURIError, is_s3, parse_s3
from taskplan.temporal import TemporalConnectError, connect
from taskplan.temporal_setup import ClusterNotReady, check_cluster

log = logging.getLogger(__name__)

# A process that waits for a just-started server (retries > 1) also gives its namespace check this many
# tries, 0.5 s apart; one that does not (retries == 1) reports a missing piece at once.
CLUSTER_CHECK_ATTEMPTS = 4


@dataclass
class Stack:
    settings: Settings
    registry: TaskTypeRegistry
    catalog: Catalog  # also the table configs' source (TableConfigSource) of the generators

    async def connect(self, *, retries: int = 1, identity: str | None = None) -> Client:
        """The process's client, on a namespace that has what taskplan needs (checked here, at every
        start: `taskplan setup` prepares it). A process that cannot connect, or finds the namespace or a
        search attribute missing, stops with the message."""
        try:
            client = await connect(self.settings, retries=retries, identity=identity)
            for attempt in range(CLUSTER_CHECK_ATTEMPTS if retries > 1 else 1):
                try:
                    await check_cluster(client, self.settings)
                    break
                except ClusterNotReady:
                    # A dev server started a moment ago (the embedded stack starts its processes without
                    # waiting for it) registers its search attributes just after it starts listening.
                    if attempt + 1 >= CLUSTER_CHECK_ATTEMPTS or retries <= 1:
                        raise
                    await asyncio.sleep(0.5)
        except (TemporalConnectError, ClusterNotReady) as exc:
            raise SystemExit(f"taskplan cannot start: {exc}") from None
        return client

    def plan_options(self) -> PlanOptions:
        return plan_options(self.settings)


def plan_options(s: Settings) -> PlanOptions:
    """Plan defaults from the properties (taskplan.plan.*, taskplan.batch.*, taskplan.subtask.*); a plan's
    task configs may set its failure thresholds (taskplan.plan_configs)."""
    return PlanOptions(
        max_failed_batches=s.max_failed_batches,
        max_failed_subtasks_per_batch=s.max_failed_subtasks_per_batch,
        max_generation_attempts=s.max_generation_attempts,
        retained_batch_records=s.retained_batch_records,
        max_pending_subtasks=s.max_pending_subtasks,
        heartbeat_timeout_s=s.subtask_heartbeat_timeout_s,
        lost_worker_retries=s.lost_worker_retries,
    )


def open_catalog(settings: Settings) -> Catalog:
    """The catalog with the configured connection pool (taskplan.catalog.poolSize / maxOverflow)."""
    return Catalog(
        settings.resolved_catalog_url,
        pool_size=settings.catalog_pool_size,
        max_overflow=settings.catalog_max_overflow,
    )


STORAGE_LOCATIONS = (
    ("taskplan.deepStore.dir", "deep_store_dir"),
    ("taskplan.ingestion.allowedRoots", "ingestion_allowed_roots"),
    ("taskplan.export.allowedRoots", "export_allowed_roots"),
)


def location_problem(settings: Settings) -> str | None:
    """What is wrong with a configured storage location, if anything: each is a local path or an
    ``s3://bucket/prefix`` URI (normalized: no ``..``, a valid bucket name). Any other ``scheme://`` would
    otherwise be taken for a relative local directory named after it."""
    for key, field_name in STORAGE_LOCATIONS:
        for entry in (part.strip() for part in (getattr(settings, field_name) or "").split(",")):
            if "://" not in entry:
                continue
            if not is_s3(entry):
                return (
                    f"{key} {entry!r}: a location is a local path (no file:// URI) or s3://bucket/prefix "
                    "(S3-compatible stores, GCS interop among them, through s3:// and AWS_ENDPOINT_URL)"
                )
            try:
                parse_s3(entry)
            except BadURIError as exc:
                return f"{key}: {exc}"
    return None


def open_stack(config_file: str | os.PathLike[str] | None = None, settings: Settings | None = None) -> Stack:
    """What a process needs, on a catalog at this code's revision: a process never migrates the catalog
    (`taskplan db upgrade` does, with DDL rights); one behind or ahead stops the process with a message
    naming both revisions."""
    settings = settings or load_settings(config_file)
    problem = location_problem(settings)
    if problem is not None:
        raise SystemExit(f"taskplan cannot start: {problem}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for root in (*settings.allowed_input_roots, *settings.allowed_export_roots):
        root.mkdir(parents=True, exist_ok=True)
    registry = build_registry(settings.plugins)
    log.info("task types: %s", ", ".join(registry.task_types()) or "none")
    catalog = open_catalog(settings)
    try:
        revision = catalog.check_revision()
    except CatalogVersionError as exc:
        catalog.close()
        raise SystemExit(f"taskplan cannot start: {exc}") from None
    log.info("catalog at revision %s", revision)
    return Stack(settings=settings, registry=registry, catalog=catalog)
