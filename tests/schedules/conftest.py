from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from taskplan.catalog import Catalog
from tests.support.api import api_client


@pytest.fixture
async def http(engine: Client, tables: Catalog) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine, tables) as client:
        yield client
