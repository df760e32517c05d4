"""Temporal behind a TLS terminator that requires a client certificate (mTLS), as a secured cluster or
Temporal Cloud is: a worker configured by the `temporal` CLI's TEMPORAL_* variables and an API configured
by a CLI TOML profile plus taskplan properties connect through it, `taskplan setup` prepares the namespace
through it, and a plan completes; a wrong or missing client certificate stops a process at start, in
seconds, with a message that says what to check.

The terminator is HAProxy (Debian's package; `make test` installs it): it terminates TLS, verifies the
client certificate against the test's CA and passes the gRPC stream to the session's dev server. stunnel4
cannot stand in: it does not negotiate ALPN `h2`, which the Temporal SDK's client requires of a TLS server.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from temporalio.testing import WorkflowEnvironment

from taskplan.bootstrap import Stack
from taskplan.catalog import Catalog
from taskplan.registry import build_registry
from taskplan.runtime import wait_for_port
from taskplan.settings import Settings, load_settings
from taskplan.temporal import TemporalConnectError, connect, connect_options
from taskplan.temporal_setup import setup_cluster
from tests.chaos.cluster import free_port
from tests.support.deployment import refused, run_plan, start_api, start_worker, stop

SERVER_NAME = "temporal.test"  # the only name in the server's certificate: the client must say it


@dataclass
class Secured:
    address: str  # the terminator
    namespace: str
    dir: Path

    def file(self, name: str) -> str:
        return str(self.dir / name)

    def settings(self, **extra: str) -> Settings:
        values = {
            "temporal.address": self.address,
            "temporal.namespace": self.namespace,
            "temporal.tls.serverName": SERVER_NAME,
            "temporal.tls.serverCaCertPath": self.file("ca.pem"),
            "temporal.tls.clientCertPath": self.file("client.pem"),
            "temporal.tls.clientKeyPath": self.file("client.key"),
            "taskplan.dataDir": str(self.dir / "data"),
            "temporal.connectTimeoutSeconds": "5",
            **extra,
        }
        return Settings.model_validate({k: v for k, v in values.items() if v})


def make_certificates(directory: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    ca.issue_cert(SERVER_NAME).private_key_and_cert_chain_pem.write_to_path(str(directory / "server.pem"))
    client = ca.issue_cert("taskplan-worker")
    client.cert_chain_pems[0].write_to_path(str(directory / "client.pem"))
    client.private_key_pem.write_to_path(str(directory / "client.key"))
    intruder = trustme.CA().issue_cert("intruder")  # a certificate from a CA the server does not trust
    intruder.cert_chain_pems[0].write_to_path(str(directory / "intruder.pem"))
    intruder.private_key_pem.write_to_path(str(directory / "intruder.key"))


@pytest.fixture(scope="module")
def secured(temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """HAProxy with mTLS in front of the session's dev server, and a namespace of this module's, made by
    `taskplan setup`'s code through the terminator (the session's workers never poll it)."""
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(haproxy).exists(), "haproxy is missing: `make test` installs it (apt-get install haproxy)"
    directory = tmp_path_factory.mktemp("tls")
    make_certificates(directory)
    port = free_port()
    ca = directory / "ca.pem"
    (directory / "haproxy.cfg").write_text(
        f"""global
    log stderr format raw local0 info
defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend temporal_tls
    bind 127.0.0.1:{port} ssl crt {directory / "server.pem"} ca-file {ca} verify required alpn h2
    default_backend temporal
backend temporal
    server dev {temporal_env.client.service_client.config.target_host}
""",
        encoding="utf-8",
    )
    with (directory / "haproxy.log").open("ab") as log:
        proxy = subprocess.Popen(
            [haproxy, "-db", "-f", str(directory / "haproxy.cfg")], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port("127.0.0.1", port, 30, proxy)
        result = Secured(f"127.0.0.1:{port}", f"tls-{uuid.uuid4().hex[:8]}", directory)
        settings = result.settings()

        async def prepare() -> None:
            await setup_cluster(await connect(settings), settings, retention_days=1)

        asyncio.run(prepare())
        (directory / "data").mkdir()
        Catalog(settings.resolved_catalog_url).migrate()  # `taskplan db upgrade`
        yield result
    finally:
        proxy.terminate()
        proxy.wait(10)


def test_a_worker_and_the_api_connect_through_mtls_and_a_plan_completes(
    secured: Secured, tmp_path: Path
) -> None:
    data = {"TASKPLAN_DATADIR": str(secured.dir / "data")}
    # The worker: the temporal CLI's own environment variables, nothing else.
    worker_env = {
        **data,
        "TEMPORAL_ADDRESS": secured.address,
        "TEMPORAL_NAMESPACE": secured.namespace,
        "TEMPORAL_TLS_SERVER_NAME": SERVER_NAME,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": secured.file("ca.pem"),
        "TEMPORAL_TLS_CLIENT_CERT_PATH": secured.file("client.pem"),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": secured.file("client.key"),
        "TEMPORAL_GRPC_META_X_TASKPLAN_TEST": "tls",
    }
    # The API: a CLI TOML profile, with a taskplan property over its namespace (properties win).
    profile = tmp_path / "temporal.toml"
    profile.write_text(
        f"""[profile.secured]
