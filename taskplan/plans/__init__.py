"""The client side of plans and tasks, shared by the REST API, the worker's background loops, the bench and
the tests, one concern per module:

    starting.py    start a plan (one running per table and task type)
    reading.py     one plan, a table's plans, the active plans
    aborting.py    abort a plan
    snapshots.py   keep the catalog's plan snapshots true (the controller's orchestration poll)
    one_shot.py    the legacy flow: one batch, no plan
    validation.py  check a table config's task configs
    tasks.py       parent tasks and their subtasks (Pinot's task endpoints)
    task_deletion.py  delete tasks: a legacy task whole, a plan's batches only with their plan
    deletion.py    remove a dropped table's plans, expired plans, executions
    visibility.py  what they ask of Temporal's visibility (query strings, a plan's latest run)

Plans live in Temporal; the catalog keeps their snapshots (the active listing) and the task records of
their batches, so every service but the one-shot runner needs the catalog's task store. ``PlanServices``
builds them all once per process (its composition root) over one client and catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.models.plan import PlanOptions
from taskplan.plans.aborting import PlanAborter
from taskplan.plans.deletion import PlanRemover
from taskplan.plans.one_shot import OneShotRunner
from taskplan.plans.reading import PlanReader
from taskplan.plans.snapshots import SnapshotReconciler
from taskplan.plans.starting import PlanStarter
from taskplan.plans.task_deletion import TaskDeleter
from taskplan.plans.tasks import TaskReader

__all__ = [
    "OneShotRunner",
    "PlanAborter",
    "PlanReader",
    "PlanRemover",
    "PlanServices",
    "PlanStarter",
    "SnapshotReconciler",
    "TaskDeleter",
    "TaskReader",
]


@dataclass(frozen=True)
class PlanServices:
    starter: PlanStarter
    reader: PlanReader
    aborter: PlanAborter
    reconciler: SnapshotReconciler
    one_shot: OneShotRunner
    task_reader: TaskReader
    remover: PlanRemover
    task_deleter: TaskDeleter

    @classmethod
    def build(
        cls,
        client: Client,
        catalog: Catalog,
        options: PlanOptions,
        *,
        live_query_timeout_s: float = 0.0,
        reconcile_grace_s: float = 10.0,
    ) -> PlanServices:
        """``options``: the plan defaults (the properties); ``live_query_timeout_s``: how long a running plan
        gets to answer a read before its snapshot answers (0: no limit); ``reconcile_grace_s``: a snapshot
        saved this recently is not corrected from a (possibly lagging) visibility listing."""
        store = catalog.tasks
        reader = PlanReader(client, store, live_query_timeout_s=live_query_timeout_s)
        remover = PlanRemover(client, store)
        return cls(
            starter=PlanStarter(client, store, options),
            reader=reader,
            aborter=PlanAborter(client, store, reader),
            reconciler=SnapshotReconciler(client, store, reader, grace_s=reconcile_grace_s),
            one_shot=OneShotRunner(client, options),
            task_reader=TaskReader(client, store),
            remover=remover,
            task_deleter=TaskDeleter(client, store, remover),
        )
