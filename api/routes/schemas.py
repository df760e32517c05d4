"""Pinot's schema endpoints."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ValidationError

from taskplan.api.auth import Permission, PrincipalDep, require, require_table
from taskplan.api.deps import CatalogDep
from taskplan.api.errors import ERROR_RESPONSES, ApiError
from taskplan.catalog import SchemaNotFoundError
from taskplan.models.table import Schema
from taskplan.names import TableRef

router = APIRouter(prefix="/schemas", tags=["schemas"], responses=ERROR_RESPONSES)
SchemaName = Annotated[str, Path(max_length=128, examples=["myTable"])]


# The top-level keys of Pinot's Schema: anything else in a request is an unrecognized property.
PINOT_SCHEMA_KEYS = frozenset(
    {
        "schemaName", "dimensionFieldSpecs", "metricFieldSpecs", "dateTimeFieldSpecs", "timeFieldSpec",
        "complexFieldSpecs", "primaryKeyColumns", "enableColumnBasedNullHandling", "description", "tags",
    }
)  # fmt: skip
MAX_SCHEMA_BYTES = 1 << 20


class ConfigSuccessResponse(BaseModel):
    """Pinot's ConfigSuccessResponse."""

    status: str
    unrecognizedProperties: dict[str, Any]


async def _schema_text(request: Request) -> str:
    """The schema JSON: the body, or (multipart, as Pinot's form upload) the first form part."""
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        form = await request.form()
        part = next(iter(form.values()), None)
        if part is None:
            raise ApiError(400, "the multipart body has no part: send the schema as a file or a field")
        raw = part.encode() if isinstance(part, str) else await part.read(MAX_SCHEMA_BYTES + 1)
    else:
        raw = await request.body()
    if len(raw) > MAX_SCHEMA_BYTES:
        raise ApiError(413, f"the schema is larger than {MAX_SCHEMA_BYTES} bytes")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ApiError(400, "the schema is not UTF-8 text") from None


def _parse(text: str) -> tuple[Schema, dict[str, Any]]:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"Invalid schema: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid schema: expected a JSON object")
    try:
        schema = Schema.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else str(e["msg"])
            for e in exc.errors()[:5]
        )
        raise ApiError(400, f"Invalid schema: {problems}") from None
    unrecognized = {f"/{k}": v for k, v in body.items() if k not in PINOT_SCHEMA_KEYS}
    return schema, unrecognized


@router.post(
    "",
    response_model=ConfigSuccessResponse,
    summary="Add a schema (JSON body, or multipart as Pinot's form upload)",
    openapi_extra={
        "requestBody": {
            "content": {
                # Schema is in the components: GET /schemas/{schemaName} answers with it.
                "application/json": {"schema": {"$ref": "#/components/schemas/Schema"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"schema": {"type": "string", "format": "binary"}},
                    }
                },
            },
            "required": True,
        }
    },
)
async def add_schema(
    request: Request,
    catalog: CatalogDep,
    principal: PrincipalDep,
    override: Annotated[bool, Query()] = True,
    force: Annotated[bool, Query()] = False,
) -> ConfigSuccessResponse:
    """Pinot's addSchema: ``override`` (default true) replaces an existing schema, false answers 409;
    ``force`` is accepted (taskplan has no backward-incompatibility rule to skip)."""
    schema, unrecognized = _parse(await _schema_text(request))
    # A schema belongs to the tables of its raw name; the name is raw, even when it ends in _OFFLINE.
    require(principal, Permission.CREATE, TableRef(schema.schemaName))
    if not override and await asyncio.to_thread(catalog.get_schema, schema.schemaName) is not None:
        raise ApiError(409, f"Schema: {schema.schemaName} already exists")  # Pinot's words
    await asyncio.to_thread(catalog.put_schema, schema)
    return ConfigSuccessResponse(
        status=f"{schema.schemaName} successfully added", unrecognizedProperties=unrecognized
    )


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
