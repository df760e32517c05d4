"""Shared fixtures: a real Temporal dev server for the session, fresh task queues per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from taskplan.binaries import temporal_cli
from taskplan.names import SearchAttributes


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SearchAttributes.ALL,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    """A client with the project's data converter (pydantic, camelCase JSON)."""
    return await Client.connect(
        temporal_env.client.service_client.config.target_host, data_converter=pydantic_data_converter
    )


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"
