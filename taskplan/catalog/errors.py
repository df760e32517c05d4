"""Catalog errors; each names the object it is about."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError


class CatalogError(Exception):
    """Base of the catalog's errors."""


class CatalogVersionError(CatalogError):
    """The catalog's schema revision is not this code's: behind (run the upgrade) or ahead (newer code)."""


class TableNotFoundError(CatalogError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"table {name} does not exist")
        self.name = name


class TableExistsError(CatalogError):
    def __init__(self, name: str) -> None:
        super().__init__(f"table {name} already exists")
        self.name = name


class SchemaNotFoundError(CatalogError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"schema {name} does not exist")
        self.name = name


class SegmentConflictError(CatalogError):
    """A replacement cannot start or end: its segments are gone or taken by another replacement."""


class TableDroppedError(TableNotFoundError):
    """The table was dropped (or dropped and created again) while data was being written to it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.args = (f"table {name} was dropped while data was being written to it: nothing was stored",)


class LineageNotFoundError(CatalogError, LookupError):
    def __init__(self, table: str, lineage_id: str) -> None:
        super().__init__(f"segment lineage {lineage_id} of table {table} does not exist")


def is_unavailable(exc: BaseException) -> bool:
    """Whether a catalog call failed because the database was out of reach for a moment, not because of
    what it asked: the server restarting or failing over, a connection dropped or refused, a link cut. The
    same call may succeed once it is back (the pool's pre-ping replaces the dead connections)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)
