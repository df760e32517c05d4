"""HTTPS for the API (taskplan.api.tls.certFile / keyFile) with a CA made by trustme, through a real httpx
client that verifies it; the start-up errors of bad files; principals' passwords as argon2 hashes, checked
in constant time, and `taskplan hash-password`."""

from __future__ import annotations

import io
import ssl
import statistics
import time
from pathlib import Path

import httpx
import pytest
import trustme
from argon2 import PasswordHasher
from pydantic import ValidationError
from temporalio.client import Client

from taskplan.api.auth import AccessControl
from taskplan.api.errors import ApiError
from taskplan.catalog import Catalog
from taskplan.cli import main
from taskplan.settings import Settings
from tests.api.test_auth import P, basic
from tests.support.api import live_api

HASHED_PASSWORD = "h4shed-pa55"
# argon2's cheapest parameters keep the tests fast on a loaded machine; the server reads them from the hash.
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
TIMED = PasswordHasher(time_cost=2, memory_cost=4096, parallelism=1)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = directory / "api.pem", directory / "api.key"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    return cert_file, key_file


def tls_properties(cert: Path, key: Path) -> dict[str, str]:
    return {"taskplan.api.tls.certFile": str(cert), "taskplan.api.tls.keyFile": str(key)}


async def test_the_api_serves_https_with_hashed_and_clear_passwords(
    engine: Client, tables: Catalog, data_dir: Path, ca: trustme.CA, server_files: tuple[Path, Path]
) -> None:
    properties = {
        **tls_properties(*server_files),
        "taskplan.dataDir": str(data_dir),
        P: "admin,clear",
        f"{P}.admin.password": CHEAP.hash(HASHED_PASSWORD),
        f"{P}.clear.password": "cl3ar-pw",
    }
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with live_api(engine, tables, properties) as url:
        assert url.startswith("https://")
        async with httpx.AsyncClient(base_url=url, verify=trusting) as http:
            # Probes stay open and answer over HTTPS.
            assert (await http.get("/health/liveness")).text == "OK"
            ready = await http.get("/health/readiness")
            assert ready.status_code == 200 and ready.json()["ready"] is True
            for who in (basic("admin", HASHED_PASSWORD), basic("clear", "cl3ar-pw")):
                for _ in range(2):  # the second time from the remembered verification
                    answer = await http.get("/tables", headers=who)
                    assert answer.status_code == 200, answer.text
            metrics = await http.get("/metrics", headers=basic("admin", HASHED_PASSWORD))
            assert metrics.status_code == 200 and "# TYPE" in metrics.text
            for wrong in (basic("admin", "h4shed-pa56"), basic("clear", HASHED_PASSWORD), basic("x", "y")):
                assert (await http.get("/tables", headers=wrong)).status_code == 401
        # A client that does not trust the CA refuses the server; plain HTTP gets no answer.
        async with httpx.AsyncClient(base_url=url) as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get("/health/liveness")
        async with httpx.AsyncClient(base_url=url.replace("https://", "http://")) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get("/health/liveness")


def start_api(tmp_path: Path, properties: dict[str, str], capsys: pytest.CaptureFixture[str]) -> str:
    """`taskplan api` with these properties: it must refuse to start (before connecting to Temporal)."""
    config = tmp_path / "taskplan.properties"
    lines = [f"{key}={value}" for key, value in properties.items()]
    config.write_text("\n".join(["temporal.address=127.0.0.1:1", *lines]) + "\n")
    assert main(["--config", str(config), "api"]) != 0
    out = capsys.readouterr()
    return out.out + out.err


def test_bad_tls_files_stop_the_api_with_a_clear_message(
    tmp_path: Path, server_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = server_files
    other_key = tmp_path / "other.key"
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other_key))
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    missing = tmp_path / "missing.pem"
    cases = [
        (tls_properties(missing, key), f"taskplan.api.tls.certFile {missing}: No such file or directory"),
        (tls_properties(cert, tmp_path), f"taskplan.api.tls.keyFile {tmp_path}: Is a directory"),
        (tls_properties(not_pem, key), "not a PEM certificate and key"),
        (tls_properties(cert, other_key), "the key is not the certificate's (key values mismatch)"),
    ]
    for properties, message in cases:
        output = start_api(tmp_path, properties, capsys)
        assert "taskplan cannot start" in output and message in output, output
    with pytest.raises(ValidationError, match=r"taskplan\.api\.tls\.certFile is set without .*keyFile"):
        Settings.model_validate({"taskplan.api.tls.certFile": str(cert)})


def test_a_malformed_hash_stops_the_api_without_showing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = start_api(tmp_path, {P: "admin", f"{P}.admin.password": "$argon2id$v=19$broken"}, capsys)
    assert "principal 'admin'" in output and "not a valid argon2 hash" in output, output
    assert "broken" not in output


def test_hash_password_prints_a_hash_that_authenticates(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret from stdin\n"))
    assert main(["hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("$argon2id$") and "s3cret" not in printed
    assert PasswordHasher().verify(printed, "s3cret from stdin")  # the line, without its newline


def test_an_unknown_user_costs_what_a_wrong_password_costs() -> None:
    """No timing difference tells a known user name from an unknown one (ratios of medians, same run)."""
    access = AccessControl.from_settings(
        # Parameters costly enough (some ms) that the verification, not the noise, is what is timed.
        Settings.model_validate({P: "admin", f"{P}.admin.password": TIMED.hash("right")})
    )

    def cost(user: str, password: str) -> float:
        samples = []
        for _ in range(7):
            started = time.perf_counter()
            with pytest.raises(ApiError):
                access.authenticate(basic(user, password)["Authorization"])
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    wrong, unknown = cost("admin", "wrong"), cost("nobody", "wrong")
    access.authenticate(basic("admin", "right")["Authorization"])
    # Before, an unknown user cost a compare_digest: a ratio near 0.001.
    assert 0.33 < unknown / wrong < 3.0, (unknown, wrong)
