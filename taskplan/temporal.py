"""Connecting to Temporal, the one way every process does: the `temporal` CLI's connection (address,
namespace, TLS, mTLS, API key, gRPC headers; see Settings and ``temporal_cli_profile``), the project's
data converter (pydantic, camelCase JSON), and a connect timeout, so that a refused certificate or a
silent port stops a process at start with a message that says what to check, never a hang."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig

from taskplan.settings import Settings
from taskplan.telemetry import client_interceptors, sdk_runtime

log = logging.getLogger(__name__)


class TemporalConnectError(RuntimeError):
    """Temporal cannot be reached with the configured connection; the message says what to check."""


def _pem(settings: Settings, name: str, path: Path | None, data: str | None) -> bytes | None:
    if data is not None:
        return data.encode()
    if path is None:
        return None
    try:
        return path.expanduser().read_bytes()
    except OSError as exc:
        raise TemporalConnectError(
            f"cannot read temporal.tls.{name}Path {path}: {exc.strerror or exc}"
        ) from None


def tls_enabled(settings: Settings) -> bool:
    """On when asked (temporal.tls, TEMPORAL_TLS), else when any TLS value or an API key is set (the CLI's
    rule: an API key means TLS with the system's roots)."""
    if settings.temporal_tls is not None:
        return settings.temporal_tls
    return any(
        value is not None
        for value in (
            settings.temporal_api_key,
            settings.temporal_tls_server_name,
            settings.temporal_tls_server_ca_cert_path,
            settings.temporal_tls_server_ca_cert_data,
            settings.temporal_tls_client_cert_path,
            settings.temporal_tls_client_cert_data,
        )
    )


def tls_config(settings: Settings) -> TLSConfig | bool:
    if not tls_enabled(settings):
        return False
    return TLSConfig(
        server_root_ca_cert=_pem(
            settings,
            "serverCaCert",
            settings.temporal_tls_server_ca_cert_path,
            settings.temporal_tls_server_ca_cert_data,
        ),
        domain=settings.temporal_tls_server_name,
        client_cert=_pem(
            settings,
            "clientCert",
            settings.temporal_tls_client_cert_path,
            settings.temporal_tls_client_cert_data,
        ),
        client_private_key=_pem(
            settings,
            "clientKey",
            settings.temporal_tls_client_key_path,
            settings.temporal_tls_client_key_data,
        ),
    )


def connect_options(settings: Settings) -> dict[str, Any]:
    """Client.connect's connection arguments from the settings (no secrets are logged from these)."""
    options: dict[str, Any] = {
        "target_host": settings.temporal_address,
        "namespace": settings.temporal_namespace,
        "tls": tls_config(settings),
    }
    if settings.temporal_api_key:
        options["api_key"] = settings.temporal_api_key
    if settings.temporal_grpc_meta:
        options["rpc_metadata"] = settings.temporal_grpc_meta
    return options


def describe_connection(settings: Settings) -> str:
    """Where and how a process connects, for messages: never a key or a certificate's content."""

    def source(path: Path | None, data: str | None) -> str | None:
        return str(path) if path is not None else ("inline PEM" if data is not None else None)

    parts = [f"namespace {settings.temporal_namespace}"]
    if tls_enabled(settings):
        tls = []
        ca = source(settings.temporal_tls_server_ca_cert_path, settings.temporal_tls_server_ca_cert_data)
        tls.append(f"server CA {ca}" if ca else "the system's CAs")
        if settings.temporal_tls_server_name:
            tls.append(f"server name {settings.temporal_tls_server_name}")
        cert = source(settings.temporal_tls_client_cert_path, settings.temporal_tls_client_cert_data)
        if cert:
            tls.append(f"client certificate {cert}")
        parts.append("TLS (" + ", ".join(tls) + ")")
    else:
        parts.append("no TLS")
    if settings.temporal_api_key:
        parts.append("API key")
    if settings.temporal_grpc_meta:
        parts.append("gRPC headers " + ", ".join(settings.temporal_grpc_meta))
    return "; ".join(parts)


def _retryable(text: str) -> bool:
    """Nothing listens yet (a server still starting): worth another try. A TLS or credential problem,
    or a server that answers wrongly, is not."""
    return "ConnectionRefused" in text or "Connection refused" in text


def _hint(text: str, settings: Settings) -> str:
    tls = tls_enabled(settings)
    if _retryable(text):
        return "nothing accepts connections there: is Temporal running, and is temporal.address right?"
    if "InvalidCertificate" in text or "certificate verify failed" in text:
        return (
            "the server's certificate is not trusted: check the server CA (temporal.tls.serverCaCertPath, "
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH) and the server name (temporal.tls.serverName)"
        )
    refused = (
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "PERMISSIONDENIED",
        "401 UNAUTHORIZED",
        "403 FORBIDDEN",
    )
    if any(word in text.upper() for word in refused):  # gRPC's codes, or a proxy's HTTP answer
        return "the server refused the credentials: check the API key (temporal.apiKey, TEMPORAL_API_KEY)"
    # TLS 1.3: a server that rejects the client's certificate does so after the client's side of the
    # handshake is done, so the client sees an alert, a closed connection or a broken pipe.
    closed = (
        "BrokenPipe",
        "broken pipe",
        "H2NotNegotiated",
        "transport error",
        "connection closed",
        "Cancel",
    )
    # A TLS terminator that checks client certificates over HTTP (nginx's `ssl_verify_client on`) lets
    # the handshake finish and answers a missing or untrusted certificate with a plain 400, not gRPC.
    if tls and "status: 400 Bad Request" in text:
        return (
            "a TLS terminator in front of the server answered 400 Bad Request instead of gRPC, as nginx "
            "does for a missing or untrusted client certificate: it wants a client certificate it trusts "
            "(temporal.tls.clientCertPath and clientKeyPath, TEMPORAL_TLS_CLIENT_CERT_PATH and "
            "TEMPORAL_TLS_CLIENT_KEY_PATH)"
        )
    if tls and ("alert" in text.lower() or any(word in text for word in closed)):
        return (
            "the server refused the TLS handshake: it wants a client certificate it trusts "
            "(temporal.tls.clientCertPath and clientKeyPath, TEMPORAL_TLS_CLIENT_CERT_PATH and "
            "TEMPORAL_TLS_CLIENT_KEY_PATH)"
        )
    if not tls and any(word in text for word in closed):
        return "the server closed the connection: does it want TLS (temporal.tls=true, TEMPORAL_TLS=true)?"
    if not tls and "h2 protocol error" in text:  # a TLS port answering plaintext (nginx: an HTTP/1.1 400)
        return (
            "the server does not answer plaintext gRPC: does it want TLS "
            "(temporal.tls=true, TEMPORAL_TLS=true)?"
        )
    return "check the Temporal connection settings (temporal.*, or the temporal CLI's profile)"


