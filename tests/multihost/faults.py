"""The faults a multi-host cluster (topology.py, with ``s3_proxy=True``) meets, each a start and an end: what
a fault trial (test_faults.py) injects while plans run, and lifts after ``hold_s``.

- ``temporal-kill``: the Temporal server's process group killed with SIGKILL, started again on its SQLite
  file (its persisted state) a second later.
- ``postgres-stop``: the catalog's PostgreSQL stopped with ``pg_ctl stop -m immediate`` (every backend quits
  at once, open transactions cut off; the next start replays the WAL), started again on the same data.
- ``s3-restart``: the S3 endpoint (the fault proxy in front of moto) killed with SIGKILL, connections
  refused until it starts again; the objects kept (moto holds them in memory behind the proxy: what a
  restarted S3 server keeps on its disks).
- ``s3-slowdown``, ``s3-5xx``, ``s3-slow``: the S3 endpoint answers 503 SlowDown to every request, 500
  InternalError to half of them, or every request 3 s late, for a while.
- ``cut-*``: a host's link down (``ip netns``), then up again; ``-long`` outlasts the subtask heartbeat
  timeout (and the workflow task timeout, 10 s, for a controller).
- ``scratch-full``: the minion's scratch disk (a tmpfs the fixture mounts with :func:`small_scratch` before
  the minion starts) filled up by a file: every write there fails with ENOSPC until the file is deleted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.multihost.processes import Process
from tests.multihost.servers import (
    S3_PORT,
    TEMPORAL_PORT,
    run_postgres,
    start_s3_proxy,
    start_temporal,
    stop_postgres_hard,
)
from tests.multihost.topology import S3_BACKEND_PORT, Cluster


@dataclass(frozen=True)
class Fault:
    name: str
    what: str  # for the report
    start: Callable[[Cluster], None]
    end: Callable[[Cluster], None]
    hold_s: float  # from start() returning to end() being called


def kill(process: Process) -> None:
    """SIGKILL to the process's group (the leader and what it started), then reap it."""
    with suppress(ProcessLookupError):
        os.killpg(process.popen.pid, signal.SIGKILL)
    process.popen.wait(timeout=30)


# ---------------------------------------------------------------- the servers


def kill_temporal(cluster: Cluster) -> None:
    kill(cluster.services["temporal"])


def start_temporal_again(cluster: Cluster) -> None:
    process = start_temporal(cluster.procs, cluster.host("temporal"), cluster.host_dir("temporal"))
    process.wait_for_port(TEMPORAL_PORT)
    cluster.services["temporal"] = process


def stop_postgres(cluster: Cluster) -> None:
    stop_postgres_hard(cluster.postgres_dir)
    cluster.services["postgres"].popen.wait(timeout=30)


def start_postgres_again(cluster: Cluster) -> None:
    cluster.services["postgres"] = run_postgres(cluster.procs, cluster.host("db"), cluster.postgres_dir)


def kill_s3(cluster: Cluster) -> None:
    kill(cluster.services["s3proxy"])


def start_s3_again(cluster: Cluster) -> None:
    cluster.services["s3proxy"] = start_s3_proxy(cluster.procs, cluster.host("s3"), S3_BACKEND_PORT)


def s3_mode(**mode: object) -> Callable[[Cluster], None]:
    def switch(cluster: Cluster) -> None:
        response = httpx.put(
            f"http://{cluster.host('s3').address}:{S3_PORT}/__fault__", json=mode, timeout=10
        )
        response.raise_for_status()

    return switch


# ---------------------------------------------------------------- links and disks


def cut(host: str) -> Callable[[Cluster], None]:
    return lambda cluster: cluster.cut(host)


def restore(host: str) -> Callable[[Cluster], None]:
    return lambda cluster: cluster.restore(host)


SCRATCH_BYTES = 64 * 1024 * 1024
SCRATCH_MINION = "minion1"


