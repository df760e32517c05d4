"""A taskplan cluster spread over hosts: one network namespace per host (tests/multihost/netns.py), the
shared services on hosts of their own (servers.py), and the taskplan processes, each started as a
deployment starts it: ``ip netns exec <host> taskplan --config <file> ...``, with a private working and
data directory and an environment of its own.

    with topology(workdir, CONFIG, env={...}) as cluster:
        cluster.api_url            # the REST API, reachable from the test process
        cluster.cut("minion1")     # its link down: nothing in or out
        cluster.restore("minion1")

Reusable by other multi-host tests (chaos, a production Temporal): the hosts, their order and the commands
are here; what a test does with the cluster is the test's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.multihost.netns import Host, Network, network
from tests.multihost.processes import Process, Processes, ProcessFailed, processes
from tests.multihost.servers import (
    S3_PORT,
    TEMPORAL_PORT,
    create_bucket,
    postgres_scratch,
    start_postgres,
    start_s3,
    start_s3_proxy,
    start_temporal,
)
from tests.multihost.storage import Bucket

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "examples" / "multihost" / "taskplan.properties"  # what the README documents
TASKPLAN = Path(sys.executable).parent / "taskplan"  # the installed command
SERVICE_HOSTS = ("temporal", "db", "s3")
API_PORT = 9000
CATALOG_DATABASE = "taskplan"  # the example file's catalog URL names them
CATALOG_USER = "taskplan"
BUCKET = "taskplan"  # the example file's s3:// URIs name it
S3_BACKEND_PORT = 5001  # moto's, when the fault proxy (faultproxy.py) holds S3_PORT in front of it
# What a taskplan process inherits from the test's environment: nothing that could be read as a property.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


@dataclass
class Cluster:
    net: Network
    procs: Processes
    workdir: Path
    config: Path
    env: Mapping[str, str]  # every taskplan process's environment, beyond its data directory
    api_password: str
    bucket: Bucket  # the S3 bucket, as the test process reaches it (moto itself, never the fault proxy)
    postgres_dir: Path  # the catalog server's directory (its cluster in data/), for a restart
    services: dict[str, Process] = field(default_factory=dict)  # temporal, postgres, s3 (and s3proxy)
    taskplan: dict[str, Process] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://{self.net.hosts['api'].address}:{API_PORT}"

    def host(self, name: str) -> Host:
        return self.net.hosts[name]

    def host_dir(self, name: str) -> Path:
        return self.workdir / "hosts" / name

    def data_dir(self, name: str) -> Path:
        """The host's private taskplan data directory (TASKPLAN_DATADIR)."""
        return self.host_dir(name) / "data"

    def http(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, auth=("admin", self.api_password), timeout=timeout)

    # ------------------------------------------------------------ taskplan processes

    def start_taskplan(self, name: str, *args: str, extra_env: Mapping[str, str] | None = None) -> Process:
        """``taskplan --config <file> <args>`` on host ``name``, in its own directory."""
        directory = self.host_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "TASKPLAN_DATADIR": str(self.data_dir(name)), **(extra_env or {})}
        process = self.procs.start(
            name,
            self.host(name),
            [str(TASKPLAN), "--config", str(self.config), *args],
            env=env,
            cwd=directory,
        )
        self.taskplan[name] = process
        return process

    def start_python(self, label: str, name: str, code: str, *args: str) -> Process:
        """A Python script of the test on host ``name``, configured as the taskplan processes are
        (TASKPLAN_CONFIG, its data directory, the S3 variables); logged as ``label``."""
        env = {**self.env, "TASKPLAN_CONFIG": str(self.config), "TASKPLAN_DATADIR": str(self.data_dir(name))}
        return self.procs.start(label, self.host(name), [sys.executable, "-c", code, *args], env=env)

    def run_taskplan(self, name: str, *args: str, timeout: float = 120.0) -> str:
        """``taskplan --config <file> <args>`` on host ``name``, to its end (a one-shot job); its output.
        Raises ProcessFailed if it fails."""
        directory = self.host_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "TASKPLAN_DATADIR": str(self.data_dir(name))}
        done = subprocess.run(
            self.host(name).command([str(TASKPLAN), "--config", str(self.config), *args]),
            env=env, cwd=directory, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise ProcessFailed(f"taskplan {' '.join(args)} on {name} exited {done.returncode}:\n"
                                f"{done.stdout}{done.stderr}")  # fmt: skip
        return done.stdout

    def start_api(self) -> Process:
        secrets = self.host_dir("api") / "secrets"  # as Kubernetes mounts a Secret (README, Configuration)
        secrets.mkdir(parents=True, exist_ok=True)
        (secrets / "controller.admin.access.control.principals.admin.password").write_text(
            self.api_password, encoding="utf-8"
        )
        return self.start_taskplan("api", "api", extra_env={"TASKPLAN_SECRETS_DIR": str(secrets)})

    def start_controller(self, name: str) -> Process:
        return self.start_taskplan(name, "worker", "--role", "controller", "--graceful-shutdown-seconds", "1")

    def start_minion(self, name: str, max_concurrent_subtasks: int | None = None) -> Process:
        args = ["worker", "--role", "minion", "--metrics-port", "0", "--graceful-shutdown-seconds", "1"]
        if max_concurrent_subtasks is not None:
            args += ["--max-concurrent-subtasks", str(max_concurrent_subtasks)]
        return self.start_taskplan(name, *args)

    def wait_healthy(self, timeout: float = 90.0) -> None:
        """Until the API answers /health with 200: Temporal answers and a controller worker polls."""
        api = self.taskplan["api"]
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for process in self.taskplan.values():
                process.check_alive()
            try:
                response = httpx.get(f"{self.api_url}/health", timeout=5)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise ProcessFailed(f"the API did not become healthy within {timeout:.0f}s ({last}):\n{api.tail()}")

    # ------------------------------------------------------------ faults

    def cut(self, name: str) -> None:
        self.net.cut(name)

    def restore(self, name: str) -> None:
        self.net.restore(name)

    def logs(self) -> str:
        """Every process's log tail, for a failing test's report."""
        return "\n".join(f"----- {p.name} ({p.host.name}, {p.log})\n{p.tail(40)}" for p in self.procs.started)


@contextmanager
def topology(
    workdir: Path,
    config: Path = EXAMPLE_CONFIG,
    *,
    env: Mapping[str, str] | None = None,
    api_password: str = "multihost-admin",
    minions: int = 2,
    controllers: int = 2,
    minion_concurrency: int | None = None,
    s3_proxy: bool = False,
) -> Iterator[Cluster]:
    """The whole cluster, up and healthy; on exit every process is stopped and the network removed,
    whatever happened. ``s3_proxy``: the processes reach S3 through the fault proxy (faultproxy.py) on the
    S3 host, moto behind it on S3_BACKEND_PORT."""
    workers = [f"controller{i + 1}" for i in range(controllers)] + [f"minion{i + 1}" for i in range(minions)]
    with ExitStack() as stack:
        net = stack.enter_context(network())
        for name in (*SERVICE_HOSTS, "api", *workers):
            net.add_host(name)
        net.write_hosts_files()
        procs = stack.enter_context(processes(workdir / "logs"))  # stopped before the network goes
        scratch = stack.enter_context(postgres_scratch())
        # Everything that can start at once does: the servers, then taskplan's processes as soon as the
        # catalog takes connections (they wait for Temporal themselves).
        temporal = start_temporal(procs, net.hosts["temporal"], workdir / "hosts" / "temporal")
        s3_port = S3_BACKEND_PORT if s3_proxy else S3_PORT
        s3 = start_s3(procs, net.hosts["s3"], s3_port)
        postgres = start_postgres(procs, net.hosts["db"], scratch, CATALOG_DATABASE, CATALOG_USER)
        access = create_bucket(s3, BUCKET, s3_port)
        services = {"temporal": temporal, "postgres": postgres, "s3": s3}
        if s3_proxy:
            services["s3proxy"] = start_s3_proxy(procs, net.hosts["s3"], s3_port)
        base = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith("LC_")}
        s3_env = {  # the AWS ecosystem's variables (README, "Running on several hosts")
            "AWS_ACCESS_KEY_ID": access.access_key_id,
            "AWS_SECRET_ACCESS_KEY": access.secret_access_key,
            "AWS_REGION": access.region,
            "AWS_ENDPOINT_URL": f"http://s3:{S3_PORT}",
        }
        cluster = Cluster(
            net=net,
            procs=procs,
            workdir=workdir,
            config=config,
            env={**base, **s3_env, **(env or {})},
            api_password=api_password,
            bucket=Bucket(
                BUCKET, access.endpoint, access.access_key_id, access.secret_access_key, access.region
            ),
            postgres_dir=scratch,
            services=services,
        )
        # The catalog's schema, once per release, before any process starts (as a migration Job would).
        cluster.run_taskplan("api", "db", "upgrade")
        for name in workers:
            if name.startswith("controller"):
                cluster.start_controller(name)
            else:
                cluster.start_minion(name, minion_concurrency)
        cluster.start_api()
        temporal.wait_for_port(TEMPORAL_PORT)
        cluster.wait_healthy()
        yield cluster