_DETAILS = (
    re.compile(r'error: "([^"]+)"'),
    re.compile(r'Error\(\w+, "([^"]+)"\)'),
    re.compile(r'message: "([^"]+)"'),
    re.compile(r"error: (\w+\(\w+\))"),
    re.compile(r"ConnectError\((\w+)\)"),
)


def _short(text: str) -> str:
    """The SDK's innermost detail (``received fatal alert: UnknownCA``) rather than its wrapping."""
    found = [(m.start(), m.group(1)) for pattern in _DETAILS for m in pattern.finditer(text)]
    detail = max(found)[1] if found else text.splitlines()[0]
    return detail[:300]


async def connect(settings: Settings, *, retries: int = 1, identity: str | None = None) -> Client:
    """Connect with the project's data converter. While nothing listens at the address (a server just
    started) it tries ``retries`` times, 0.5 s apart; any other failure, or no answer within
    temporal.connectTimeoutSeconds, raises TemporalConnectError at once."""
    options = connect_options(settings)
    kwargs: dict[str, Any] = {"identity": identity} if identity else {}
    runtime = sdk_runtime(settings)
    if runtime is not None:
        kwargs["runtime"] = runtime
    where = f"Temporal at {settings.temporal_address} ({describe_connection(settings)})"
    timeout = settings.temporal_connect_timeout_s
    for attempt in range(max(1, retries)):
        try:
            return await asyncio.wait_for(
                Client.connect(
                    **options,
                    data_converter=pydantic_data_converter,
                    interceptors=client_interceptors(settings),
                    **kwargs,
                ),
                timeout,
            )
        except TimeoutError:
            raise TemporalConnectError(
                f"cannot connect to {where}: no answer within {timeout:g}s "
                "(temporal.connectTimeoutSeconds): is the address right, and does a firewall let it through?"
            ) from None
        except Exception as exc:
            text = str(exc)
            if _retryable(text) and attempt + 1 < retries:
                await asyncio.sleep(0.5)
                continue
            raise TemporalConnectError(
                f"cannot connect to {where}: {_hint(text, settings)} ({_short(text)})"
            ) from None
    raise AssertionError("unreachable")  # the loop returns or raises
