"""OpenAPI links: how the answer of one operation feeds the next (a schema, its table, a plan triggered on
it, read, paused, aborted, the table dropped). They document the usual sequence in `/docs`, and stateful
fuzzers (schemathesis) follow them to reach plans that exist instead of random ids.

Links are declared by method and path; :func:`install_links` adds them to the generated schema under each
source operation's 200 response, naming the target by its operationId (FastAPI derives it from the
function), and refuses a link whose source or target does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI


@dataclass(frozen=True)
class Link:
    name: str
    source: tuple[str, str]  # (method, path) of the operation whose 200 answer is used
    target: tuple[str, str]
    description: str
    parameters: dict[str, str] = field(default_factory=dict)  # target parameter -> runtime expression
    request_body: dict[str, Any] | None = None  # a body template; strings may be runtime expressions


SCHEMA_CREATED = ("post", "/schemas")
TABLE_CREATED = ("post", "/tables")
TRIGGERED = ("post", "/tasks/execute")
GET_PLAN = PLAN_READ = ("get", "/tasks/taskPlans/{planId}")
ABORT_PLAN = PLAN_ABORTED = ("delete", "/tasks/taskPlans/{planId}")
DROP_TABLE = ("delete", "/tables/{tableName}")

LINKS = [
    Link(
        "GetSchema",
        SCHEMA_CREATED,
        ("get", "/schemas/{schemaName}"),
        "The schema just saved.",
        {"schemaName": "$request.body#/schemaName"},
    ),
    Link(
        "CreateTable",
        SCHEMA_CREATED,
        TABLE_CREATED,
        "An OFFLINE table of the schema (a table's raw name is its schema's name).",
        request_body={"tableName": "$request.body#/schemaName", "tableType": "OFFLINE"},
    ),
    Link(
        "GetTable",
        TABLE_CREATED,
        ("get", "/tables/{tableName}"),
        "The table just created.",
        {"tableName": "$request.body#/tableName"},
    ),
    Link(
        "TriggerPlan",
        TABLE_CREATED,
        TRIGGERED,
        "An orchestrated purge plan over the new table (its filter matches no row).",
        request_body={
            "taskType": "SegmentPurgeTask",
            "tableName": "$request.body#/tableName",
            "taskConfigs": {"enableTaskOrchestration": "true", "purgeFilter": "false"},
        },
    ),
    Link(
        "DropTable",
        TABLE_CREATED,
        DROP_TABLE,
        "Drop the table (its plans are stopped and deleted first).",
        {"tableName": "$request.body#/tableName"},
    ),
    Link(
        "GetPlan",
        TRIGGERED,
        GET_PLAN,
        "The plan the trigger started (orchestrated flow: the answer has taskPlanId).",
        {"planId": "$response.body#/taskPlanId"},
    ),
    Link(
        "IsPlanActive",
        TRIGGERED,
        ("get", "/tasks/taskPlans/isActive/{taskPlanId}"),
        "Whether the plan still runs.",
        {"taskPlanId": "$response.body#/taskPlanId"},
    ),
    Link(
        "PausePlan",
        TRIGGERED,
        ("put", "/tasks/taskPlans/{planId}/pause"),
        "Pause the plan: no new batch until resumed.",
        {"planId": "$response.body#/taskPlanId"},
    ),
    Link(
        "AbortPlan",
        TRIGGERED,
        ABORT_PLAN,
        "Abort the plan.",
        {"planId": "$response.body#/taskPlanId"},
    ),
    Link(
        "DropTable",
        TRIGGERED,
        DROP_TABLE,
        "Drop the table the plan works on.",
        {"tableName": "$response.body#/tableNameWithType"},
    ),
    Link(
        "ResumePlan",
        ("put", "/tasks/taskPlans/{planId}/pause"),
        ("put", "/tasks/taskPlans/{planId}/resume"),
        "Resume the paused plan.",
        {"planId": "$response.body#/planId"},
    ),
    Link("AbortPlan", PLAN_READ, ABORT_PLAN, "Abort the plan read.", {"planId": "$response.body#/planId"}),
    Link(
        "GetPlan",
        PLAN_ABORTED,
        GET_PLAN,
        "The aborted plan, until it ends.",
        {"planId": "$response.body#/planId"},
    ),
    Link(
        "DropTable",
        PLAN_ABORTED,
        DROP_TABLE,
        "Drop the table of the aborted plan.",
        {"tableName": "$response.body#/tableNameWithType"},
    ),
]


def add_links(openapi: dict[str, Any], links: list[Link]) -> dict[str, Any]:
    """Add ``links`` to an OpenAPI document (in place; returned for chaining)."""
    paths = openapi["paths"]

    def operation(method: str, path: str) -> dict[str, Any]:
        found: dict[str, Any] | None = paths.get(path, {}).get(method)
        if found is None:
            raise ValueError(f"OpenAPI link names {method.upper()} {path}, which the API does not have")
        return found

    for link in links:
        target = operation(*link.target)
        definition: dict[str, Any] = {"operationId": target["operationId"], "description": link.description}
        if link.parameters:
            definition["parameters"] = dict(link.parameters)
        if link.request_body is not None:
            definition["requestBody"] = link.request_body
            # schemathesis (a vendor extension other readers ignore): send this body as it is, rather than
            # merged into a generated one, so that a fuzzer following the link gets the documented request
            definition["x-schemathesis"] = {"merge_body": False}
        response = operation(*link.source)["responses"]["200"]
        response.setdefault("links", {})[link.name] = definition
    return openapi


def install_links(app: FastAPI, links: list[Link] = LINKS) -> None:
    """Make ``app.openapi()`` (and /openapi.json, /docs) include ``links``."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_links(generate(), links)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema
