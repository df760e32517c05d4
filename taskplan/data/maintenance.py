"""The controller's segment upkeep: commit consuming segments that reached their flush time, sweep what
crashes left behind (replacements IN_PROGRESS too long, retired segments' files, orphan files), and delete
the objects of dropped tables that a failing store kept (every pass; taskplan/data/deletions.py).

Each table, and each dropped table's pending deletion, is upkept on its own: a table whose config or
segments fail (say a REALTIME table saved with a flush threshold that is not a number) is logged with its
name and listed in the pass's report, and every other table is still committed and swept."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from taskplan.catalog import Catalog
from taskplan.data.deletions import DeletionReport, DroppedTableDeleter
from taskplan.data.segments import SegmentManager

log = logging.getLogger(__name__)

COMMIT = "committing due segments"
SWEEP = "the segment sweep"


@dataclass
class MaintenanceReport:
    committed: dict[str, list[str]] = field(default_factory=dict)  # table -> segments committed
    failed: dict[str, str] = field(default_factory=dict)  # table -> what failed (tried again next pass)
    swept: bool = False
    deletions: DeletionReport = field(default_factory=DeletionReport)  # dropped tables' objects


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
        self._last_errors: dict[tuple[str, str], str] = {}  # (table, step) -> its last error
        self.deleter = DroppedTableDeleter(catalog, manager.deep_store)

    def run_once(self) -> MaintenanceReport:
        report = MaintenanceReport(swept=time.monotonic() - self._last_sweep >= self.sweep_interval_s)
        # Names first, then each config on its own: a config that no longer loads fails only its table.
        for name in sorted(self.catalog.table_names()):
            committed = self._guard(report, name, COMMIT, self._commit_due)
            if committed:
                report.committed[name] = committed
            if report.swept:
                self._guard(report, name, SWEEP, self._sweep)
        if report.swept:
            self._last_sweep = time.monotonic()
        try:
            report.deletions = self.deleter.run_pending()  # each on its own; logs those that failed
        except Exception:
            log.exception("segment upkeep: reading the pending deletions of dropped tables failed")
        self._last_errors = {key: e for key, e in self._last_errors.items() if key[0] in report.failed}
        return report

    def _commit_due(self, name: str) -> list[str]:
        table = self.catalog.get_table_config(name)
        if table is None or table.tableType != "REALTIME":
            return []
        committed = self.manager.commit_due_segments(table)
        if committed:
            log.info("%s: committed %s (flush threshold time)", name, committed)
        return committed

    def _sweep(self, name: str) -> list[str]:
        report = self.manager.cleanup(name, stale_after_ms=self.stale_replacement_ms)
        if report.reverted or report.retired_segments or report.deleted_files:
            log.info("%s: segment sweep %s", name, report)
        return report.retired_segments

    def _guard(
        self, report: MaintenanceReport, name: str, what: str, step: Callable[[str], list[str]]
    ) -> list[str]:
        try:
            return step(name)
        except Exception as exc:
            error = f"{what}: {type(exc).__name__}: {exc}"
            report.failed[name] = error
            # Each pass logs the failing table; the traceback only when its error is new.
            first = self._last_errors.get((name, what)) != error
            self._last_errors[(name, what)] = error
            log.error("segment upkeep of table %s failed, %s", name, error, exc_info=exc if first else None)
            return []

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once)  # logs each table that failed
            except Exception:
                log.exception("segment maintenance failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
