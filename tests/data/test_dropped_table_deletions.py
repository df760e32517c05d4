"""A table drop whose object deletions fail leaves a pending deletion, recorded in the drop's own catalog
transaction, that the segment upkeep retries every pass until the objects are gone, never touching an
object of a table created again under the name. Both catalogs (the ``catalog`` fixture: SQLite and
PostgreSQL), both deep stores: S3 against a real moto server process (obstore, the production client,
unpatched; the store "fails" by being asked at a port nobody serves), and a local directory (a process
that died right after the drop's commit)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from taskplan.catalog import Catalog
from taskplan.data.maintenance import SegmentMaintenance
from taskplan.data.segments import SegmentManager
from taskplan.models.table import TableConfig
from taskplan.settings import Settings
from taskplan.storage import ObjectStore, open_store
from tests.support.data import event, make_table, table_rows
from tests.support.s3 import MotoServer, free_port


def s3_settings(
    server: MotoServer, bucket: str, tmp_path: Path, *, prefix: str = "deep", **extra: str
) -> Settings:
    return Settings.model_validate(
        {
            "taskplan.dataDir": str(tmp_path / "data"),
            "taskplan.deepStore.dir": f"s3://{bucket}/{prefix}",
            **server.properties(),
            **extra,
        }
    )


def down(
    settings: Settings, server: MotoServer, bucket: str, tmp_path: Path, prefix: str = "deep"
) -> Settings:
    """The same deep store, asked at a port nobody serves: every call fails as a store that is down."""
    return s3_settings(
        server,
        bucket,
        tmp_path,
        prefix=prefix,
        **{"taskplan.storage.s3.endpointUrl": f"http://127.0.0.1:{free_port()}"},
    )


def keys(store: ObjectStore, prefix: str) -> set[str]:
    return {i.key for i in store.list(prefix)}


def fill(manager: SegmentManager, catalog: Catalog, table: TableConfig, *ids: int) -> list[str]:
    schema = catalog.require_schema(table.raw_table_name)
    return [manager.upload(table, schema, [event(i)], f"{table.raw_table_name}_{i}").file_name for i in ids]


def test_a_drop_while_s3_is_down_is_deleted_by_the_next_upkeep_pass_and_spares_a_table_made_again(
    catalog: Catalog, moto_server: MotoServer, tmp_path: Path
) -> None:
    bucket = moto_server.create_bucket()
    good = s3_settings(moto_server, bucket, tmp_path)
    store = open_store(f"s3://{bucket}/deep", good)
    manager = SegmentManager.from_settings(good, catalog)
    table = make_table(catalog, f"gone{uuid.uuid4().hex[:8]}")
    name = table.tableName
    old_files = fill(manager, catalog, table, 1, 2)
    orphan = f"{name}/.staging-left-by-a-crash.parquet"
    store.put_file(_file(tmp_path, b"half"), orphan)

    # The drop while the store is down: it happens (config and rows gone), the objects stay, recorded.
    SegmentManager.from_settings(down(good, moto_server, bucket, tmp_path), catalog).remove_table(name)
    assert catalog.get_table_config(name) is None
    [pending] = catalog.deletions.all()
    assert pending.table_name == name and pending.store_uri == f"s3://{bucket}/deep"
    assert set(pending.keys) == {f"{name}/{f}" for f in old_files}
    assert keys(store, f"{name}/") == {*pending.keys, orphan}

    # Created again under the name (a second later: the store's LastModified is whole seconds), with a
    # segment of the same name (the same key as a dropped one) and one of its own.
    time.sleep(1.1)
    again = make_table(catalog, table.raw_table_name)
    new_files = fill(manager, catalog, again, 2, 3)
    assert old_files[1] == new_files[0]  # the same key, now the new table's object

    # The store answers again: one upkeep pass deletes the dropped table's object, and nothing of the new one.
    report = SegmentMaintenance(manager, catalog).run_once()
    assert report.deletions.deleted == {name: 1} and report.deletions.kept == {name: 1}, report
    assert catalog.deletions.all() == []
    assert keys(store, f"{name}/") == {f"{name}/{f}" for f in new_files} | {orphan}
    assert [r["id"] for r in table_rows(manager, name)] == [2, 3]
    # The crash's orphan was never the new table's: its own sweep deletes it (past the grace period).
    assert manager.cleanup(name, grace_s=0).deleted_files == [".staging-left-by-a-crash.parquet"]
    assert [r["id"] for r in table_rows(manager, name)] == [2, 3]


def test_pending_deletions_are_retried_each_pass_one_failing_not_stopping_the_others(
    catalog: Catalog, moto_server: MotoServer, tmp_path: Path
) -> None:
    bucket = moto_server.create_bucket()
    good = s3_settings(moto_server, bucket, tmp_path)
    store = open_store(f"s3://{bucket}", good)
    manager = SegmentManager.from_settings(good, catalog)
    elsewhere = SegmentManager.from_settings(
        s3_settings(moto_server, bucket, tmp_path, prefix="other"), catalog
    )
    raw = f"drop{uuid.uuid4().hex[:6]}"
    first, second, third = (make_table(catalog, f"{raw}{n}") for n in "abc")
    # The first table's objects are in another deep store than the upkeep's: that deletion cannot succeed.
    fill(elsewhere, catalog, first, 1)
    fill(manager, catalog, second, 1, 2)
    fill(manager, catalog, third, 3)
    store.put_file(_file(tmp_path, b"half"), f"deep/{third.tableName}/.staging-orphan.parquet")
    SegmentManager.from_settings(down(good, moto_server, bucket, tmp_path, "other"), catalog).remove_table(
        first.tableName
    )
    for table in (second, third):
        SegmentManager.from_settings(down(good, moto_server, bucket, tmp_path), catalog).remove_table(
            table.tableName
        )
    assert [p.table_name for p in catalog.deletions.all()] == [t.tableName for t in (first, second, third)]

    # A pass while the store is still down: everything stays, the attempt and its error are kept.
    down_manager = SegmentManager.from_settings(down(good, moto_server, bucket, tmp_path), catalog)
    report = SegmentMaintenance(down_manager, catalog).run_once()
    assert set(report.deletions.failed) == {t.tableName for t in (first, second, third)}
    # (The drop's own try was the first; the third is not even tried once the store did not answer the
    # second: it would wait out the client's retries too.)
    assert [p.attempts for p in catalog.deletions.all()] == [2, 2, 1]
    assert all(p.last_error for p in catalog.deletions.all())
    assert len(keys(store, "deep/")) == 4

    # The store is back: the next pass deletes what it can (the second and third tables, the orphan too),
    # the first still fails and stays for the next pass.
    report = SegmentMaintenance(manager, catalog).run_once()
    assert report.deletions.deleted == {second.tableName: 2, third.tableName: 2}, report
    assert set(report.deletions.failed) == {first.tableName}
    assert "s3://" in report.deletions.failed[first.tableName]
    assert keys(store, "deep/") == set()
    [left] = catalog.deletions.all()
    assert left.table_name == first.tableName and left.attempts == 3
    assert len(keys(store, f"other/{first.tableName}/")) == 1


def test_a_local_drop_cut_short_after_its_commit_is_finished_by_the_upkeep(
    catalog: Catalog, tmp_path: Path
) -> None:
    settings = Settings.model_validate({"taskplan.dataDir": str(tmp_path / "data")})
    manager = SegmentManager.from_settings(settings, catalog)
    root = manager.deep_store.root
    table = make_table(catalog, f"local{uuid.uuid4().hex[:8]}")
    fill(manager, catalog, table, 1, 2)

    # A whole drop deletes at once and leaves no record.
    manager.remove_table(table.tableName)
    assert catalog.deletions.all() == [] and not list(root.glob(".dropped-*"))

    table = make_table(catalog, table.raw_table_name)
    fill(manager, catalog, table, 1, 2)
    # The process dies right after the drop's commit: its directory is aside, and recorded.
    deletion_id = manager.drop_in_catalog(table.tableName)
    [aside] = root.glob(".dropped-*")
    [pending] = catalog.deletions.all()
    assert pending.deletion_id == deletion_id and pending.keys == (f"{aside.name}/",)
    again = make_table(catalog, table.raw_table_name)
    new_files = fill(manager, catalog, again, 2, 3)

    report = SegmentMaintenance(manager, catalog).run_once()
    assert report.deletions.deleted == {table.tableName: 2}, report
    assert not aside.exists() and catalog.deletions.all() == []
    assert sorted(p.name for p in (root / table.tableName).iterdir()) == sorted(new_files)
    assert [r["id"] for r in table_rows(manager, table.tableName)] == [2, 3]


def _file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / uuid.uuid4().hex
    path.write_bytes(content)
    return path
