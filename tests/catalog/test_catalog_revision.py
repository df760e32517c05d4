"""`taskplan db upgrade` migrates the catalog; every other process only checks its revision, on SQLite and
PostgreSQL: a catalog behind or ahead of the code stops the process with both revisions and the command."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from alembic import command

from taskplan.bootstrap import open_stack
from taskplan.catalog import Catalog
from taskplan.catalog.catalog import _alembic_config, code_revision, migration_graph
from taskplan.cli import main
from taskplan.settings import load_settings
from tests.chaos.cluster import free_port
from tests.conftest import POSTGRES_ADMIN_URL


@contextlib.contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """An empty catalog database of its own: a SQLite file, or a PostgreSQL database dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    name = f"taskplan_rev_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def upgrade_to(url: str, revision: str) -> None:
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    engine.dispose()


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_behind_is_refused_upgrade_starts_ahead_is_refused(kind: str, tmp_path: Path) -> None:
    head = code_revision()
    with fresh_database(kind, tmp_path) as url:
        config = tmp_path / "taskplan.properties"
        config.write_text(
            f"taskplan.catalog.url = {url}\ntaskplan.dataDir = {tmp_path / 'data'}\n"
            # Nobody serves this port: a process that passed the catalog check would wait for Temporal.
            f"temporal.address = 127.0.0.1:{free_port()}\n",
            encoding="utf-8",
        )
        settings = load_settings(config, environ={})

        # An empty catalog, then one a release behind: the worker stops before it connects to anything.
        code, _, err = cli("--config", str(config), "worker", "--role", "minion")
        assert code == 1
        assert f"has no schema (revision none, this taskplan needs {head})" in err
        assert "run `taskplan db upgrade`" in err
        upgrade_to(url, "0003")
        code, _, err = cli("--config", str(config), "worker", "--role", "minion")
        assert code == 1
        assert f"is at revision 0003, behind this taskplan's {head}: run `taskplan db upgrade`" in err
        with pytest.raises(SystemExit, match="behind"):  # the API opens its stack the same way
            open_stack(settings=settings)

        code, out, err = cli("--config", str(config), "db", "upgrade")
        assert code == 0, err
        assert f"upgraded from revision 0003 to {head}" in out
        code, out, _ = cli("--config", str(config), "db", "upgrade")
        assert (code, f"already at revision {head}, nothing to do" in out) == (0, True)
        assert cli("--config", str(config), "db", "revision")[0] == 0
        stack = open_stack(settings=settings)  # starts: the check passes, and it ran no DDL
        assert stack.catalog.revision() == head
        assert stack.catalog.engine.pool.size() == settings.catalog_pool_size  # type: ignore[attr-defined]
        stack.catalog.close()

        # A newer taskplan upgraded the catalog: this one refuses it rather than write an unknown schema.
        catalog = Catalog(url)
        with catalog.engine.begin() as conn:
            conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = '0099'"))
        catalog.close()
        code, _, err = cli("--config", str(config), "worker", "--role", "minion")
        assert code == 1
        assert f"is at revision 0099, ahead of this taskplan's {head}" in err
        assert cli("--config", str(config), "db", "revision")[0] == 1


def test_pool_sizes_are_properties(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        environ={
            "TASKPLAN_DATADIR": str(tmp_path),
            "TASKPLAN_CATALOG_POOLSIZE": "3",
            "TASKPLAN_CATALOG_MAXOVERFLOW": "1",
        },
    )
    assert (settings.catalog_pool_size, settings.catalog_max_overflow) == (3, 1)
    with pytest.raises(ValueError, match=r"taskplan.catalog.poolSize = '0'"):
        load_settings(None, environ={"TASKPLAN_CATALOG_POOLSIZE": "0"})


def test_the_start_up_check_logs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every process checks the revision at start: alembic's "Context impl" and "Will assume ... DDL" INFO
    lines are for `taskplan db upgrade`, not for each start."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    assert catalog.revision() is None
    catalog.migrate()
    with caplog.at_level("DEBUG"):
        assert catalog.check_revision() == code_revision()
    catalog.close()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []


def test_revisions_are_read_as_alembic_reads_them_and_a_process_starts_without_alembic(
    tmp_path: Path,
) -> None:
    """The head and the catalog's revision come from the migration files and ``alembic_version`` directly
    (alembic costs every process about a fifth of its start): the same answers as alembic's, and a
    process that opens its stack on an upgraded catalog never imports alembic."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic_config())
    assert code_revision() == scripts.get_current_head()
    assert set(migration_graph()) == {s.revision for s in scripts.walk_revisions()}
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(url)
    assert catalog.revision() is None
    upgrade_to(url, "0003")
    with catalog.engine.connect() as conn:
        assert catalog.revision() == MigrationContext.configure(conn).get_current_revision() == "0003"
    assert catalog.migrate() == ("0003", code_revision())
    assert catalog.migrate() == (code_revision(), code_revision())
    catalog.close()

    probe = (
        "import sys; from taskplan.bootstrap import open_stack; from taskplan.settings import load_settings; "
        f"open_stack(settings=load_settings(None, environ={{'TASKPLAN_CATALOG_URL': {url!r}, "
        f"'TASKPLAN_DATADIR': {str(tmp_path / 'data')!r}}})); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
