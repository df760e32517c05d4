"""The API's probes: liveness answers while the process serves; readiness names what is missing (here a
catalog whose database cannot be reached: a PostgreSQL URL on a port nobody serves). Both are open when
principals are configured, as /health is."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy
from temporalio.client import Client

from taskplan.catalog import Catalog
from tests.chaos.cluster import free_port
from tests.support.api import api_client

PRINCIPALS = {
    "controller.admin.access.control.principals": "admin",
    "controller.admin.access.control.principals.admin.password": "secret",
}


async def test_liveness_and_readiness(engine: Client, tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.migrate()
    async with api_client(engine, catalog, PRINCIPALS) as http:
        assert (await http.get("/tables")).status_code == 401  # credentials are on
        live = await http.get("/health/liveness")
        assert (live.status_code, live.text) == (200, "OK")
        ready = await http.get("/health/readiness")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "ready": True,
            "checks": {"temporal": "ok", "controller": "ok", "catalog": "ok"},
        }

        catalog.engine = sqlalchemy.create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
        ready = await http.get("/health/readiness")
        assert ready.status_code == 503
        body = ready.json()
        assert body["checks"]["temporal"] == "ok" and body["checks"]["controller"] == "ok"
        assert body["checks"]["catalog"].startswith("the catalog is not reachable: OperationalError")
        assert body["error"].startswith("not ready: catalog: the catalog is not reachable")
        assert (await http.get("/health/liveness")).status_code == 200  # alive all the same
