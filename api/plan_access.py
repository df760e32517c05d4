"""Who may see and steer a plan, for the routes beyond the documented plan endpoints (stopping a batch, the
plan page): a plan of a table that is not the principal's, or of a dropped table, is as missing (404)."""

from __future__ import annotations

import asyncio

from taskplan.api.auth import Permission, Principal, require_table
from taskplan.catalog import Catalog
from taskplan.models.errors import PlanNotFoundError
from taskplan.names import parse_plan_id, parse_table_name


async def require_plan_table(
    catalog: Catalog, plan_id: str, principal: Principal, permission: Permission = Permission.READ
) -> None:
    """404 (PlanNotFoundError) unless the plan's table exists and is the principal's; 403 without the
    permission on it."""
    table, _ = parse_plan_id(plan_id)
    require_table(
        principal, permission, parse_table_name(table, typed=True), missing=PlanNotFoundError(plan_id)
    )
    if await asyncio.to_thread(catalog.get_table_config, table) is None:
        raise PlanNotFoundError(plan_id)


def may_steer(principal: Principal, plan_id: str, permission: Permission) -> bool:
    """Whether the principal may abort a plan (DELETE) or stop its batch (UPDATE): the plan page shows the
    buttons only then."""
    table, _ = parse_plan_id(plan_id)
    return principal.may(permission, parse_table_name(table, typed=True))
