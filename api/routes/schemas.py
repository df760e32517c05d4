"""Pinot's schema endpoints."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path

from api.auth import Permission, PrincipalDep, readable, require
from api.deps import CatalogDep
from api.errors import ERROR_RESPONSES
from api.models import StatusResponse
from taskplan.models.table import Schema

router = APIRouter(prefix="/schemas", tags=["schemas"], responses=ERROR_RESPONSES)
SchemaName = Annotated[str, Path(max_length=128, examples=["myTable"])]


@router.post("", response_model=StatusResponse, summary="Add or replace a schema")
async def add_schema(
    schema: Schema,
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> StatusResponse:
    require(principal, Permission.CREATE, schema.schemaName)  # a schema belongs to its table
    await asyncio.to_thread(catalog.put_schema, schema)
    return StatusResponse(status=f"{schema.schemaName} successfully added")


@router.get("", response_model=list[str], summary="Schema names")
async def list_schemas(
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> list[str]:
    return sorted(readable(principal, await asyncio.to_thread(catalog.list_schema_names)))


@router.get("/{schemaName}", response_model=Schema, summary="A schema", response_model_exclude_none=True)
async def get_schema(
    schemaName: SchemaName,
    catalog: CatalogDep,
    principal: PrincipalDep,
) -> Schema:
    require(principal, Permission.READ, schemaName)
    return await asyncio.to_thread(catalog.require_schema, schemaName)
