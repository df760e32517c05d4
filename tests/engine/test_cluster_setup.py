"""`taskplan setup` against a Temporal dev server started without any `--search-attribute` flag, as a
real cluster starts: processes refuse to start naming what is missing and the command; setup fixes it,
a second run changes nothing, and then a plan completes, run by a worker whose PostgreSQL role cannot
create anything (the catalog was upgraded beforehand by `taskplan db upgrade`)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from taskplan.binaries import temporal_cli
from taskplan.bootstrap import Stack
from taskplan.cli import main
from taskplan.registry import build_registry
from taskplan.runtime import wait_for_port
from taskplan.settings import Settings
from taskplan.temporal import connect
from taskplan.temporal_setup import namespace_retention_days
from tests.chaos.cluster import free_port
from tests.conftest import POSTGRES_ADMIN_URL
from tests.support.deployment import refused, run_plan, start_api, start_worker, stop


@pytest.fixture(scope="module")
def bare_temporal() -> Iterator[str]:
    """A dev server with no custom search attribute: what `taskplan setup` meets on a new cluster."""
    port = free_port()
    server = subprocess.Popen(
        [temporal_cli(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
         "--headless", "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port("127.0.0.1", port, 60, server)
        address = f"127.0.0.1:{port}"

        async def answering() -> None:  # its frontend serves the `default` namespace: ready
            client = await connect(Settings.model_validate({"temporal.address": address}), retries=120)
            for _ in range(240):
                if await namespace_retention_days(client, "default") is not None:
                    return
                await asyncio.sleep(0.25)

        asyncio.run(answering())
        yield address
    finally:
        server.terminate()
        server.wait(30)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def app_role_database() -> Iterator[tuple[str, str]]:
    """A PostgreSQL database of its own (the admin's URL) and a role that may read and write its tables
    but not create any (its URL); both dropped after."""
    name = f"taskplan_setup_{uuid.uuid4().hex[:10]}"
    role = f"taskplan_app_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield (
            f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
            f"postgresql+psycopg://{role}@127.0.0.1:5432/{name}",
        )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        admin.dispose()


def grant_data_rights(admin_url: str, app_url: str) -> None:
    role = sqlalchemy.engine.make_url(app_url).username
    engine = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        conn.exec_driver_sql(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"'
        )
        conn.exec_driver_sql(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    engine.dispose()
    app = sqlalchemy.create_engine(app_url)
    with pytest.raises(sqlalchemy.exc.ProgrammingError, match="permission denied"), app.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE no_ddl_here (i int)")  # the role really has no DDL rights
    app.dispose()


@pytest.mark.postgres
def test_start_refused_then_setup_then_a_plan_runs_without_ddl_rights(
    bare_temporal: str, tmp_path: Path
) -> None:
    with app_role_database() as (admin_url, app_url):
        config = tmp_path / "admin.properties"
        config.write_text(
            f"temporal.address = {bare_temporal}\ntaskplan.catalog.url = {admin_url}\n"
            f"taskplan.dataDir = {tmp_path / 'data'}\n",
            encoding="utf-8",
        )
        code, out, err = cli("--config", str(config), "db", "upgrade")
        assert code == 0, err
        grant_data_rights(admin_url, app_url)
        env = {
            "TEMPORAL_ADDRESS": bare_temporal,
            "TASKPLAN_CATALOG_URL": app_url,
            "TASKPLAN_DATADIR": str(tmp_path / "data"),
        }

        # The namespace exists (the dev server's `default`), its search attributes do not.
        output, _ = refused(["worker.py", "--role", "both"], env, tmp_path / "refused.log")
        assert "taskplan cannot start: Temporal at" in output
        assert "missing search attributes TaskPlanId (Keyword), TaskPlanTable (Keyword)" in output
        assert "TaskPlanBatchSubtasks (Int)" in output
        assert "Run `taskplan setup` once" in output
        assert "tcld namespace search-attributes add" in output

        code, out, err = cli("--config", str(config), "setup")
        assert code == 0, err
        assert "exists (retention 1 days), left as is" in out
        assert "registered (Keyword)" in out and "TaskPlanBatchSubtasks" in out
        assert "already registered" not in out
        code, out, err = cli("--config", str(config), "setup")
        assert code == 0, err
        assert "nothing to do" in out and out.count("already registered") == 7

        port = free_port()
        worker = start_worker(env, tmp_path / "worker.log")
        api = start_api({**env, "CONTROLLER_PORT": str(port)}, port, tmp_path / "api.log")
        try:
            plan = run_plan(f"http://127.0.0.1:{port}", api, tmp_path / "api.log")
        finally:
            stop(api, worker)
        assert plan["status"] == "COMPLETED", plan
        assert len(plan["batches"]) == 2


async def test_setup_creates_a_missing_namespace_with_its_retention(
    bare_temporal: str, tmp_path: Path
) -> None:
    namespace = f"taskplan-{uuid.uuid4().hex[:8]}"
    settings = Settings.model_validate(
        {
            "temporal.address": bare_temporal,
            "temporal.namespace": namespace,
            "taskplan.dataDir": str(tmp_path),
        }
    )
    stack = Stack(settings, build_registry(""), catalog=None)  # type: ignore[arg-type]  # unused by connect
    with pytest.raises(SystemExit, match=f"namespace {namespace} does not exist. Run `taskplan setup` once"):
        await stack.connect()

    config = tmp_path / "taskplan.properties"
    config.write_text(
        f"temporal.address = {bare_temporal}\ntemporal.namespace = {namespace}\n", encoding="utf-8"
    )
    code, out, err = await asyncio.to_thread(cli, "--config", str(config), "setup", "--retention-days", "3")
    assert code == 0, err
    assert "created (retention 3 days)" in out
    client = await connect(settings)
    assert await namespace_retention_days(client, namespace) == 3
    code, out, _ = await asyncio.to_thread(cli, "--config", str(config), "setup")
    assert code == 0 and "nothing to do" in out and "exists (retention 3 days), left as is" in out
    await stack.connect()  # a process starts now
