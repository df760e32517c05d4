"""The data task types with the deep store, the input files and the export target on S3: a real moto
server process, the production client (obstore) unpatched, a SQLite catalog; batches generated and
executed in process as in tests/data/test_task_types.py. No local deep-store file is ever written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskplan.catalog import Catalog
from taskplan.data.parquet import DuckDBConfig, read_rows
from taskplan.data.segments import SegmentManager
from taskplan.plugin import FatalTaskError, TaskConfigError
from taskplan.settings import Settings
from taskplan.storage import ObjectStore, StorageUnavailableError, open_store
from taskplan.tasktypes.data_export import DATA_EXPORT
from taskplan.tasktypes.file_ingestion import FILE_INGESTION
from taskplan.tasktypes.segment_purge import SEGMENT_PURGE
from tests.data.test_task_types import execute, generator_of, realtime_table, request
from tests.support.data import (
    deep_store_leaks,
    event,
    make_table,
    run_plan_directly,
    table_rows,
    write_csv,
)
from tests.support.s3 import MotoServer, free_port


@pytest.fixture(scope="module")
def bucket(moto_server: MotoServer) -> str:
    return moto_server.create_bucket()


@pytest.fixture
def settings(moto_server: MotoServer, bucket: str, tmp_path: Path) -> Settings:
    return Settings.model_validate(
        {
            "taskplan.dataDir": str(tmp_path / "data"),
            "taskplan.deepStore.dir": f"s3://{bucket}/deep",
            "taskplan.ingestion.allowedRoots": f"s3://{bucket}/in",
            "taskplan.export.allowedRoots": f"s3://{bucket}/out",
            **moto_server.properties(),
        }
    )


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    cat.migrate()
    yield cat
    cat.close()


@pytest.fixture
def bucket_store(settings: Settings, bucket: str) -> ObjectStore:
    return open_store(f"s3://{bucket}", settings)


def name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def put_csv(store: ObjectStore, key: str, rows: list[dict[str, Any]], tmp_path: Path) -> None:
    store.put_file(write_csv(tmp_path / f"{uuid.uuid4().hex}.csv", rows), key, move=True)


def no_local_segment_files(settings: Settings) -> bool:
    return not [p for p in settings.data_dir.rglob("*.parquet")]


def test_ingestion_and_purge_plans_on_an_s3_deep_store(
    settings: Settings, catalog: Catalog, bucket: str, bucket_store: ObjectStore, tmp_path: Path
) -> None:
    manager = SegmentManager.from_settings(settings, catalog)
    table = make_table(catalog, name("s3ing"))
    prefix = f"in/{table.raw_table_name}"
    for f in range(3):
        put_csv(
            bucket_store,
            f"{prefix}/part{f}.csv",
            [event(f * 10 + i, "US" if i % 2 else "FR") for i in range(4)],
            tmp_path,
        )
    put_csv(bucket_store, f"{prefix}/notes.txt", [event(99)], tmp_path)
    configs = {
        "inputDirURI": f"s3://{bucket}/{prefix}",
        "inputFormat": "csv",
        "includeFileNamePattern": "glob:**/*.csv",
        "tableMaxNumTasks": "2",
    }
    run = run_plan_directly(FILE_INGESTION, settings, catalog, table, configs)
    assert run.batches == 2 and run.total("processed") == 12
    assert len(table_rows(manager, table.tableName)) == 12
    objects = {i.key for i in bucket_store.list(f"deep/{table.tableName}/")}
    assert objects == {
        f"deep/{table.tableName}/{s.file_name}" for s in catalog.segments.all_segments(table.tableName)
    }
    assert len(objects) == 3
    assert run_plan_directly(FILE_INGESTION, settings, catalog, table, configs).batches == 0

    purge = {"purgeFilter": "country = 'US'", "tableMaxNumTasks": "2"}
    purged = run_plan_directly(SEGMENT_PURGE, settings, catalog, table, purge, plan_id="purge")
    assert purged.total("rowsPurged") == 6 and purged.total("segmentsPurged") == 3
    rows = table_rows(manager, table.tableName)
    assert len(rows) == 6 and {r["country"] for r in rows} == {"FR"}
    assert deep_store_leaks(manager, table.tableName) == set()  # the purged segments' objects are gone
    assert no_local_segment_files(settings)

    manager.remove_table(table.tableName)
    assert bucket_store.list(f"deep/{table.tableName}/") == []


def test_sync_reingests_an_object_whose_etag_changed_and_no_other(
    settings: Settings, catalog: Catalog, bucket: str, bucket_store: ObjectStore, tmp_path: Path
) -> None:
    manager = SegmentManager.from_settings(settings, catalog)
    table = make_table(catalog, name("s3sync"))
    prefix = f"in/{table.raw_table_name}"
    put_csv(bucket_store, f"{prefix}/a.csv", [event(1)], tmp_path)
    put_csv(bucket_store, f"{prefix}/b.csv", [event(2)], tmp_path)
    configs = {"inputDirURI": f"s3://{bucket}/{prefix}", "inputFormat": "csv", "ingestionMode": "SYNC"}
    assert run_plan_directly(FILE_INGESTION, settings, catalog, table, configs).total("processed") == 2

    put_csv(bucket_store, f"{prefix}/a.csv", [event(1, "FR")], tmp_path)  # same size, new ETag
    again = run_plan_directly(FILE_INGESTION, settings, catalog, table, configs)
    assert again.batches == 1 and again.total("processed") == 1
    rows = table_rows(manager, table.tableName)
    assert [(r["id"], r["country"]) for r in rows] == [(1, "FR"), (2, "US")]
    assert run_plan_directly(FILE_INGESTION, settings, catalog, table, configs).batches == 0

    bucket_store.delete(f"{prefix}/b.csv")
    removed = run_plan_directly(FILE_INGESTION, settings, catalog, table, configs)
    assert removed.custom_stats.get("segmentsDropped") == "1"
    assert [r["id"] for r in table_rows(manager, table.tableName)] == [1]
    assert deep_store_leaks(manager, table.tableName) == set()


def test_an_object_changed_after_it_was_listed_fails_its_subtask(
    settings: Settings, catalog: Catalog, bucket: str, bucket_store: ObjectStore, tmp_path: Path
) -> None:
    table = make_table(catalog, name("s3chg"))
    key = f"in/{table.raw_table_name}/a.csv"
    put_csv(bucket_store, key, [event(1)], tmp_path)
    configs = {"inputDirURI": f"s3://{bucket}/in/{table.raw_table_name}", "inputFormat": "csv"}
    [task] = (
        generator_of(FILE_INGESTION, settings, catalog).generate_next_batch(request(table, configs)).subtasks
    )
    put_csv(bucket_store, key, [event(2)], tmp_path)
    with pytest.raises(FatalTaskError, match="changed since it was listed"):
        execute(FILE_INGESTION, settings, catalog, task)
    assert catalog.segments.all_segments(table.tableName) == []
    assert bucket_store.list(f"deep/{table.tableName}/") == []


def test_a_retried_ingestion_subtask_rewrites_the_same_key(
    settings: Settings, catalog: Catalog, bucket: str, bucket_store: ObjectStore, tmp_path: Path
) -> None:
    """An attempt that uploaded its segment and then died before the catalog commit (its rows removed
    here) is retried: the retry writes the same key again, and the table has the file's rows once."""
    manager = SegmentManager.from_settings(settings, catalog)
    table = make_table(catalog, name("s3retry"))
    put_csv(bucket_store, f"in/{table.raw_table_name}/a.csv", [event(1), event(2)], tmp_path)
    configs = {"inputDirURI": f"s3://{bucket}/in/{table.raw_table_name}", "inputFormat": "csv"}
    [task] = (
        generator_of(FILE_INGESTION, settings, catalog).generate_next_batch(request(table, configs)).subtasks
    )
    execute(FILE_INGESTION, settings, catalog, task)
    [first] = bucket_store.list(f"deep/{table.tableName}/")
    with catalog.engine.begin() as conn:  # the commit that never happened
        for sql_table in ("tp_segments", "tp_processed_files"):
            conn.exec_driver_sql(f"DELETE FROM {sql_table} WHERE table_name = ?", (table.tableName,))
    assert catalog.segments.all_segments(table.tableName) == []
    execute(FILE_INGESTION, settings, catalog, task)
    [again] = bucket_store.list(f"deep/{table.tableName}/")
    assert again.key == first.key and again.last_modified >= first.last_modified
    [segment] = catalog.segments.all_segments(table.tableName)
    assert f"deep/{table.tableName}/{segment.file_name}" == again.key
    assert sorted(r["id"] for r in table_rows(manager, table.tableName)) == [1, 2]
    assert no_local_segment_files(settings)


def test_export_to_s3_is_exactly_once(
    settings: Settings, catalog: Catalog, bucket: str, bucket_store: ObjectStore, tmp_path: Path
) -> None:
    manager = SegmentManager.from_settings(settings, catalog)
    table = realtime_table(catalog, name("s3exp"))
    schema = catalog.require_schema(table.raw_table_name)
    manager.append_realtime(table, schema, [event(i) for i in range(3)])  # committed (3 rows)
    manager.append_realtime(table, schema, [event(i) for i in range(3, 6)])  # committed
    manager.append_realtime(table, schema, [event(6)])  # consuming: not exported
    configs = {
        "externalTable.target": f"s3://{bucket}/out/x",
        "bufferTimePeriod": "0s",
        "tableMaxNumTasks": "1",
    }
    first = generator_of(DATA_EXPORT, settings, catalog).generate_next_batch(request(table, configs))
    execute(DATA_EXPORT, settings, catalog, first.subtasks[0])
    # The catalog lost the record (a crash after the upload): the retry rewrites the same key.
    with catalog.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM tp_exported_segments")
    execute(DATA_EXPORT, settings, catalog, first.subtasks[0])
    run = run_plan_directly(DATA_EXPORT, settings, catalog, table, configs)
    assert run.batches == 1
    assert run_plan_directly(DATA_EXPORT, settings, catalog, table, configs).batches == 0
    assert execute(DATA_EXPORT, settings, catalog, first.subtasks[0]).counts == {"segmentsSkipped": 1}
    objects = bucket_store.list(f"out/x/{table.tableName}/")
    assert len(objects) == 2
    ids = []
    for info in objects:
        copy = tmp_path / Path(info.key).name
        bucket_store.get_file(info.key, copy)
        ids += [r["id"] for r in read_rows(copy, DuckDBConfig())]
    assert sorted(ids) == list(range(6))
    assert no_local_segment_files(settings)


