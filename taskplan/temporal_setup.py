"""Cluster preparation (`taskplan setup`) and the check every process runs at start.

Setup is idempotent: it creates the namespace if missing (with a retention), registers the custom search
attributes taskplan writes (taskplan.names.SearchAttributes) that are missing, and checks the result.
The check (namespace exists, every attribute registered with its type) runs at each process start and
names what is missing and the command that fixes it. Temporal Cloud has no operator API for these: setup
then prints the `tcld` commands to run instead (README, "Production Temporal").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from taskplan.names import SearchAttributes, search_attribute_type_name
from taskplan.settings import Settings

SETUP_COMMAND = "taskplan setup"
# Calls on a namespace just registered fail with NOT_FOUND until every frontend's namespace cache has it.
NEW_NAMESPACE_WAIT_S = 60.0
# How Temporal Cloud (and a role without operator rights) answers the operator API.
_NO_OPERATOR_API = (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED)


class ClusterNotReady(RuntimeError):
    """The namespace or a search attribute taskplan needs is missing: the message names it and the fix."""


@dataclass(frozen=True)
class Step:
    """One line of setup's report."""

    what: str  # "namespace" or "search attribute"
    name: str
    result: str  # "created ...", "exists", "registered", "already registered", ...


def wanted() -> dict[str, int]:
    """Search attribute name -> its IndexedValueType (the protobuf enum value)."""
    return {key.name: int(key.indexed_value_type) for key in SearchAttributes.ALL}


def tcld_command(namespace: str, names: list[str] | None = None) -> str:
    """The Temporal Cloud command that registers the attributes (the namespace id is name.account)."""
    attributes = wanted()
    flags = " ".join(
        f"--search-attribute {name}={_type_name(attributes[name])}" for name in names or attributes
    )
    return f"tcld namespace search-attributes add --namespace {namespace}.<account> {flags}"


def _type_name(value: int) -> str:
    from temporalio.common import SearchAttributeIndexedValueType

    return search_attribute_type_name(SearchAttributeIndexedValueType(value))


async def namespace_retention_days(client: Client, namespace: str) -> float | None:
    """The namespace's retention in days; None when the namespace does not exist."""
    try:
        answer = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return answer.config.workflow_execution_retention_ttl.seconds / 86400


async def registered_attributes(client: Client, namespace: str) -> dict[str, int] | None:
    """Custom search attributes of the namespace and their types; None where the operator API is not
    available (Temporal Cloud, or a role without it)."""
    try:
        answer = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as exc:
        if exc.status in _NO_OPERATOR_API:
            return None
        raise
    return {name: int(value) for name, value in answer.custom_attributes.items()}


async def _queryable(client: Client, name: str, value_type: int) -> bool:
    """Without the operator API: a visibility query naming an unknown attribute is refused."""
    value = "0" if value_type == IndexedValueType.INDEXED_VALUE_TYPE_INT else "''"
    try:
        await client.count_workflows(f"{name} = {value}")
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            return False
        raise
    return True


async def problems(client: Client, settings: Settings) -> list[str]:
    """What taskplan misses in its namespace, one sentence each; empty when ready."""
    namespace = settings.temporal_namespace
    if await namespace_retention_days(client, namespace) is None:
        return [f"namespace {namespace} does not exist"]
    found = await registered_attributes(client, namespace)
    missing: list[str] = []
    wrong: list[str] = []
    for name, value_type in wanted().items():
        type_name = _type_name(value_type)
        if found is None:
            if not await _queryable(client, name, value_type):
                missing.append(f"{name} ({type_name})")
        elif name not in found:
            missing.append(f"{name} ({type_name})")
        elif found[name] != value_type:
            wrong.append(
                f"search attribute {name} is registered as {_type_name(found[name])}, taskplan needs "
                f"{type_name} (remove it: temporal operator search-attribute remove --name {name})"
            )
    if missing:
        noun = "attribute" if len(missing) == 1 else "attributes"
        wrong.insert(0, f"missing search {noun} " + ", ".join(missing))
    return wrong


async def check_cluster(client: Client, settings: Settings) -> None:
    """Run at every process start: raise ClusterNotReady naming each missing piece and the fix."""
    limit = 3 * settings.temporal_connect_timeout_s
    try:
        found = await asyncio.wait_for(problems(client, settings), limit)
    except TimeoutError:
        raise ClusterNotReady(
            f"Temporal at {settings.temporal_address} did not describe namespace "
            f"{settings.temporal_namespace} and its search attributes within {limit:g}s "
            "(3 x temporal.connectTimeoutSeconds)"
        ) from None
    if found:
        namespace = settings.temporal_namespace
        raise ClusterNotReady(
            f"Temporal at {settings.temporal_address}, namespace {namespace}: " + "; ".join(found) + ". "
            f"Run `{SETUP_COMMAND}` once (on Temporal Cloud, which has no operator API: "
            f"{tcld_command(namespace)}; see the README, Production Temporal)"
        )


async def setup_cluster(client: Client, settings: Settings, retention_days: int) -> list[Step]:
    """Idempotent: create what is missing, leave what exists, then check. Returns what it did."""
    namespace = settings.temporal_namespace
    steps: list[Step] = []
    retention = await namespace_retention_days(client, namespace)
    if retention is None:
        try:
            await client.workflow_service.register_namespace(
                RegisterNamespaceRequest(
                    namespace=namespace,
                    description="taskplan",
                    workflow_execution_retention_period=Duration(seconds=retention_days * 86400),
                )
            )
        except RPCError as exc:
            if exc.status not in _NO_OPERATOR_API:
                raise
            raise ClusterNotReady(
                f"Temporal at {settings.temporal_address} refused to create namespace {namespace} "
                f"({exc.message}): on Temporal Cloud create it with `tcld namespace create --namespace "
                f"{namespace} --retention-days {retention_days} ...` or in the Cloud UI, then register the "
                f"search attributes with {tcld_command(namespace)}"
            ) from None
        steps.append(Step("namespace", namespace, f"created (retention {retention_days} days)"))
    else:
        steps.append(Step("namespace", namespace, f"exists (retention {retention:g} days), left as is"))
    found = await _wait_for_namespace(client, namespace)
    if found is None:
        raise ClusterNotReady(
            f"the operator API of Temporal at {settings.temporal_address} is not available (Temporal "
            f"Cloud?): register the search attributes with {tcld_command(namespace)}"
        )
    to_add = {name: t for name, t in wanted().items() if name not in found}
    if to_add:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace,
                    search_attributes={name: IndexedValueType.ValueType(t) for name, t in to_add.items()},
                )
            )
        except RPCError as exc:
            if exc.status not in _NO_OPERATOR_API:
                raise
            raise ClusterNotReady(
                f"Temporal at {settings.temporal_address} refused to register search attributes "
                f"({exc.message}): register them with {tcld_command(namespace, list(to_add))}"
            ) from None
    for name, value_type in wanted().items():
        result = "registered" if name in to_add else "already registered"
        steps.append(Step("search attribute", name, f"{result} ({_type_name(value_type)})"))
    left = await problems(client, settings)
    if left:
        raise ClusterNotReady("; ".join(left))
    return steps


async def _wait_for_namespace(client: Client, namespace: str) -> dict[str, int] | None:
    deadline = time.monotonic() + NEW_NAMESPACE_WAIT_S
    while True:
        try:
            return await registered_attributes(client, namespace)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
