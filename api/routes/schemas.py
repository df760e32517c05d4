"""Pinot's schema endpoints."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path

from taskplan.api.auth import Permission, PrincipalDep, require, require_table
from taskplan.api.deps import CatalogDep
from taskplan.api.errors import ERROR_RESPONSES
from taskplan.api.models import StatusResponse
from taskplan.catalog import SchemaNotFoundError
from taskplan.models.table import Schema
from taskplan.names import TableRef

router = APIRouter(prefix="/schemas", tags=["schemas"], responses=ERROR_RESPONSES)
SchemaName = Annotated[str, Path(max_length=128, examples=["myTable"])]


@router.post("", response_model=StatusResponse, summary="Add or replace a schema")
async def add_schema(
    schema: Schema,
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> StatusResponse:
    # A schema belongs to the tables of its raw name; the name is raw, even when it ends in _OFFLINE.
    require(principal, Permission.CREATE, TableRef(schema.schemaName))
    await asyncio.to_thread(catalog.put_schema, schema)
    return StatusResponse(status=f"{schema.schemaName} successfully added")


@router.get("", response_model=list[str], summary="Schema names")
async def list_schemas(
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> list[str]:
    names = await asyncio.to_thread(catalog.list_schema_names)
    return sorted(n for n in names if principal.may(Permission.READ, TableRef(n)))


@router.get("/{schemaName}", response_model=Schema, summary="A schema", response_model_exclude_none=True)
async def get_schema(
    schemaName: SchemaName,
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> Schema:
    require_table(principal, Permission.READ, TableRef(schemaName), missing=SchemaNotFoundError(schemaName))
    return await asyncio.to_thread(catalog.require_schema, schemaName)
