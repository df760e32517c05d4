"""The storage interface on both backends, the S3 one against a real moto server process (obstore, the
production client, unpatched); and what the S3 backend says about a bad endpoint, key or bucket."""

from __future__ import annotations

import errno
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from taskplan.bootstrap import location_problem, open_stack
from taskplan.settings import Settings, load_settings
from taskplan.storage import (
    LocalStore,
    ObjectStore,
    StorageAccessError,
    StorageError,
    StorageNotFoundError,
    StorageUnavailableError,
    open_store,
)
from taskplan.storage.uri import BadURIError, check_under, parse_s3
from tests.support.s3 import MotoServer, free_port


def s3_settings(server: MotoServer, **extra: str) -> Settings:
    return Settings.model_validate({**server.properties(), **extra})


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    server: MotoServer = request.getfixturevalue("moto_server")
    bucket = server.create_bucket()
    return open_store(f"s3://{bucket}/root/dir", s3_settings(server))


def test_put_get_list_delete(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"x" * 1000)
    store.put_file(source, "t1/a.parquet")
    source.write_bytes(b"y" * 10)
    store.put_file(source, "t1/b.parquet", move=True)
    assert not source.exists()  # consumed
    store.put_file(_file(tmp_path, b"z"), "t2/c.parquet")
    listed = store.list("t1/")
    assert [(i.key, i.size) for i in listed] == [("t1/a.parquet", 1000), ("t1/b.parquet", 10)]
    assert all(abs(i.last_modified - time.time()) < 120 for i in listed)
    assert [i.key for i in store.list("t")] == ["t1/a.parquet", "t1/b.parquet", "t2/c.parquet"]
    copy = tmp_path / "copy.bin"
    info = store.get_file("t1/a.parquet", copy)
    assert copy.read_bytes() == b"x" * 1000 and info.size == 1000
    assert store.exists("t1/b.parquet") and not store.exists("t1/zz")
    assert store.head("t1/zz") is None
    with pytest.raises(StorageNotFoundError):
        store.get_file("t1/zz", copy)
    assert store.delete("t1/b.parquet") and not store.delete("t1/b.parquet")
    assert store.delete_prefix("t1/") == 1
    assert [i.key for i in store.list("")] == ["t2/c.parquet"]


def _file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / uuid.uuid4().hex
    path.write_bytes(content)
    return path


def test_an_s3_object_has_an_etag_that_changes_with_its_content(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    store = open_store(f"s3://{moto_server.create_bucket()}", s3_settings(moto_server))
    store.put_file(_file(tmp_path, b"one"), "in/f.csv")
    [first] = store.list("in/")
    store.put_file(_file(tmp_path, b"two"), "in/f.csv")
    [second] = store.list("in/")
    assert first.etag and second.etag and first.etag != second.etag
    assert first.fingerprint() != second.fingerprint() and first.size == second.size
    with pytest.raises(StorageError, match="changed since it was listed"):
        store.get_file("in/f.csv", tmp_path / "x", if_match=first.etag)
    assert store.get_file("in/f.csv", tmp_path / "x", if_match=second.etag).etag == second.etag


def test_wrong_credentials_a_missing_bucket_and_an_unreachable_endpoint(
    moto_server: MotoServer,
) -> None:
    bucket = moto_server.create_bucket()
    wrong = Settings.model_validate(
        {**moto_server.properties(), "taskplan.storage.s3.secretAccessKey": "not-the-secret"}
    )
    with pytest.raises(StorageAccessError, match="SignatureDoesNotMatch") as denied:
        open_store(f"s3://{bucket}/x", wrong).check()
    assert "not-the-secret" not in str(denied.value)
    with pytest.raises(StorageNotFoundError, match="NoSuchBucket"):
        open_store("s3://no-such-bucket-here/x", s3_settings(moto_server)).check()
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"127\.0\.0\.1"):
        open_store(
            f"s3://{bucket}", s3_settings(moto_server, **{"taskplan.storage.s3.endpointUrl": closed})
        ).check()
    assert time.monotonic() - started < 30  # a few quick retries, not obstore's default three minutes


def test_s3_uris_are_normalized_and_kept_under_their_roots() -> None:
    root = parse_s3("s3://bucket-a/in")
    assert str(parse_s3("s3://bucket-a//in/x//y.csv")) == "s3://bucket-a/in/x/y.csv"
    assert str(parse_s3("s3://bucket-a/in/a%20b.csv")) == "s3://bucket-a/in/a b.csv"
    check_under(parse_s3("s3://bucket-a/in/x.csv"), [root], "inputDirURI", "x")
    for outside in ("s3://bucket-a/input/x.csv", "s3://bucket-b/in/x.csv", "s3://bucket-a/other"):
        with pytest.raises(BadURIError, match="outside the allowed roots"):
            check_under(parse_s3(outside), [root], "inputDirURI", outside)
    for bad in ("s3://bucket-a/in/../secret", "s3://bucket-a/in/./x", "s3://bucket-a/in/%2e%2e/x"):
        with pytest.raises(BadURIError, match=r"'\.\.' segment"):
            parse_s3(bad)
    for bad in ("s3://B_A/x", "s3://bucket-a/x?versionId=1", "s3://bucket-a/a\x00b"):
        with pytest.raises(BadURIError):
            parse_s3(bad)


