"""The controller's segment upkeep: commit consuming segments that reached their flush time, and sweep
what crashes left behind (replacements IN_PROGRESS too long, retired segments' files, orphan files)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from taskplan.catalog import Catalog
from taskplan.data.segments import SegmentManager

log = logging.getLogger(__name__)


class SegmentMaintenance:
    def __init__(
        self,
        manager: SegmentManager,
        catalog: Catalog,
        *,
        interval_s: float = 15.0,
        sweep_interval_s: float = 600.0,
        stale_replacement_ms: int = 3_600_000,
    ) -> None:
        self.manager = manager
        self.catalog = catalog
        self.interval_s = interval_s
        self.sweep_interval_s = sweep_interval_s
        self.stale_replacement_ms = stale_replacement_ms
        self._last_sweep = 0.0

    def run_once(self) -> None:
        sweep = time.monotonic() - self._last_sweep >= self.sweep_interval_s
        for table in self.catalog.list_tables():
            if table.tableType == "REALTIME":
                committed = self.manager.commit_due_segments(table)
                if committed:
                    log.info("%s: committed %s (flush threshold time)", table.tableName, committed)
            if sweep:
                report = self.manager.cleanup(table.tableName, stale_after_ms=self.stale_replacement_ms)
                if report.reverted or report.retired_segments or report.deleted_files:
                    log.info("%s: segment sweep %s", table.tableName, report)
        if sweep:
            self._last_sweep = time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("segment maintenance failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
