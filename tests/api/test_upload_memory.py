"""A large upload to POST /ingestFromFile streams: the API process's peak memory grows far less than the
file (measured on a real ``taskplan api`` process, its peak RSS before and after a 30 MB upload)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from tests.api.test_tables_and_triggers_api import new_name
from tests.support.api_process import Store, api_process, make_store

UPLOAD_BYTES = 30 * 1024 * 1024
MAX_GROWTH_BYTES = 100 * 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return make_store(tmp_path)


def peak_rss(pid: int) -> int:
    """The process's peak resident set size so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def rows(start: int, count: int) -> list[dict[str, object]]:
    return [
        {"id": i, "country": "US", "city": f"city-{i % 977}", "amount": i / 7, "ts": 1_700_000_000_000 + i}
        for i in range(start, start + count)
    ]


def json_lines(size: int) -> tuple[bytes, int]:
    lines, total, count = [], 0, 0
    while total < size:
        for row in rows(count, 1000):
            line = (json.dumps(row) + "\n").encode()
            lines.append(line)
            total += len(line)
        count += 1000
    return b"".join(lines), count


def json_array(size: int) -> tuple[bytes, int]:
    content, count = json_lines(size)
    return b"[\n" + content.rstrip(b"\n").replace(b"\n", b",\n") + b"\n]\n", count


async def create_table(http: httpx.AsyncClient, table_type: str) -> str:
    raw = new_name()
    fields = [
        {"name": "id", "dataType": "LONG"},
        {"name": "country", "dataType": "STRING"},
        {"name": "city", "dataType": "STRING"},
    ]
    schema = {
        "schemaName": raw,
        "dimensionFieldSpecs": fields,
        "metricFieldSpecs": [{"name": "amount", "dataType": "DOUBLE"}],
        "dateTimeFieldSpecs": [
            {
                "name": "ts",
                "dataType": "LONG",
                "format": "1:MILLISECONDS:EPOCH",
                "granularity": "1:MILLISECONDS",
            },
        ],
    }
    assert (await http.post("/schemas", json=schema)).status_code == 200
    response = await http.post("/tables", json={"tableName": raw, "tableType": table_type})
    assert response.status_code == 200, response.text
    return f"{raw}_{table_type}"


async def ingest(http: httpx.AsyncClient, table: str, content: bytes) -> httpx.Response:
    return await http.post(
        "/ingestFromFile",
        params={"tableNameWithType": table, "batchConfigMapStr": json.dumps({"inputFormat": "json"})},
        files={"file": ("rows.json", content, "application/octet-stream")},
        timeout=600,
    )


@pytest.mark.parametrize(
    ("table_type", "shape"), [("OFFLINE", "lines"), ("REALTIME", "lines"), ("OFFLINE", "array")]
)
async def test_a_30_mb_json_upload_keeps_the_api_within_bounded_memory(
    engine: Client, store: Store, table_type: str, shape: str
) -> None:
    content, count = json_lines(UPLOAD_BYTES) if shape == "lines" else json_array(UPLOAD_BYTES)
    small = b"".join((json.dumps(r) + "\n").encode() for r in rows(0, 1000))
    async with api_process(engine, store) as api, httpx.AsyncClient(base_url=api.url) as http:
        table = await create_table(http, table_type)
        # A small upload first: what every ingest loads (DuckDB, the parsers) is in the baseline.
        assert (await ingest(http, table, small)).status_code == 200
        before = peak_rss(api.pid)
        response = await ingest(http, table, content)
        after = peak_rss(api.pid)
    assert response.status_code == 200, response.text
    assert response.json()["rowStats"]["processed"] == count
    assert after - before < MAX_GROWTH_BYTES, f"peak RSS grew by {(after - before) / 2**20:.0f} MB"