def test_a_storage_location_is_a_local_path_or_an_s3_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process refuses to start on a deep store or an allowed root that is neither a local path nor a
    valid s3:// URI, before it makes any directory (a gs:// or file:// one was a relative local directory
    named after it)."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    for key, value, said in [
        ("taskplan.deepStore.dir", "gs://bucket-a/deep", "a location is a local path"),
        ("taskplan.deepStore.dir", "file:///srv/deep", "no file:// URI"),
        ("taskplan.deepStore.dir", "s3://bucket-a/deep/../other", r"'\.\.' segment"),
        ("taskplan.ingestion.allowedRoots", f"{tmp_path}/in, s3://Bucket_A/in", "not a valid S3 bucket"),
        ("taskplan.export.allowedRoots", "file:///srv/out", "no file:// URI"),
    ]:
        settings = Settings.model_validate({"taskplan.dataDir": str(data), key: value})
        with pytest.raises(SystemExit, match=f"taskplan cannot start: {key}.*{said}"):
            open_stack(settings=settings)
    assert list(tmp_path.iterdir()) == []  # no data directory, no root, no "gs:" or "file:" directory
    fine = {
        "taskplan.deepStore.dir": "s3://bucket-a/deep",
        "taskplan.ingestion.allowedRoots": f"{tmp_path}/in,s3://bucket-a/in",
        "taskplan.export.allowedRoots": "S3://bucket-a/out/",
    }
    assert location_problem(Settings.model_validate(fine)) is None


def test_the_aws_variables_configure_s3_and_the_properties_win() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "env-key",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        "AWS_DEFAULT_REGION": "eu-west-3",
        "AWS_ENDPOINT_URL": "http://env:9000",
        "TASKPLAN_STORAGE_S3_ENDPOINTURL": "http://prop:9000",
    }
    settings = load_settings(environ=env)
    assert settings.s3_access_key_id == "env-key" and settings.s3_region == "eu-west-3"
    assert settings.s3_endpoint_url == "http://prop:9000"
    assert settings.s3_secret_access_key is not None
    assert settings.s3_secret_access_key.get_secret_value() == "env-secret"
    assert "env-secret" not in repr(settings) and "env-secret" not in str(
        settings.property("taskplan.storage.s3.secretAccessKey")
    )
    assert load_settings(environ={**env, "AWS_REGION": "us-west-2"}).s3_region == "us-west-2"


class _SlowDown(BaseHTTPRequestHandler):
    """An S3 endpoint that answers every request as an overloaded S3 does; under /broken/, one that
    breaks the connection in the middle of its answer (a server killed mid-request)."""

    def do_GET(self) -> None:
        if self.path.startswith("/broken/"):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_down_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowDown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_store_down_or_overloaded_is_unavailable_not_wrong(
    moto_server: MotoServer, slow_down_endpoint: str, tmp_path: Path
) -> None:
    """Refused connections and 5xx answers (SlowDown) are StorageUnavailableError once the client's retries
    ran out: an outage that callers wait out, unlike a wrong key or a missing bucket (tested above)."""
    for endpoint, said in (
        (f"http://127.0.0.1:{free_port()}", "127.0.0.1"),
        (slow_down_endpoint, "SlowDown"),
    ):
        store = open_store(
            "s3://bucket/x", s3_settings(moto_server, **{"taskplan.storage.s3.endpointUrl": endpoint})
        )
        with pytest.raises(StorageUnavailableError, match=said):
            store.check()
        with pytest.raises(StorageUnavailableError, match=said):
            store.get_file("a.csv", tmp_path / "a.csv")
    broken = s3_settings(moto_server, **{"taskplan.storage.s3.endpointUrl": slow_down_endpoint})
    with pytest.raises(StorageUnavailableError):
        open_store("s3://broken/x", broken).get_file("a.csv", tmp_path / "a.csv")


def test_a_download_cut_short_by_a_full_disk_is_unavailable_too() -> None:
    """obstore reports this machine's full scratch disk as an OSError: space comes back (the fault
    campaign's scratch-full trial), so it is waited out like a store's outage, not a failed subtask."""
    from taskplan.storage.s3 import _translate

    full = OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(_translate(full, "reading s3://b/k"), StorageUnavailableError)


def test_a_403_in_a_timing_is_no_access_error() -> None:
    """A store that did not answer, in a message that happens to hold "403" (seen in the fault campaign:
    an export failed for good as if its credentials were wrong)."""
    from taskplan.storage.s3 import _translate

    said = Exception(
        "Generic S3 error: Error performing GET http://s3:5000/b/k in 567.403925ms, after 3 retries, "
        "max_retries: 3, retry_timeout: 30s  - HTTP error: error sending request"
    )
    assert isinstance(_translate(said, "reading s3://b/k"), StorageUnavailableError)
    denied = Exception("Client error with status 403 Forbidden: <Code>AccessDenied</Code>")
    assert isinstance(_translate(denied, "reading s3://b/k"), StorageAccessError)