def test_bad_s3_locations_are_refused_when_triggered(
    moto_server: MotoServer, settings: Settings, catalog: Catalog, bucket: str
) -> None:
    table = make_table(catalog, name("s3bad"))
    schema = catalog.require_schema(table.raw_table_name)
    ingest = generator_of(FILE_INGESTION, settings, catalog)
    for uri, message in [
        (f"s3://{bucket}/elsewhere", "outside the allowed roots"),
        (f"s3://{bucket}/in/../deep", r"'\.\.' segment"),
        ("s3://another-bucket/in", "outside the allowed roots"),
        (f"s3://{bucket}/in?versionId=3", "encodes '\\?'"),
    ]:
        with pytest.raises(TaskConfigError, match=message):
            ingest.validate_task_configs(table, schema, {"inputDirURI": uri, "inputFormat": "csv"})

    def with_props(**changed: str) -> Settings:
        return Settings.model_validate({**props(settings, moto_server), **changed})

    def trigger_ingestion(changed: Settings, uri: str) -> str:
        generator = generator_of(FILE_INGESTION, changed, catalog)
        with pytest.raises(TaskConfigError) as refused:
            generator.generate_next_batch(request(table, {"inputDirURI": uri, "inputFormat": "csv"}))
        return str(refused.value)

    inside = f"s3://{bucket}/in/x"
    wrong_key = with_props(**{"taskplan.storage.s3.secretAccessKey": "wrong-secret"})
    wrong = trigger_ingestion(wrong_key, inside)
    assert "SignatureDoesNotMatch" in wrong and "wrong-secret" not in wrong
    # The validation when a task is triggered (a 400 from the API) lists the bucket too.
    with pytest.raises(TaskConfigError, match="SignatureDoesNotMatch"):
        generator_of(FILE_INGESTION, wrong_key, catalog).validate_task_configs(
            table, schema, {"inputDirURI": inside, "inputFormat": "csv"}
        )
    other = "s3://no-such-bucket-tp/in"
    missing = trigger_ingestion(with_props(**{"taskplan.ingestion.allowedRoots": other}), f"{other}/x")
    assert "NoSuchBucket" in missing
    closed = with_props(**{"taskplan.storage.s3.endpointUrl": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(TaskConfigError) as refused:
        generator_of(FILE_INGESTION, closed, catalog).validate_task_configs(
            table, schema, {"inputDirURI": inside, "inputFormat": "csv"}
        )
    assert str(refused.value).startswith(f"inputDirURI {inside}") and "127.0.0.1" in str(refused.value)
    # A running plan's generation meets the same endpoint down as an outage: retried, not a bad config.
    with pytest.raises(StorageUnavailableError, match=r"127\.0\.0\.1"):
        generator_of(FILE_INGESTION, closed, catalog).generate_next_batch(
            request(table, {"inputDirURI": inside, "inputFormat": "csv"})
        )

    rt = realtime_table(catalog, name("s3badexp"))
    export = generator_of(
        DATA_EXPORT, with_props(**{"taskplan.export.allowedRoots": "s3://no-such-bucket-tp/out"}), catalog
    )
    with pytest.raises(TaskConfigError, match="NoSuchBucket"):
        export.validate_task_configs(rt, None, {"externalTable.target": "s3://no-such-bucket-tp/out/y"})
    with pytest.raises(TaskConfigError, match="NoSuchBucket"):
        export.generate_next_batch(
            request(rt, {"externalTable.target": "s3://no-such-bucket-tp/out/y", "bufferTimePeriod": "0s"})
        )
    with pytest.raises(TaskConfigError, match="outside the allowed roots"):
        export.validate_task_configs(rt, None, {"externalTable.target": f"s3://{bucket}/deep"})
    assert catalog.segments.all_segments(table.tableName) == []


def props(settings: Settings, server: MotoServer) -> dict[str, str]:
    return {
        "taskplan.dataDir": str(settings.data_dir),
        "taskplan.deepStore.dir": str(settings.deep_store_dir),
        "taskplan.ingestion.allowedRoots": settings.ingestion_allowed_roots,
        "taskplan.export.allowedRoots": settings.export_allowed_roots,
        **server.properties(),
    }


def test_the_sweep_finds_orphan_objects_by_last_modified(
    settings: Settings, catalog: Catalog, bucket_store: ObjectStore, tmp_path: Path
) -> None:
    manager = SegmentManager.from_settings(settings, catalog)
    table = make_table(catalog, name("s3sweep"))
    schema = catalog.require_schema(table.raw_table_name)
    segment = manager.upload(table, schema, [event(1)], f"{table.raw_table_name}_0")
    put_csv(bucket_store, f"deep/{table.tableName}/.staging-left-by-a-crash.parquet", [event(2)], tmp_path)
    assert manager.cleanup(table.tableName).deleted_files == []  # younger than the grace period
    assert manager.cleanup(table.tableName, grace_s=0).deleted_files == [".staging-left-by-a-crash.parquet"]
    assert [i.key for i in bucket_store.list(f"deep/{table.tableName}/")] == [
        f"deep/{table.tableName}/{segment.file_name}"
    ]
    assert len(table_rows(manager, table.tableName)) == 1
