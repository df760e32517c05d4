"""Temporal behind a TLS terminator that requires a client certificate (mTLS), as a secured cluster or
Temporal Cloud is: a worker configured by the `temporal` CLI's TEMPORAL_* variables and an API configured
by a CLI TOML profile plus taskplan properties connect through it, `taskplan setup` prepares the namespace
through it, and a plan completes; a wrong or missing client certificate stops a process at start, in
seconds, with a message that says what to check. A second port of the terminator wants an API key instead
of a certificate: the key is sent, and a wrong or missing one is refused at start.

The terminator is nginx (Debian's package; `make test` installs it), run by the test with a configuration,
prefix and pid file of its own in a temporary directory: an HTTP/2 server that terminates TLS (ALPN `h2`,
which the Temporal SDK's client requires of a TLS server), verifies the client certificate against the
test's CA (`ssl_verify_client on`) and passes the gRPC calls to the session's dev server (`grpc_pass`),
with read and send timeouts well above Temporal's 70 s long polls. nginx checks the certificate after the
handshake and answers a missing or untrusted one with HTTP 400, which the message names; a terminator
that refuses it inside the handshake is the last test's.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
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
API_KEY = "test-key-" + uuid.uuid4().hex  # what the terminator's API-key port accepts


@dataclass
class Secured:
    address: str  # the terminator
    namespace: str
    dir: Path
    api_key_address: str  # the terminator's second port: TLS without a client certificate, an API key

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


def nginx_config(directory: Path, port: int, upstream: str, api_key_port: int) -> str:
    """nginx as a TLS terminator for gRPC: everything it writes stays in ``directory`` (no default path,
    no port but its two). ``port`` requires a client certificate from the test's CA; ``api_key_port``
    requires none but the API key, as Temporal Cloud's API-key endpoints do (HTTP 401 without it)."""
    ca, server = directory / "ca.pem", directory / "server.pem"
    # As root, nginx's workers would run as `nobody` and could not enter the 0700 temporary directory.
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {directory / 'temp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}
daemon off;
master_process on;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "nginx-error.log"} info;
events {{
    worker_connections 1024;
}}
http {{
{temp}
    log_format grpc '$remote_addr "$request" $status client=$ssl_client_verify header=$http_x_taskplan_test';
    access_log {directory / "nginx-access.log"} grpc;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {server};
        ssl_certificate_key {server};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        client_max_body_size 0;        # Temporal's payloads can pass nginx's 1 MB default
        keepalive_timeout 1h;          # a worker's connection stays idle between polls
        keepalive_requests 1000000;
        location / {{
            grpc_pass grpc://{upstream};
            grpc_read_timeout 300s;    # long polls last up to 70 s
            grpc_send_timeout 300s;
        }}
    }}
    server {{
        listen 127.0.0.1:{api_key_port} ssl http2;
        ssl_certificate {server};
        ssl_certificate_key {server};
        client_max_body_size 0;
        location / {{
            if ($http_authorization != "Bearer {API_KEY}") {{
                return 401;
            }}
            grpc_pass grpc://{upstream};
            grpc_read_timeout 300s;
            grpc_send_timeout 300s;
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def secured(temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """nginx with mTLS in front of the session's dev server, and a namespace of this module's, made by
    `taskplan setup`'s code through the terminator (the session's workers never poll it)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: `make test` installs it (apt-get install nginx)"
    directory = tmp_path_factory.mktemp("tls")
    make_certificates(directory)
    (directory / "temp").mkdir()
    port, api_key_port = free_port(), free_port()
    upstream = temporal_env.client.service_client.config.target_host
    (directory / "nginx.conf").write_text(
        nginx_config(directory, port, upstream, api_key_port), encoding="utf-8"
    )
    with (directory / "nginx.log").open("ab") as log:
        proxy = subprocess.Popen(
            [nginx, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", "stderr"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port("127.0.0.1", port, 30, proxy)
        wait_for_port("127.0.0.1", api_key_port, 30, proxy)
        result = Secured(
            f"127.0.0.1:{port}", f"tls-{uuid.uuid4().hex[:8]}", directory, f"127.0.0.1:{api_key_port}"
        )
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
    # It went through the terminator, with the certificate nginx verified.
    calls = (secured.dir / "nginx-access.log").read_text()
    assert "WorkflowService/PollWorkflowTaskQueue" in calls, calls[-2000:]
    assert "client=SUCCESS" in calls and "client=FAILED" not in calls, calls[-2000:]
    polls = [line for line in calls.splitlines() if "PollActivityTaskQueue" in line]
    assert any("header=tls" in line for line in polls), polls[-5:]  # the worker's gRPC header, on the wire


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
            "answered 400 Bad Request instead of gRPC, as nginx does for a missing or untrusted client "
            "certificate: it wants a client certificate it trusts",
        ),
        "none": (
            secured.settings(**{"temporal.tls.clientCertPath": "", "temporal.tls.clientKeyPath": ""}),
            "it wants a client certificate it trusts",
        ),
        "untrusted server": (
            secured.settings(**{"temporal.tls.serverCaCertPath": secured.file("intruder.pem")}),
            "the server's certificate is not trusted: check the server CA",
        ),
        "plaintext": (
            Settings.model_validate({"temporal.address": secured.address, "taskplan.dataDir": str(tmp_path)}),
            "does it want TLS (temporal.tls=true, TEMPORAL_TLS=true)?",  # closed, or nginx's HTTP/1.1 400
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
    assert "it wants a client certificate it trusts" in api


async def test_an_api_key_is_sent_and_a_wrong_or_missing_one_is_refused_at_start(secured: Secured) -> None:
    """The API key (temporal.apiKey, TEMPORAL_API_KEY) goes with every call: the terminator's API-key
    port passes the process's calls on only with it; without it, or with another, the start stops."""
    base = {
        "temporal.address": secured.api_key_address,
        "temporal.namespace": secured.namespace,
        "temporal.tls.serverName": SERVER_NAME,
        "temporal.tls.serverCaCertPath": secured.file("ca.pem"),
        "temporal.connectTimeoutSeconds": "5",
    }
    settings = load_settings(None, environ={"TEMPORAL_API_KEY": API_KEY, **base_env(base)})
    assert settings.temporal_api_key == API_KEY
    client = await Stack(settings, build_registry(""), catalog=None).connect()  # type: ignore[arg-type]
    assert (await client.workflow_service.get_system_info(GetSystemInfoRequest())).server_version
    for key in ("not-the-key", None):
        wrong = Settings.model_validate({**base, **({"temporal.apiKey": key} if key else {})})
        started = time.monotonic()
        with pytest.raises(TemporalConnectError) as refusal:
            await connect(wrong, retries=60)
        assert time.monotonic() - started < 5
        assert "the server refused the credentials: check the API key" in str(refusal.value), str(
            refusal.value
        )
    assert API_KEY not in str(refusal.value)


def base_env(properties: dict[str, str]) -> dict[str, str]:
    """Properties as the environment sets them (TASKPLAN_PROP_<key>)."""
    return {f"TASKPLAN_PROP_{key}": value for key, value in properties.items()}


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


async def test_a_server_that_refuses_the_certificate_in_the_handshake_is_named(tmp_path: Path) -> None:
    """A terminator that checks the client certificate inside the TLS handshake (HAProxy's `verify
    required`, a Temporal server's own mTLS) aborts it with an alert, where nginx answers 400 after it:
    here a TLS server of Python's own (OpenSSL) that requires a certificate from the test's CA."""
    make_certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.pem")
    context.load_verify_locations(tmp_path / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])

    async def never_reached(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(never_reached, "127.0.0.1", 0, ssl=context)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    base = {
        "temporal.address": address,
        "temporal.tls.serverName": SERVER_NAME,
        "temporal.tls.serverCaCertPath": str(tmp_path / "ca.pem"),
        "temporal.connectTimeoutSeconds": "5",
    }
    try:
        for client in (
            {"temporal.tls.clientCertPath": "intruder.pem", "temporal.tls.clientKeyPath": "intruder.key"},
            {},
        ):
            settings = Settings.model_validate(
                {**base, **{key: str(tmp_path / name) for key, name in client.items()}}
            )
            with pytest.raises(TemporalConnectError) as refusal:
                await connect(settings)
            assert "the server refused the TLS handshake: it wants a client certificate it trusts" in str(
                refusal.value
            ), str(refusal.value)
    finally:
        server.close()
