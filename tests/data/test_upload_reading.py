"""Uploads are read as they are parsed: a JSON array element by element (whatever the chunk boundaries cut
through), Parquet a batch at a time, with the same rows and counters as reading the file whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskplan.data import rows as rows_module
from taskplan.data.parquet import DuckDBConfig
from taskplan.data.rows import InputFormat, ReaderInitError, RowReader
from tests.support.data import event, events_schema, write_parquet

TRICKY = [
    {"id": 1, "country": "Zürich ☃ 😀", "amount": 1.5e-3, "ts": 1_700_000_000_001, "tags": ["a", "[b]"]},
    {"id": 2, "country": 'quote " and \\ and ] and }', "amount": -12345.678901, "ts": 1_700_000_000_002},
    {"id": 3, "country": None, "amount": 100000000000000000000, "ts": 1_700_000_000_003, "extra": {"x": [1]}},
    {"id": 4, "country": "", "amount": 0, "ts": 1_700_000_000_004, "tags": []},
]


def read(path: Path, fmt: InputFormat = InputFormat.JSON) -> tuple[list[dict[str, Any]], RowReader]:
    reader = RowReader(events_schema("t"), DuckDBConfig(), source_name="upload.json")
    return list(reader.read(path, fmt)), reader


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("indent", [None, 2])
def test_a_json_array_is_read_element_by_element_across_any_chunk_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, indent: int | None
) -> None:
    records = TRICKY * 5 + [event(i) for i in range(50)]
    array = tmp_path / "array.json"
    array.write_text("\ufeff \n" + json.dumps(records, indent=indent, ensure_ascii=False) + "\n", "utf-8")
    lines = tmp_path / "lines.json"
    lines.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    monkeypatch.setattr(rows_module, "JSON_CHUNK_BYTES", chunk)
    from_array, reader = read(array)
    from_lines, by_lines = read(lines)
    assert from_array == from_lines and len(from_array) == len(records)
    assert reader.stats.processed_bytes == array.stat().st_size
    assert {**reader.stats.counts(), "processedBytes": 0} == {**by_lines.stats.counts(), "processedBytes": 0}


def test_json_array_elements_that_are_not_records_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([event(1), 5, "x", [event(2)], {"other": 1}, event(3)]))
    found, reader = read(path)
    assert [r["id"] for r in found] == [1, 3]
    assert (reader.stats.unparseable, reader.stats.thrown_away) == (3, 1)
    assert any("element 2: not a JSON object" in s for s in reader.stats.samples)
    empty = tmp_path / "empty.json"
    empty.write_text(" [ ] ")
    assert read(empty)[0] == []


@pytest.mark.parametrize(
    ("text", "element", "problem"),
    [
        ('[{"id": 1}, {"id": 2,, }, {"id": 3}]', 2, "Expecting property name"),
        ('[{"id": 1} {"id": 2}]', 2, "expected , or ]"),
        ('[{"id": 1}, {"id": 2}', 3, "ends inside the array"),
        ('[{"id": 1}, {"id": "2}]', 2, "Unterminated string"),
        ('[{"id": 1}] trailing', 2, "text after the array"),
        ("[" + "[" * 100_000 + "]" * 100_000 + "]", 1, "recursion"),
    ],
)
def test_a_broken_json_array_is_refused_naming_where(
    tmp_path: Path, text: str, element: int, problem: str
) -> None:
    path = tmp_path / "server-side-name.json"
    path.write_text(text)
    with pytest.raises(ReaderInitError) as raised:
        read(path)
    message = str(raised.value)
    assert message.startswith(f"upload.json: the JSON array cannot be read past element {element}: ")
    assert problem in message and "server-side-name" not in message


def test_parquet_is_read_a_batch_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_parquet(tmp_path / "in.parquet", [event(i) for i in range(25)])
    whole, _ = read(path, InputFormat.PARQUET)
    monkeypatch.setattr(rows_module, "PARQUET_BATCH_ROWS", 4)
    batched, reader = read(path, InputFormat.PARQUET)
    assert batched == whole and [r["id"] for r in batched] == list(range(25))
    assert reader.stats.processed == 25
