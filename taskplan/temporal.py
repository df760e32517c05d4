"""Connecting to Temporal: one data converter (pydantic, camelCase JSON) and the custom search attributes."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.contrib.pydantic import pydantic_data_converter

from taskplan.names import SearchAttributes
from taskplan.settings import Settings
from taskplan.telemetry import client_interceptors, sdk_runtime

log = logging.getLogger(__name__)


async def connect(settings: Settings, *, retries: int = 1, identity: str | None = None) -> Client:
    """Connect with the project's data converter; retry while a just-started server comes up."""
    last: Exception | None = None
    for attempt in range(max(1, retries)):
        try:
            kwargs = {"identity": identity} if identity else {}
            runtime = sdk_runtime(settings)
            if runtime is not None:
                kwargs["runtime"] = runtime  # type: ignore[assignment]  # a Runtime, not a str
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=pydantic_data_converter,
                interceptors=client_interceptors(settings),
                **kwargs,  # type: ignore[arg-type]  # identity and runtime are optional in Client.connect
            )
        except Exception as exc:  # the server may still be starting
            last = exc
            if attempt + 1 < retries:
                await asyncio.sleep(0.5)
    assert last is not None
    raise last


def dev_server_search_attribute_flags() -> list[str]:
    """`--search-attribute NAME=Type` flags for `temporal server start-dev`."""
    names = {
        SearchAttributeIndexedValueType.KEYWORD: "Keyword",
        SearchAttributeIndexedValueType.INT: "Int",
    }
    flags: list[str] = []
    for key in SearchAttributes.ALL:
        flags += ["--search-attribute", f"{key.name}={names[key.indexed_value_type]}"]
    return flags
