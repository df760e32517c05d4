"""A real S3-compatible server for tests: moto's standalone server (``python -m moto.server``) as a process
on a free port, with authentication on, so wrong credentials are refused as AWS refuses them.

The code under test talks to it with the production client (obstore, through ``taskplan.storage``),
configured by the standard variables (:meth:`MotoServer.env`) or the properties
(:meth:`MotoServer.properties`). Buckets are made with boto3 (moto's own dependency): S3 clients such as
obstore have no CreateBucket.

    from tests.support.s3 import moto_server  # the session-scoped fixture

    def test_x(moto_server: MotoServer) -> None:
        bucket = moto_server.create_bucket()  # a unique name
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

REGION = "us-east-1"
# The first requests are free of authentication: they make the IAM user whose key every test then uses.
_SETUP_REQUESTS = 3


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    access_key_id: str = ""
    secret_access_key: str = ""
    region: str = REGION
    buckets: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a process at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def properties(self) -> dict[str, str]:
        """The same as taskplan properties (for a Settings built in code)."""
        return {
            "taskplan.storage.s3.accessKeyId": self.access_key_id,
            "taskplan.storage.s3.secretAccessKey": self.secret_access_key,
            "taskplan.storage.s3.region": self.region,
            "taskplan.storage.s3.endpointUrl": self.endpoint,
        }

    def boto3(self, service: str = "s3") -> Any:
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key_id or "setup",
            aws_secret_access_key=self.secret_access_key or "setup",
            region_name=self.region,
        )

    def create_bucket(self, name: str | None = None) -> str:
        bucket = name or f"tp-{uuid.uuid4().hex[:16]}"
        self.boto3().create_bucket(Bucket=bucket)
        self.buckets.append(bucket)
        return bucket

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_moto_server(host: str = "127.0.0.1", port: int | None = None, *, auth: bool = True) -> MotoServer:
    """Start the server and wait until it answers; with ``auth``, make an IAM user with full access and use
    its key (anything else is refused: InvalidAccessKeyId / SignatureDoesNotMatch)."""
    port = port or free_port(host)
    env = {**os.environ, "MOTO_PORT": str(port)}
    if auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(_SETUP_REQUESTS)
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = MotoServer(host, port, process)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the moto server exited with {process.returncode}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("the moto server did not start within 30 s") from None
            time.sleep(0.05)
    if auth:
        iam = server.boto3("iam")
        iam.create_user(UserName="taskplan")
        iam.put_user_policy(
            UserName="taskplan",
            PolicyName="all",
            PolicyDocument='{"Version": "2012-10-17", "Statement": '
            '[{"Effect": "Allow", "Action": "*", "Resource": "*"}]}',
        )
        key = iam.create_access_key(UserName="taskplan")["AccessKey"]
        server.access_key_id, server.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]
    else:
        server.access_key_id, server.secret_access_key = "testing", "testing"
    return server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = start_moto_server()
    try:
        yield server
    finally:
        server.stop()