address = "{secured.address}"
namespace = "not-this-one"
[profile.secured.tls]
server_name = "{SERVER_NAME}"
server_ca_cert_path = "{secured.file("ca.pem")}"
client_cert_path = "{secured.file("client.pem")}"
client_key_path = "{secured.file("client.key")}"
""",
        encoding="utf-8",
    )
    properties = tmp_path / "api.properties"
    properties.write_text(f"temporal.namespace = {secured.namespace}\n", encoding="utf-8")
    port = free_port()
    api_env = {
        **data,
        "TEMPORAL_CONFIG_FILE": str(profile),
        "TEMPORAL_PROFILE": "secured",
        "TASKPLAN_CONFIG": str(properties),
        "CONTROLLER_PORT": str(port),
    }
    resolved = load_settings(properties, environ=api_env)
    assert (resolved.temporal_address, resolved.temporal_namespace) == (secured.address, secured.namespace)
    assert connect_options(load_settings(None, environ=worker_env))["rpc_metadata"] == {
        "x-taskplan-test": "tls"
    }

    worker = start_worker(worker_env, tmp_path / "worker.log")
    api = start_api(api_env, port, tmp_path / "api.log")
    try:
        plan = run_plan(f"http://127.0.0.1:{port}", api, tmp_path / "api.log")
    finally:
        stop(api, worker)
    assert plan["status"] == "COMPLETED", plan
    assert "Connect from" in (secured.dir / "haproxy.log").read_text()  # it went through the terminator


async def test_a_wrong_or_missing_client_certificate_is_refused_at_start(
    secured: Secured, tmp_path: Path
) -> None:
    cases = {
        "intruder": (
            secured.settings(
                **{
                    "temporal.tls.clientCertPath": secured.file("intruder.pem"),
                    "temporal.tls.clientKeyPath": secured.file("intruder.key"),
                }
            ),
            "the server refused the TLS handshake: it wants a client certificate it trusts",
        ),
        "none": (
            secured.settings(**{"temporal.tls.clientCertPath": "", "temporal.tls.clientKeyPath": ""}),
            "the server refused the TLS handshake",
        ),
        "untrusted server": (
            secured.settings(**{"temporal.tls.serverCaCertPath": secured.file("intruder.pem")}),
            "the server's certificate is not trusted: check the server CA",
        ),
        "plaintext": (
            Settings.model_validate({"temporal.address": secured.address, "taskplan.dataDir": str(tmp_path)}),
            "the server closed the connection: does it want TLS",
        ),
    }
    for name, (settings, message) in cases.items():
        stack = Stack(settings, build_registry(""), catalog=None)  # type: ignore[arg-type]  # unused
        started = time.monotonic()
        with pytest.raises(SystemExit) as refusal:
            await stack.connect(retries=60)  # what every process does at start
        assert time.monotonic() - started < 5, name  # refused at once, never retried for a minute
        text = str(refusal.value)
        assert text.startswith(f"taskplan cannot start: cannot connect to Temporal at {secured.address}"), (
            text
        )
        assert message in text, (name, text)
    with pytest.raises(TemporalConnectError, match=r"cannot read temporal.tls.clientCertPath /nonexistent"):
        await connect(secured.settings(**{"temporal.tls.clientCertPath": "/nonexistent"}))

    # The same as processes: each stops by itself with the message.
    env = {
        "TASKPLAN_DATADIR": str(secured.dir / "data"),
        "TEMPORAL_ADDRESS": secured.address,
        "TEMPORAL_NAMESPACE": secured.namespace,
        "TEMPORAL_TLS_SERVER_NAME": SERVER_NAME,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": secured.file("ca.pem"),
    }
    intruder = {
        "TEMPORAL_TLS_CLIENT_CERT_PATH": secured.file("intruder.pem"),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": secured.file("intruder.key"),
    }
    port = str(free_port())
    (worker, _), (api, _) = await asyncio.gather(  # side by side: each costs a Python start-up
        asyncio.to_thread(
            refused, ["worker.py", "--role", "minion"], {**env, **intruder}, tmp_path / "w.log"
        ),
        asyncio.to_thread(refused, ["-m", "taskplan.cli", "api", "--port", port], env, tmp_path / "api.log"),
    )
    assert "taskplan cannot start: cannot connect to Temporal" in worker
    assert "it wants a client certificate it trusts" in worker
    assert "taskplan cannot start: cannot connect to Temporal" in api
    assert "the server refused the TLS handshake" in api


async def test_a_server_that_never_answers_stops_a_process_at_the_connect_timeout(tmp_path: Path) -> None:
    """A port that accepts connections and says nothing (a half-dead proxy): no hang, a message."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshakes; nobody ever reads or writes
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        for extra in ({}, {"temporal.tls": "true"}):
            settings = Settings.model_validate(
                {"temporal.address": address, "temporal.connectTimeoutSeconds": "1", **extra}
            )
            started = time.monotonic()
            with pytest.raises(
                TemporalConnectError, match=r"no answer within 1s \(temporal.connectTimeoutSeconds\)"
            ):
                await connect(settings, retries=60)
            assert time.monotonic() - started < 4
