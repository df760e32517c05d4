"""In-process controller + minion workers on the session's dev server, for engine tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from taskplan.catalog import Catalog
from taskplan.models.plan import PlanOptions
from taskplan.models.table import TableConfig

T = TypeVar("T")

# Short heartbeat timeout so a killed minion is noticed within seconds.
TEST_OPTIONS = PlanOptions(heartbeat_timeout_s=3, max_failed_batches=3, blocked_recheck_s=1)


def add_table(
    catalog: Catalog, name_with_type: str, task_configs: dict[str, dict[str, str]] | None = None
) -> str:
    """Register a table (no schema needed by the engine) in the real catalog; returns its name."""
    raw, _, table_type = name_with_type.rpartition("_")
    config = TableConfig.model_validate(
        {"tableName": raw, "tableType": table_type, "task": {"taskTypeConfigsMap": task_configs or {}}}
    )
    catalog.create_table(config)
    return config.tableName


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float = 30.0, interval: float = 0.2) -> T:
    """Retry an async assertion until it passes or the timeout runs out (then re-raise its last error)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except (AssertionError, LookupError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(interval)


def cycle_of(answer: dict[str, str], task_type: str) -> dict[str, Any]:
    """taskplan's trigger cycle of a task type from a ``POST /tasks/schedule`` answer (Pinot's flat map,
    with the cycles as a JSON string under ``cycleResults``)."""
    cycles: dict[str, dict[str, Any]] = json.loads(answer["cycleResults"])
    return cycles[task_type]