@contextmanager
def small_scratch(data_dir: Path) -> Iterator[None]:
    """A tmpfs of SCRATCH_BYTES as the minion's ``<dataDir>/scratch``, mounted before the minion starts (its
    ``ip netns exec`` copies the mounts it finds into a mount namespace of its own; a mount made later may
    not reach it) and unmounted after it stopped: the disk ``scratch-full`` fills."""
    scratch = data_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SCRATCH_BYTES}", "tmpfs", str(scratch)],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(scratch)], check=False, capture_output=True)


def fill_scratch(minion: str) -> Callable[[Cluster], None]:
    """A file that takes every free byte of the minion's scratch disk: its next writes fail with ENOSPC
    (files it has there stay readable, as on a real full disk)."""

    def start(cluster: Cluster) -> None:
        chunk = b"\0" * (1024 * 1024)
        with suppress(OSError), (cluster.data_dir(minion) / "scratch" / ".filler").open("wb") as filler:
            while True:
                filler.write(chunk)
                filler.flush()

    return start


def free_scratch(minion: str) -> Callable[[Cluster], None]:
    def end(cluster: Cluster) -> None:
        (cluster.data_dir(minion) / "scratch" / ".filler").unlink(missing_ok=True)

    return end


FAULTS = {
    f.name: f
    for f in (
        Fault("temporal-kill", "Temporal server SIGKILL, restarted on its SQLite file", kill_temporal,
              start_temporal_again, 1.0),
        Fault("postgres-stop", "PostgreSQL `pg_ctl stop -m immediate`, restarted", stop_postgres,
              start_postgres_again, 3.0),
        Fault("s3-restart", "S3 endpoint SIGKILL, connections refused 5 s, restarted", kill_s3,
              start_s3_again, 5.0),
        Fault("s3-slowdown", "S3 answers 503 SlowDown to every request for 6 s",
              s3_mode(mode="error", status=503), s3_mode(mode="pass"), 6.0),
        Fault("s3-5xx", "S3 answers 500 InternalError to half the requests for 10 s",
              s3_mode(mode="error", status=500, rate=0.5), s3_mode(mode="pass"), 10.0),
        Fault("s3-slow", "S3 answers every request 3 s late for 10 s", s3_mode(mode="slow", delay=3.0),
              s3_mode(mode="pass"), 10.0),
        Fault("cut-controller", "controller1's link cut for 2 s", cut("controller1"),
              restore("controller1"), 2.0),
        Fault("cut-controller-long", "controller1's link cut for 15 s (> heartbeat and workflow task "
              "timeouts)", cut("controller1"), restore("controller1"), 15.0),
        Fault("cut-api", "the API's link cut for 5 s", cut("api"), restore("api"), 5.0),
        Fault("cut-minion-long", "minion1's link cut for 10 s (> the 3 s heartbeat timeout)", cut("minion1"),
              restore("minion1"), 10.0),
        Fault("scratch-full", "minion1's scratch disk (a 64 MiB tmpfs) full for 10 s",
              fill_scratch(SCRATCH_MINION), free_scratch(SCRATCH_MINION), 10.0),
    )
}  # fmt: skip


def together(faults: list[Fault], hold_s: float) -> Fault:
    """The faults at once: started in turn, held ``hold_s``, ended in reverse order."""

    def start(cluster: Cluster) -> None:
        for fault in faults:
            fault.start(cluster)

    def end(cluster: Cluster) -> None:
        for fault in reversed(faults):
            fault.end(cluster)

    return Fault("+".join(f.name for f in faults), " and ".join(f.what for f in faults), start, end, hold_s)


def inject(cluster: Cluster, fault: Fault) -> tuple[float, float]:
    """Start the fault, hold it, end it; (when it started, when it ended), time.monotonic()."""
    started = time.monotonic()
    fault.start(cluster)
    try:
        time.sleep(fault.hold_s)
    finally:
        fault.end(cluster)
    return started, time.monotonic()
