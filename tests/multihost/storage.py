"""Where the multi-host scenario keeps its files: input objects it puts, exports it reads back.

``SharedDirectory`` stands in for S3 until the storage interface takes ``s3://`` URIs (issue 17, branch
``store``): one directory every host sees, which is exactly the shared disk the issue removes, so the
scenario's S3 assertions are skipped with it (test_multihost.py says which).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Storage(Protocol):
    """The scenario's view of its deep store, input and export locations."""

    def env(self) -> dict[str, str]:
        """Properties every taskplan process gets beyond the example file (empty: the file as it is)."""
        ...

    def input_uri(self, name: str) -> str: ...

    def put_input(self, name: str, file_name: str, content: bytes) -> None: ...

    def export_uri(self, name: str) -> str: ...

    def exported(self, name: str) -> dict[str, bytes]:
        """Every file under the export target ``name``, by its path below it."""
        ...


@dataclass
class SharedDirectory:
    root: Path

    def env(self) -> dict[str, str]:
        for sub in ("deepstore", "input", "export"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return {
            "TASKPLAN_DEEPSTORE_DIR": str(self.root / "deepstore"),
            "TASKPLAN_INGESTION_ALLOWEDROOTS": str(self.root / "input"),
            "TASKPLAN_EXPORT_ALLOWEDROOTS": str(self.root / "export"),
        }

    def input_uri(self, name: str) -> str:
        return str(self.root / "input" / name)

    def put_input(self, name: str, file_name: str, content: bytes) -> None:
        path = self.root / "input" / name / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    def export_uri(self, name: str) -> str:
        return str(self.root / "export" / name)

    def exported(self, name: str) -> dict[str, bytes]:
        base = self.root / "export" / name
        return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}
