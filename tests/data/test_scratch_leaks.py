"""A subtask that fails leaves nothing in its process's scratch directory (``<dataDir>/scratch``), where no
sweep looks: with an S3 deep store, segments are staged there before their upload. Found by the multi-host
fault campaign (tests/multihost/test_faults.py): after S3 refused uploads and PostgreSQL stopped, a
minion's scratch held the staged files of every subtask that failed then (and each run again left more)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from taskplan.catalog import Catalog
from taskplan.data.deepstore import DeepStore
from taskplan.data.parquet import DuckDBConfig
from taskplan.data.segments import SegmentManager
from taskplan.models.table import TableConfig
from taskplan.settings import Settings
from taskplan.storage import StorageUnavailableError, open_store
from taskplan.tasktypes.rewriting import Written, swap_in
from tests.support.data import event, events_schema
from tests.support.s3 import free_port


def unreachable_store(scratch: Path) -> DeepStore:
    settings = Settings.model_validate(
        {
            "taskplan.storage.s3.accessKeyId": "a",
            "taskplan.storage.s3.secretAccessKey": "b",
            "taskplan.storage.s3.endpointUrl": f"http://127.0.0.1:{free_port()}",
        }
    )
    return DeepStore(open_store("s3://bucket/deepstore", settings), scratch)


def scratch_files(scratch: Path) -> list[Path]:
    return [p for p in scratch.rglob("*") if p.is_file()]


def test_a_failed_upload_leaves_no_staged_file(tmp_path: Path) -> None:
    deep = unreachable_store(tmp_path / "scratch")
    staged = deep.staging_path("t_OFFLINE")
    staged.write_bytes(b"PAR1")
    with pytest.raises(StorageUnavailableError):
        deep.publish(staged, "t_OFFLINE", "seg.parquet")
    assert scratch_files(tmp_path / "scratch") == []


def test_a_swap_the_catalog_refuses_leaves_no_staged_file(tmp_path: Path) -> None:
    """The catalog out of reach when the replacement starts (here: a catalog with no tables, which SQLAlchemy
    reports as OperationalError as it reports a lost connection)."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'not-migrated.db'}")
    manager = SegmentManager(catalog, unreachable_store(tmp_path / "scratch"), DuckDBConfig())
    table = TableConfig.model_validate({"tableName": "t", "tableType": "OFFLINE"})
    segment, staged = manager.build(table, events_schema("t"), [event(1)], "t_merged_0")
    assert staged.exists()
    with pytest.raises(OperationalError):
        swap_in(manager, "t_OFFLINE", ["t_old"], Written([segment], [staged]), "lineage-1", "merge")
    assert scratch_files(tmp_path / "scratch") == []
    catalog.close()
