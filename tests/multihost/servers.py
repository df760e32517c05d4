"""The shared services of a topology, each a real server process on its own host: the Temporal dev server,
a PostgreSQL instance of the run's own (Debian's initdb in a scratch directory; never the machine's shared
server) and moto's S3 server."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from taskplan.runtime import dev_server_command
from taskplan.settings import Settings
from tests.multihost.netns import Host
from tests.multihost.processes import Process, Processes

TEMPORAL_PORT = 7233
POSTGRES_PORT = 5432
S3_PORT = 5000
S3_REGION = "us-east-1"
POSTGRES_USER = "postgres"  # the Debian package's system user: PostgreSQL refuses to run as root
TEMPLATES = Path(tempfile.gettempdir()) / "taskplan-pg-templates"  # initialized clusters, one per version


def start_temporal(procs: Processes, host: Host, data_dir: Path) -> Process:
    """The dev server (as `make run` starts it, headless) on every interface of its host, its SQLite file
    in ``data_dir``. Every interface: with ``--ip <one address>`` its services listen there but dial each
    other on 127.0.0.1, so a client's first call times out (temporal CLI 1.9.1, server 1.32)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.model_validate(
        {"temporal.address": f"0.0.0.0:{TEMPORAL_PORT}", "taskplan.dataDir": str(data_dir)}
    )
    return procs.start("temporal", host, dev_server_command(settings, headless=True))  # ready: its port


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's programs (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise FileNotFoundError("no /usr/lib/postgresql/*/bin/initdb: install the postgresql package")
    return found[-1].parent


