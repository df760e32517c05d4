"""The scenario's side of the S3 bucket: the input objects it puts and the exports and segments it reads
back, all through taskplan's own S3 client (``taskplan.storage.open_store``, obstore), from the test
process, which reaches the S3 host by its address."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from taskplan.settings import Settings
from taskplan.storage import ObjectStore, open_store


@dataclass(frozen=True)
class Bucket:
    """``s3://<name>`` on the S3 host, with the cluster's credentials."""

    name: str
    endpoint: str  # as the test process reaches it (the hosts use http://s3:5000)
    access_key_id: str
    secret_access_key: str
    region: str

    def store(self, prefix: str) -> ObjectStore:
        settings = Settings.model_validate(
            {
                "taskplan.storage.s3.accessKeyId": self.access_key_id,
                "taskplan.storage.s3.secretAccessKey": self.secret_access_key,
                "taskplan.storage.s3.region": self.region,
                "taskplan.storage.s3.endpointUrl": self.endpoint,
            }
        )
        return open_store(self.uri(prefix), settings)

    def uri(self, prefix: str) -> str:
        return f"s3://{self.name}/{prefix.strip('/')}"

    def put(self, prefix: str, key: str, content: bytes) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            source = Path(scratch) / "object"
            source.write_bytes(content)
            self.store(prefix).put_file(source, key)

    def objects(self, prefix: str) -> dict[str, bytes]:
        """Every object under ``prefix``, by its key below it."""
        store = self.store(prefix)
        found: dict[str, bytes] = {}
        with tempfile.TemporaryDirectory() as scratch:
            for info in store.list():
                dest = Path(scratch) / "object"
                store.get_file(info.key, dest)
                found[info.key] = dest.read_bytes()
        return found

    def keys(self, prefix: str) -> list[str]:
        return [info.key for info in self.store(prefix).list()]
