"""A minion's default concurrency follows the container's CPU quota (cgroup v2 and v1 files, faked in a temp
directory laid out as /sys/fs/cgroup is, nested where a /proc/self/cgroup says), and DuckDB's memory limit
is a property."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taskplan.cpus import available_cpus, cgroup_cpu_quota
from taskplan.data.parquet import DuckDBConfig
from taskplan.settings import Settings, SettingsError, load_settings

CORES = len(os.sched_getaffinity(0))


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n", encoding="ascii")
    return root


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "150000 100000"}, 1.5),  # v2
        ({"cpu.max": "max 100000"}, None),  # v2, no limit
        ({"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000"}, 0.5),  # v1
        ({"cpu,cpuacct/cpu.cfs_quota_us": "200000", "cpu,cpuacct/cpu.cfs_period_us": "100000"}, 2.0),
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),  # v1, no limit
        ({"cpu.max": "garbage"}, None),
        ({}, None),  # no cgroup files at all
    ],
)
def test_the_quota_is_read_from_cgroup_v2_or_v1(
    tmp_path: Path, files: dict[str, str], quota: float | None
) -> None:
    assert cgroup_cpu_quota(write(tmp_path, files)) == quota


@pytest.mark.parametrize(
    ("own", "files", "quota"),
    [
        # v2 without a cgroup namespace of its own (a pod's container on a node): the nested directory.
        ("0::/kubepods.slice/pod1/ctr\n", {"kubepods.slice/pod1/ctr/cpu.max": "200000 100000"}, 2.0),
        # A limit on a parent applies too: the tightest one counts.
        (
            "0::/kubepods.slice/pod1/ctr\n",
            {"kubepods.slice/cpu.max": "max 100000", "kubepods.slice/pod1/cpu.max": "50000 100000",
             "kubepods.slice/pod1/ctr/cpu.max": "300000 100000"},
            0.5,
        ),
        # v1, nested under the cpu hierarchy.
        (
            "4:cpu,cpuacct:/docker/abc\n0::/\n",
            {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "150000",
             "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000"},
            1.5,
        ),
        ("0::/\n", {"cpu.max": "100000 100000"}, 1.0),  # a namespace of its own: the root's file
    ],
)  # fmt: skip
def test_a_nested_cgroup_is_read_where_proc_self_cgroup_says(
    tmp_path: Path, own: str, files: dict[str, str], quota: float
) -> None:
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(own, encoding="ascii")
    assert cgroup_cpu_quota(write(tmp_path / "sys", files), proc) == quota


def test_available_cpus_is_the_quota_rounded_up_and_capped_by_the_cores(tmp_path: Path) -> None:
    assert available_cpus(write(tmp_path / "a", {"cpu.max": "50000 100000"})) == 1
    assert available_cpus(write(tmp_path / "b", {"cpu.max": "100001 100000"})) == min(2, CORES)
    assert available_cpus(write(tmp_path / "c", {"cpu.max": f"{(CORES + 8) * 100000} 100000"})) == CORES
    assert available_cpus(tmp_path / "none") == CORES


def test_duckdbs_memory_limit_is_a_property(tmp_path: Path) -> None:
    settings = load_settings(environ={"TASKPLAN_DUCKDB_MEMORYLIMIT": "256MB"})
    conn = DuckDBConfig(memory_limit=settings.duckdb_memory_limit).connect(tmp_path)
    row = conn.execute("SELECT current_setting('memory_limit')").fetchone()
    assert row is not None and row[0] in ("256.0 MiB", "244.1 MiB")  # DuckDB prints it in MiB
    assert Settings().duckdb_memory_limit == ""
    with pytest.raises(SettingsError, match=r"taskplan\.duckdb\.memoryLimit = 'lots'"):
        load_settings(environ={"TASKPLAN_DUCKDB_MEMORYLIMIT": "lots"})
