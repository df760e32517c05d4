"""The catalog: table configs, schemas, cluster configs and named states in SQL.

SQLite file by default (WAL mode, busy timeout: several processes share it), PostgreSQL by URL. Plans live
in Temporal only; the batches of plans have their task records here (taskplan/catalog/tasks.py).
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    make_url,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from taskplan.catalog.deletions import PendingDeletions
from taskplan.catalog.errors import (
    CatalogVersionError,
    SchemaNotFoundError,
    TableExistsError,
    TableNotFoundError,
)
from taskplan.catalog.schema import cluster_configs, schemas, states, tables
from taskplan.catalog.segments import SegmentCatalog
from taskplan.catalog.tasks import TaskStore
from taskplan.clock import now_ms
from taskplan.models.table import Schema, TableConfig
from taskplan.names import split_table_name_with_type

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
PG_MIGRATION_LOCK = 7_314_159  # advisory lock id: one migrating process at a time


def _dump(model: TableConfig | Schema) -> str:
    return model.model_dump_json(exclude_none=True)


UPGRADE_COMMAND = "taskplan db upgrade"


# Alembic is imported only to migrate and to word a version error: importing it costs every process about
# a fifth of its start-up (README, Performance: start-up), and reading the revisions needs none of it.


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _down_revisions(node: ast.expr) -> tuple[str, ...]:
    value = ast.literal_eval(node)
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def migration_graph() -> dict[str, tuple[str, ...]]:
    """Revision -> the revisions it revises, read from the migration files' ``revision`` and
    ``down_revision`` assignments (as alembic reads them, without importing it)."""
    graph: dict[str, tuple[str, ...]] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found: dict[str, ast.expr] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                found[target.id] = value
        if "revision" in found:
            revision = ast.literal_eval(found["revision"])
            graph[revision] = _down_revisions(found["down_revision"]) if "down_revision" in found else ()
    return graph


def code_revision() -> str:
    """The newest migration this code ships (alembic's head)."""
    graph = migration_graph()
    revised = {down for downs in graph.values() for down in downs}
    heads = [revision for revision in graph if revision not in revised]
    if len(heads) == 1:
        return heads[0]
    from alembic.script import ScriptDirectory  # several heads, or none: alembic's own words

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


class Catalog:
    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 20) -> None:
        self.url = url
        self.engine: Engine = _make_engine(url, pool_size, max_overflow)
        self.segments = SegmentCatalog(self)
        self.tasks = TaskStore(self)
        self.deletions = PendingDeletions(self)

    def ping(self) -> None:
        """Raises when the catalog's database cannot be reached (a readiness probe's check)."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- migrations

    def migrate(self) -> tuple[str | None, str]:
        """Bring the schema to the newest revision (``taskplan db upgrade``); safe when several processes
        run it at once. Returns the revisions before and after. Needs DDL rights; nothing else does."""
        with self._migration_lock():
            before = self.revision()
            if before == code_revision():
                return before, before
            from alembic import command

            with self.engine.begin() as conn:
                config = _alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
            return before, self.revision() or code_revision()

    def revision(self) -> str | None:
        """The catalog's revision (its ``alembic_version`` row); None for an empty catalog."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            if len(found) <= 1:
                return found[0] if found else None
            from alembic.runtime.migration import MigrationContext  # several heads: alembic's error

            return MigrationContext.configure(conn).get_current_revision()

    def check_revision(self) -> str:
        """Refuse a catalog behind or ahead of this code: processes start on an upgraded catalog and never
        run DDL themselves. Returns the revision."""
        ours = code_revision()
        theirs = self.revision()
        where = self.engine.url.render_as_string(hide_password=True)
        if theirs == ours:
            return ours
        if theirs is None:
            raise CatalogVersionError(
                f"the catalog {where} has no schema (revision none, this taskplan needs {ours}): "
                f"run `{UPGRADE_COMMAND}` once, with a database role allowed to create tables"
            )
        known = set(migration_graph())
        if theirs in known:
            raise CatalogVersionError(
                f"the catalog {where} is at revision {theirs}, behind this taskplan's {ours}: "
                f"run `{UPGRADE_COMMAND}` (with a database role allowed to alter tables), then start again"
            )
        raise CatalogVersionError(
            f"the catalog {where} is at revision {theirs}, ahead of this taskplan's {ours} (a newer taskplan "
            "upgraded it): run the newer taskplan version here too; this one refuses to start"
        )

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": PG_MIGRATION_LOCK})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_MIGRATION_LOCK})
                    conn.commit()
            return
        database = self.engine.url.database
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ---------------------------------------------------------------- tables

    def table_times(self) -> dict[str, tuple[int, int]]:
        """Table name with type -> (created ms, last modified ms), for Pinot's ``GET /tables?sortType=``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tables.c.name_with_type, tables.c.created_ms, tables.c.updated_ms)
            ).all()
        return {name: (int(created), int(updated)) for name, created, updated in rows}

    def create_table(self, config: TableConfig) -> TableConfig:
        stamp = now_ms()
        raw, table_type = split_table_name_with_type(config.tableName)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(tables).values(
                        name_with_type=config.tableName, raw_name=raw, table_type=table_type,
                        config_json=_dump(config), created_ms=stamp, updated_ms=stamp,
                    )
                )  # fmt: skip
        except IntegrityError:
            raise TableExistsError(config.tableName) from None
        return config

    def update_table(self, config: TableConfig) -> TableConfig:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(tables)
                .where(tables.c.name_with_type == config.tableName)
                .values(config_json=_dump(config), updated_ms=now_ms())
            )
            if result.rowcount == 0:
                raise TableNotFoundError(config.tableName)
        return config

    def get_table_config(self, table_name_with_type: str) -> TableConfig | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(tables.c.config_json).where(tables.c.name_with_type == table_name_with_type)
            ).first()
        return None if row is None else TableConfig.model_validate_json(row[0])

    def require_table(self, table_name_with_type: str) -> TableConfig:
        config = self.get_table_config(table_name_with_type)
        if config is None:
            raise TableNotFoundError(table_name_with_type)
        return config

    def list_tables(self) -> list[TableConfig]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.c.config_json).order_by(tables.c.name_with_type)).all()
        return [TableConfig.model_validate_json(r[0]) for r in rows]

    def tables_of_raw_name(self, raw_name: str) -> list[TableConfig]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tables.c.config_json)
                .where(tables.c.raw_name == raw_name)
                .order_by(tables.c.table_type)
            ).all()
        return [TableConfig.model_validate_json(r[0]) for r in rows]

    def delete_table(self, table_name_with_type: str) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(delete(tables).where(tables.c.name_with_type == table_name_with_type))
            if result.rowcount == 0:
                raise TableNotFoundError(table_name_with_type)

    def table_names(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(tables.c.name_with_type))}

    # ---------------------------------------------------------------- schemas

    def put_schema(self, schema: Schema) -> Schema:
        with self.engine.begin() as conn:
            values = {"schema_json": _dump(schema), "updated_ms": now_ms()}
            result = conn.execute(update(schemas).where(schemas.c.name == schema.schemaName).values(**values))
            if result.rowcount == 0:
                conn.execute(insert(schemas).values(name=schema.schemaName, **values))
        return schema

    def get_schema(self, name: str) -> Schema | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(schemas.c.schema_json).where(schemas.c.name == name)).first()
        return None if row is None else Schema.model_validate_json(row[0])

    def require_schema(self, name: str) -> Schema:
        schema = self.get_schema(name)
        if schema is None:
            raise SchemaNotFoundError(name)
        return schema

    def get_schema_for_table(self, table_name_with_type: str) -> Schema | None:
        """Pinot resolves a table's schema by its raw table name."""
        raw, _ = split_table_name_with_type(table_name_with_type)
        return self.get_schema(raw)

    def list_schema_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(schemas.c.name).order_by(schemas.c.name))]

    # ---------------------------------------------------------------- cluster configs and states

    def cluster_configs(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(select(cluster_configs.c.name, cluster_configs.c.value))}

    def set_cluster_configs(self, values: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            for name, value in values.items():
                _upsert(conn, cluster_configs, {"name": name}, {"value": value})

    def delete_cluster_config(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(cluster_configs).where(cluster_configs.c.name == name)).rowcount)

    def get_state(self, scope: str, name: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(states.c.value).where(states.c.scope == scope, states.c.name == name)
            ).first()
        return None if row is None else str(row[0])

    def delete_state(self, scope: str, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(states).where(states.c.scope == scope, states.c.name == name))

    def set_state(self, scope: str, name: str, value: str) -> None:
        with self.engine.begin() as conn:
            _upsert(conn, states, {"scope": scope, "name": name}, {"value": value})


def _upsert(conn: Connection, table: Any, keys: dict[str, str], values: dict[str, str]) -> None:
    condition = [table.c[k] == v for k, v in keys.items()]
    if conn.execute(update(table).where(*condition).values(**values)).rowcount == 0:
        conn.execute(insert(table).values(**keys, **values))


def _make_engine(url: str, pool_size: int, max_overflow: int) -> Engine:
    pool = {"pool_size": pool_size, "max_overflow": max_overflow}
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")  # one connection (SingletonThreadPool)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **({} if in_memory else pool)
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # The server gives up on a connection of ours whose peer is gone: probed once idle for 5 s, or data
    # unacknowledged for 10 s. A process cut off by the network (its host partitioned) is dropped within
    # about 11 s, with every lock its open transaction held: a table's advisory write lock would otherwise
    # stop every other writer of the table for the kernel's defaults (two hours idle; 15 minutes of
    # retransmissions). Options given in the URL's ``options`` are kept after these.
    given = make_url(url).query.get("options", ())
    options = " ".join(
        [
            "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
            " -c tcp_user_timeout=10000"
        ]
        + ([given] if isinstance(given, str) else list(given))
    )
    return create_engine(url, pool_pre_ping=True, connect_args={"options": options}, **pool)
