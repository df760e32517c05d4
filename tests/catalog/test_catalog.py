"""The catalog on SQLite and PostgreSQL: migrations, tables, schemas, cluster configs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from taskplan.catalog import Catalog, TableExistsError, TableNotFoundError
from taskplan.models.table import Schema, TableConfig


def table_config(name: str = "events", table_type: str = "OFFLINE", **task: dict[str, str]) -> TableConfig:
    return TableConfig.model_validate(
        {"tableName": name, "tableType": table_type, "task": {"taskTypeConfigsMap": task}}
    )


def test_migrate_is_idempotent(catalog: Catalog) -> None:
    catalog.migrate()
    catalog.migrate()
    assert catalog.list_tables() == []


def test_table_round_trip_keeps_unknown_keys(catalog: Catalog) -> None:
    config = TableConfig.model_validate(
        {
            "tableName": "events_OFFLINE",
            "tableType": "OFFLINE",
            "segmentsConfig": {"retentionTimeValue": "5"},
            "metadata": {"customConfigs": {"owner": "ops"}},
            "task": {"taskTypeConfigsMap": {"SegmentPurgeTask": {"schedule": "0 0 2 * * ?"}}},
        }
    )
    catalog.create_table(config)
    loaded = catalog.get_table_config("events_OFFLINE")
    assert loaded is not None
    assert loaded.model_dump() == config.model_dump()
    assert loaded.task_type_configs("SegmentPurgeTask") == {"schedule": "0 0 2 * * ?"}
    with pytest.raises(TableExistsError, match="events_OFFLINE already exists"):
        catalog.create_table(config)
    assert [t.tableName for t in catalog.tables_of_raw_name("events")] == ["events_OFFLINE"]


def test_update_and_delete(catalog: Catalog) -> None:
    catalog.create_table(table_config())
    catalog.update_table(table_config(NoOpTask={"numBatches": "2"}))
    assert catalog.require_table("events_OFFLINE").task_type_configs("NoOpTask") == {"numBatches": "2"}
    catalog.delete_table("events_OFFLINE")
    assert catalog.get_table_config("events_OFFLINE") is None
    with pytest.raises(TableNotFoundError, match="events_OFFLINE does not exist"):
        catalog.delete_table("events_OFFLINE")
    with pytest.raises(TableNotFoundError):
        catalog.update_table(table_config())


def test_schema_resolved_by_raw_table_name(catalog: Catalog) -> None:
    schema = Schema.model_validate(
        {
            "schemaName": "events",
            "dimensionFieldSpecs": [{"name": "country", "dataType": "STRING"}],
            "metricFieldSpecs": [{"name": "clicks", "dataType": "LONG"}],
            "dateTimeFieldSpecs": [
                {
                    "name": "ts",
                    "dataType": "TIMESTAMP",
                    "format": "TIMESTAMP",
                    "granularity": "1:MILLISECONDS",
                }
            ],
        }
    )
    catalog.put_schema(schema)
    catalog.put_schema(schema)  # replace is fine
    found = catalog.get_schema_for_table("events_REALTIME")
    assert found is not None
    assert [f.name for f in found.fields] == ["country", "clicks", "ts"]
    assert catalog.list_schema_names() == ["events"]


def test_cluster_configs_and_states(catalog: Catalog) -> None:
    catalog.set_cluster_configs({"controller.startree.task.manager.enableTaskOrchestration": "false"})
    catalog.set_cluster_configs(
        {"controller.startree.task.manager.enableTaskOrchestration": "true", "x": "1"}
    )
    assert catalog.cluster_configs() == {
        "controller.startree.task.manager.enableTaskOrchestration": "true",
        "x": "1",
    }
    assert catalog.delete_cluster_config("x") is True
    assert catalog.delete_cluster_config("x") is False
    catalog.set_state("taskQueue", "NoOpTask", "STOPPED")
    assert catalog.get_state("taskQueue", "NoOpTask") == "STOPPED"


def test_concurrent_migrations_and_writes_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            cat = Catalog(url)
            cat.migrate()
            for j in range(10):
                cat.create_table(table_config(f"t{index}x{j}"))
            cat.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(Catalog(url).list_tables()) == 40
