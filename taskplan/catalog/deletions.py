"""Deep-store objects of dropped tables still to be deleted (``tp_pending_deletions``, SQL only).

A drop records them in its own transaction (:func:`record_deletion`, called by
:meth:`SegmentCatalog.drop_table`), so a drop that commits always leaves a record, and one that rolls back
none. Whoever deletes the objects clears the record (:meth:`PendingDeletions.clear`): the API right after the
drop, or the segment upkeep, which retries the rest every pass (taskplan/data/deletions.py).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, delete, select, update

from taskplan.catalog.schema import pending_deletions

if TYPE_CHECKING:
    from taskplan.catalog.catalog import Catalog

_ERROR_MAX = 2000


@dataclass(frozen=True)
class PendingDeletion:
    deletion_id: str
    table_name: str
    table_created_ms: int  # the dropped incarnation
    dropped_ms: int
    store_uri: str  # the deep store the keys are relative to
    keys: tuple[str, ...]  # object keys; one ending in "/" is a whole directory of the drop's own
    attempts: int
    last_error: str | None


def record_deletion(
    conn: Connection, table: str, table_created_ms: int, dropped_ms: int, store_uri: str, keys: list[str]
) -> str:
    """Record, in the caller's transaction, that ``keys`` are to be deleted; the record's id."""
    deletion_id = uuid.uuid4().hex
    conn.execute(
        pending_deletions.insert().values(
            deletion_id=deletion_id,
            table_name=table,
            table_created_ms=table_created_ms,
            dropped_ms=dropped_ms,
            store_uri=store_uri,
            keys_json=json.dumps(sorted(set(keys))),
            attempts=0,
        )
    )
    return deletion_id


class PendingDeletions:
    def __init__(self, catalog: Catalog) -> None:
        self.engine = catalog.engine

    def all(self) -> list[PendingDeletion]:
        """Every pending deletion, oldest drop first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(pending_deletions).order_by(
                    pending_deletions.c.dropped_ms, pending_deletions.c.deletion_id
                )
            ).all()
        return [_pending(r) for r in rows]

    def get(self, deletion_id: str) -> PendingDeletion | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(pending_deletions).where(pending_deletions.c.deletion_id == deletion_id)
            ).first()
        return None if row is None else _pending(row)

    def clear(self, deletion_id: str) -> None:
        """The objects are gone: forget the record."""
        with self.engine.begin() as conn:
            conn.execute(delete(pending_deletions).where(pending_deletions.c.deletion_id == deletion_id))

    def failed(self, deletion_id: str, error: str) -> None:
        """An attempt failed: count it and keep its error."""
        with self.engine.begin() as conn:
            conn.execute(
                update(pending_deletions)
                .where(pending_deletions.c.deletion_id == deletion_id)
                .values(attempts=pending_deletions.c.attempts + 1, last_error=error[:_ERROR_MAX])
            )


def _pending(r: Row[Any]) -> PendingDeletion:
    return PendingDeletion(
        deletion_id=r.deletion_id,
        table_name=r.table_name,
        table_created_ms=int(r.table_created_ms),
        dropped_ms=int(r.dropped_ms),
        store_uri=r.store_uri,
        keys=tuple(json.loads(r.keys_json)),
        attempts=int(r.attempts),
        last_error=r.last_error,
    )
