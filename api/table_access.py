"""The tables a request names and may act on, shared by the table, segment and task routes (route modules
do not import each other)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from taskplan.api.auth import Permission, Principal, require_table
from taskplan.catalog import Catalog, TableNotFoundError
from taskplan.models.table import TableConfig
from taskplan.names import TABLE_TYPES, InvalidNameError, TableRef, TableType

# Pinot's ``type`` parameter: OFFLINE or REALTIME, in any case (``offline`` too).
TableTypeQuery = Annotated[str | None, Query(alias="type", max_length=20, examples=["OFFLINE"])]


def table_type_of(value: str | None) -> TableType | None:
    """A ``type`` parameter, case-insensitive; anything but OFFLINE or REALTIME is a 400 naming it."""
    if value is None or value == "":
        return None
    upper = value.strip().upper()
    for table_type in TABLE_TYPES:
        if upper == table_type:
            return table_type
    raise InvalidNameError(f"invalid table type {value!r}: use OFFLINE or REALTIME")


def resolve_tables(
    catalog: Catalog,
    principal: Principal,
    permission: Permission,
    table: TableRef,
    table_type: str | None = None,
) -> list[TableConfig]:
    """The tables ``table`` names (one type, or every type of a raw name), optionally of one type, that the
    principal may act on this way. 404 if none; a table that is not the principal's answers the same 404."""
    table_type = table_type_of(table_type)
    missing = TableNotFoundError(table.name if table_type is None else f"{table.raw}_{table_type}")
    require_table(principal, permission, table, missing=missing)
    wanted = [table.table_type] if table.table_type is not None else list(TABLE_TYPES)
    if table_type is not None:
        wanted = [t for t in wanted if t == table_type]
    found = [t for t in catalog.tables_of_raw_name(table.raw) if t.tableType in wanted]
    if not found:
        raise missing
    return found
