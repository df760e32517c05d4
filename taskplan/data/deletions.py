"""Deleting the deep-store objects of dropped tables, until they are all gone.

A drop records what is to be deleted in its own catalog transaction (``tp_pending_deletions``, see
taskplan/catalog/deletions.py): on a local store the directory the drop moved the table's files to (a name
of the drop's own), on a remote one the key of every segment object the catalog named. The API deletes them
right after the drop commits and clears the record; what a failing store (or a crash) kept is retried by
the segment upkeep every pass (taskplan/data/maintenance.py), each record on its own, until it is gone.

A table created again under the name must never lose an object of its own. Segment keys carry no
incarnation (``<table>/<segment>.parquet``, deterministic so that a retried subtask rewrites the same key),
and a new incarnation ingesting the same files writes the same keys. So a retry deletes an object only if
it is the dropped incarnation's:
- no table of the name exists: every object under ``<table>/`` is a dropped incarnation's (a late writer
  fails to record its segment and deletes its own object), orphans of crashed writers included. The prefix
  is listed first and the catalog read after, so no new table existed when the objects were listed;
- a table of the name exists again: only the keys recorded at the drop, and of those only an object that
  the new table's catalog does not name and that was last modified before the new table was created (a
  second early, for the store's whole-second LastModified). The rest is the new table's, or an orphan its
  own sweep deletes (taskplan/data/segments.py, ``cleanup``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from taskplan.catalog import Catalog
from taskplan.catalog.deletions import PendingDeletion
from taskplan.data.deepstore import DeepStore
from taskplan.storage import StorageError, StorageUnavailableError

log = logging.getLogger(__name__)

LAST_MODIFIED_SLACK_S = 1.0  # S3's LastModified is whole seconds: an object may be up to this much younger


@dataclass
class DeletionReport:
    deleted: dict[str, int] = field(default_factory=dict)  # dropped table -> objects deleted
    kept: dict[str, int] = field(default_factory=dict)  # dropped table -> objects left to a new table
    failed: dict[str, str] = field(default_factory=dict)  # dropped table -> the store's error


class DroppedTableDeleter:
    def __init__(self, catalog: Catalog, deep_store: DeepStore) -> None:
        self.catalog = catalog
        self.deep_store = deep_store

    def run_pending(self) -> DeletionReport:
        """Try every pending deletion once; one that fails is logged, counted and tried on the next pass,
        and does not keep the others from theirs (but a store that does not answer at all is not asked
        again in the same pass: each try would wait out the client's retries)."""
        report = DeletionReport()
        down: StorageUnavailableError | None = None
        for pending in self.catalog.deletions.all():
            if down is not None:  # the store did not answer this pass: the rest waits for the next one
                report.failed[pending.table_name] = f"not tried, the store did not answer: {down}"
                continue
            try:
                deleted, kept = self.run(pending)
            except (StorageError, OSError) as exc:
                if isinstance(exc, StorageUnavailableError):
                    down = exc
                report.failed[pending.table_name] = str(exc)
                log.warning(
                    "objects of the dropped table %s under %s still not deleted (attempt %d): %s",
                    pending.table_name, pending.store_uri, pending.attempts + 1, exc,
                )  # fmt: skip
                continue
            report.deleted[pending.table_name] = report.deleted.get(pending.table_name, 0) + deleted
            report.kept[pending.table_name] = report.kept.get(pending.table_name, 0) + kept
            log.info(
                "deleted %d objects of the dropped table %s (%d left to the table created again)",
                deleted, pending.table_name, kept,
            )  # fmt: skip
        return report

    def run(self, pending: PendingDeletion) -> tuple[int, int]:
        """Delete what ``pending`` names and clear it; (objects deleted, objects left to a table created
        again under the name). Raises StorageError (or OSError) if the store fails: the record stays, with
        the error and one more attempt counted."""
        store = self.deep_store.store
        if pending.store_uri != store.uri:
            error = StorageError(
                f"the objects of {pending.table_name} were in the deep store {pending.store_uri}, not in "
                f"this process's {store.uri}: delete them there by hand, then this record "
                f"(tp_pending_deletions, deletion_id {pending.deletion_id})"
            )
            self.catalog.deletions.failed(pending.deletion_id, str(error))
            raise error
        try:
            counts = self._delete(pending)
        except (StorageError, OSError) as exc:
            self.catalog.deletions.failed(pending.deletion_id, str(exc))
            raise
        self.catalog.deletions.clear(pending.deletion_id)
        return counts

    def _delete(self, pending: PendingDeletion) -> tuple[int, int]:
        store = self.deep_store.store
        deleted = kept = 0
        for prefix in (k for k in pending.keys if k.endswith("/")):
            # A directory of the drop's own (a local store's table directory, moved aside): all of it.
            deleted += store.delete_prefix(prefix)
            if store.list(prefix):
                raise StorageError(f"{store.uri}/{prefix} could not be deleted whole")
        if self.deep_store.is_local:
            return deleted, kept
        keys = {k for k in pending.keys if not k.endswith("/")}
        table = pending.table_name
        listed = store.list(f"{table}/")
        current = self._incarnation(table)  # read after listing: no new table existed when it listed
        if current is None:
            store.delete_keys([info.key for info in listed])
            return deleted + len(listed), kept
        created_ms, named = current
        for info in listed:
            if info.key not in keys:
                continue  # an orphan or an object of the new table: its own sweep decides
            file_name = info.key[len(table) + 1 :]
            if file_name in named or info.last_modified >= created_ms / 1000 - LAST_MODIFIED_SLACK_S:
                kept += 1
            else:
                deleted += int(store.delete(info.key))
        return deleted, kept

    def _incarnation(self, table: str) -> tuple[int, set[str]] | None:
        """The table of the name that exists now: its created_ms and the file names its segments have."""
        created = self.catalog.table_times().get(table)
        if created is None:
            return None
        return created[0], {s.file_name for s in self.catalog.segments.all_segments(table)}