@contextmanager
def postgres_scratch() -> Iterator[Path]:
    """A directory the postgres user can reach (pytest's temporary directories are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="taskplan-pg-"))
    try:
        path.chmod(0o755)
        shutil.chown(path, POSTGRES_USER, POSTGRES_USER)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _as_postgres(argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={POSTGRES_USER}", f"--regid={POSTGRES_USER}", "--init-groups", "--", *argv]


def postgres_template(bin_dir: Path) -> Path:
    """A freshly initialized cluster directory, made once per machine and PostgreSQL version (initdb takes
    5-7 s here, a copy well under one) and only ever copied: a cache in the temporary directory, safe to
    delete. Made under a lock, in a staging directory renamed into place, so parallel runs share one."""
    TEMPLATES.mkdir(exist_ok=True)
    final = TEMPLATES / bin_dir.parent.name
    if (final / "PG_VERSION").is_file():
        return final
    TEMPLATES.chmod(0o755)
    shutil.chown(TEMPLATES, POSTGRES_USER, POSTGRES_USER)
    with (TEMPLATES / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / "PG_VERSION").is_file():
            staging = TEMPLATES / f".staging-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            subprocess.run(
                _as_postgres([str(bin_dir / "initdb"), "-D", str(staging), "-U", POSTGRES_USER,
                              "--auth=trust", "--no-sync", "-E", "UTF8"]),
                check=True, capture_output=True,
            )  # fmt: skip
            (staging / "pg_hba.conf").write_text(
                "local all all trust\nhost all all samenet trust\n", encoding="utf-8"
            )  # a test cluster on a private subnet; a deployment uses scram-sha-256 (README)
            staging.rename(final)
    return final


def start_postgres(procs: Processes, host: Host, scratch: Path, database: str, user: str) -> Process:
    """A fresh cluster in ``scratch`` (a copy of the template), listening on the host's address only,
    trusting its subnet, with an empty ``database`` owned by ``user``."""
    data = scratch / "data"
    subprocess.run(["cp", "-a", str(postgres_template(postgres_bin())), str(data)], check=True)  # owner kept
    process = run_postgres(procs, host, scratch)
    with _admin_connection(process) as conn:
        conn.execute(f'CREATE ROLE "{user}" LOGIN')
        conn.execute(f'CREATE DATABASE "{database}" OWNER "{user}"')
    return process


def run_postgres(procs: Processes, host: Host, scratch: Path) -> Process:
    """The server on the cluster in ``scratch/data`` (also how a test restarts it after a hard stop); once it
    listens. No fsync (a process's crash loses nothing the kernel has; only a machine's crash would), but
    synchronous commits: a hard stop (:func:`stop_postgres_hard`) must lose no committed transaction."""
    process = procs.start(
        "postgres",
        host,
        _as_postgres([str(postgres_bin() / "postgres"), "-D", str(scratch / "data"),
                      "-c", f"listen_addresses={host.address}", "-c", f"port={POSTGRES_PORT}",
                      "-c", f"unix_socket_directories={scratch}", "-c", "fsync=off",
                      "-c", "full_page_writes=off"]),
        stop_signal=signal.SIGINT,  # fast shutdown: SIGTERM would wait for every client to leave
    )  # fmt: skip
    process.wait_for_port(POSTGRES_PORT)
    return process


def stop_postgres_hard(scratch: Path) -> None:
    """``pg_ctl stop -m immediate``: every server process quits at once, without a checkpoint, open
    transactions cut off mid-way (the next start recovers from the WAL), as a crash would."""
    subprocess.run(
        _as_postgres([str(postgres_bin() / "pg_ctl"), "stop", "-D", str(scratch / "data"),
                      "-m", "immediate"]),
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def _admin_connection(process: Process, timeout: float = 30.0) -> psycopg.Connection[tuple[object, ...]]:
    """A superuser connection, once the server accepts them (it listens before it finishes starting)."""
    deadline = time.monotonic() + timeout
    while True:
        process.check_alive()
        try:
            return psycopg.connect(
                host=process.host.address, port=POSTGRES_PORT, user=POSTGRES_USER, dbname="postgres",
                autocommit=True, connect_timeout=5,
            )  # fmt: skip
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_s3(procs: Processes, host: Host, port: int = S3_PORT) -> Process:
    """moto's standalone S3 server on the host's address (ready: :func:`create_bucket`). Authentication is
    on after the first requests (those of create_bucket's IAM setup): a wrong key is refused as AWS
    refuses it."""
    return procs.start(
        "s3", host, [sys.executable, "-m", "moto.server", "-H", host.address, "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_S3_SETUP_REQUESTS)},
    )  # fmt: skip


def start_s3_proxy(procs: Processes, host: Host, upstream_port: int) -> Process:
    """The fault proxy (tests/multihost/faultproxy.py) on the host's S3 port, in front of moto on
    ``upstream_port`` of the same host; once it listens."""
    process = procs.start(
        "s3proxy", host,
        [sys.executable, "-m", "tests.multihost.faultproxy", "--listen", f"{host.address}:{S3_PORT}",
         "--upstream", f"http://{host.address}:{upstream_port}"],
        env=dict(os.environ), cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    process.wait_for_port(S3_PORT)
    return process


_S3_SETUP_REQUESTS = 3  # create_user, put_user_policy, create_access_key


@dataclass(frozen=True)
class S3Access:
    endpoint: str  # as the test process reaches it
    access_key_id: str
    secret_access_key: str
    region: str = S3_REGION


def create_bucket(process: Process, bucket: str, port: int = S3_PORT) -> S3Access:
    """Once the S3 server answers: an IAM user allowed everything, its key, and an empty ``bucket``
    (S3 clients such as obstore have no CreateBucket: boto3, moto's own dependency, makes it)."""
    import boto3  # type: ignore[import-untyped]

    process.wait_for_port(port)
    endpoint = f"http://{process.host.address}:{port}"
    setup = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup", "region_name": S3_REGION}
    iam = boto3.client("iam", endpoint_url=endpoint, **setup)
    iam.create_user(UserName="taskplan")
    iam.put_user_policy(
        UserName="taskplan",
        PolicyName="all",
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", '
        '"Resource": "*"}]}',
    )
    key = iam.create_access_key(UserName="taskplan")["AccessKey"]
    access = S3Access(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=access.access_key_id,
        aws_secret_access_key=access.secret_access_key, region_name=S3_REGION,
    )  # fmt: skip
    s3.create_bucket(Bucket=bucket)
    return access
