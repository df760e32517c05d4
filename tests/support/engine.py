"""In-process controller + minion workers on the session's dev server, for engine tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from taskplan.models.table import Schema, TableConfig
from workflows.models import PlanOptions

T = TypeVar("T")

# Short heartbeat timeout so a killed minion is noticed within seconds.
TEST_OPTIONS = PlanOptions(heartbeat_timeout_s=3, max_failed_batches=3)


class StaticTables:
    """A table-config source holding configs in memory: the engine tests do not exercise the catalog."""

    def __init__(self) -> None:
        self._tables: dict[str, TableConfig] = {}

    def add(self, name_with_type: str, task_configs: dict[str, dict[str, str]] | None = None) -> TableConfig:
        raw, _, table_type = name_with_type.rpartition("_")
        config = TableConfig.model_validate(
            {"tableName": raw, "tableType": table_type, "task": {"taskTypeConfigsMap": task_configs or {}}}
        )
        self._tables[config.tableName] = config
        return config

    def get_table_config(self, table_name_with_type: str) -> TableConfig | None:
        return self._tables.get(table_name_with_type)

    def get_schema_for_table(self, table_name_with_type: str) -> Schema | None:
        return None


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
