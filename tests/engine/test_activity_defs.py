"""The workflows' typed activity definitions (workflows/activity_defs.py) and the workers' implementations
cannot drift apart: every definition has an implementation registered on the controller or a minion worker,
under the same name, with the same parameters, types and sync/async kind, and the workers register nothing a
workflow has no definition for."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.activity import _Definition  # the SDK's reader of @activity.defn (what the Worker uses)
from temporalio.client import Client

from taskplan.catalog import Catalog
from taskplan.registry import build_registry
from taskplan.settings import Settings
from taskplan.worker import WorkerOptions, build_workers
from taskplan.workflows import activity_defs
from taskplan.workflows.models import NextBatch, NextBatchInput, ProgressionCheck
from tests.support.tasktypes import ALL_SPECS

DEFINITIONS = [
    activity_defs.PlanActivityDefs,
    activity_defs.GenerationActivityDefs,
    activity_defs.SubtaskActivityDefs,
    activity_defs.TriggerActivityDefs,
    activity_defs.ClusterJobActivityDefs,
]


def shape(fn: Callable[..., Any]) -> tuple[Any, ...]:
    """What a workflow relies on: name, parameter names and types, result type, sync or async."""
    definition = _Definition.must_from_callable(fn)
    parameters = [p.name for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    return definition.name, parameters, definition.arg_types, definition.ret_type, definition.is_async


def defined() -> dict[str, tuple[Any, ...]]:
    found = {}
    for cls in DEFINITIONS:
        for _, fn in inspect.getmembers(cls, inspect.isfunction):
            if _Definition.from_callable(fn) is not None:
                found[_Definition.must_from_callable(fn).name or ""] = shape(fn)
    return found


async def registered(client: Client, settings: Settings, catalog: Catalog) -> list[tuple[Any, ...]]:
    """What the workers of ``worker.py --role both`` register (built, never run)."""
    # A client of its own: the SDK allows one worker per task queue and client, and the session's client
    # has the engine's.
    own = await Client.connect(client.service_client.config.target_host, namespace=client.namespace)
    registry = build_registry(ALL_SPECS, entry_points_group=None)
    workers = build_workers(own, settings, registry, catalog, WorkerOptions(role="both"), catalog=catalog)
    return [shape(fn) for worker in workers for fn in worker.config().get("activities", [])]


def test_the_definitions_cover_every_activity_a_workflow_starts() -> None:
    assert set(defined()) == {
        "next_batch",
        "record_batch_end",
        "record_plan_end",
        "generate_one_shot",
        "validate_task_configs",
        "run_subtask",
        "run_scheduled_trigger",
        "run_cluster_job",
        "reconcile_schedules",
    }


async def test_every_definition_is_implemented_as_defined(
    temporal_client: Client, settings: Settings, tables: Catalog
) -> None:
    implemented = {entry[0]: entry for entry in await registered(temporal_client, settings, tables)}
    assert implemented == defined()


def test_a_renamed_or_retyped_implementation_is_caught() -> None:
    """The comparison above sees a different name, parameter, type or kind (a test of the test)."""

    class Renamed:
        @activity.defn(name="next_batches")
        def next_batch(self, step: NextBatchInput) -> NextBatch:
            raise NotImplementedError

    class Retyped:
        @activity.defn(name="next_batch")
        def next_batch(self, step: ProgressionCheck) -> NextBatch:
            raise NotImplementedError

    class MadeAsync:
        @activity.defn(name="next_batch")
        async def next_batch(self, step: NextBatchInput) -> NextBatch:
            raise NotImplementedError

    expected = defined()["next_batch"]
    assert shape(activity_defs.PlanActivityDefs().next_batch) == expected
    for changed in (Renamed, Retyped, MadeAsync):
        assert shape(changed().next_batch) != expected, changed.__name__
