"""Hostile row values through ``POST /ingestFromFile``: each is a counted bad row, never a 500.

A value its column cannot hold (a 5,000-digit INT, FLOAT 1e300, a TIMESTAMP past a LONG's range, a lone
surrogate) is stored as null and its row counted ``processedWithError``; a line that is not a record the
reader will parse (a 100,000-deep array) is dropped and counted ``unparseable``, as broken JSON is.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from taskplan.data.rows import MAX_JSON_DEPTH

GOOD = '{"id": 1, "small": 7, "ratio": 0.5, "ts": 1700000000000, "name": "ok"}'

# (bad JSON line, the counter it lands in, words of its sample message)
DEEP = "[" * 100_000 + "]" * 100_000
BAD_LINES = {
    "5000-digit INT": ('{"id": 2, "small": ' + "9" * 5000 + "}", "processedWithError", "5000 digits"),
    "5000-digit INT as text": ('{"id": 2, "small": "' + "9" * 5000 + '"}', "processedWithError", "digits"),
    "FLOAT 1e300": ('{"id": 2, "ratio": 1e300}', "processedWithError", "out of range for FLOAT"),
    "DOUBLE 1e999": ('{"id": 2, "amount": 1e999}', "processedWithError", "out of range for DOUBLE"),
    "TIMESTAMP past a LONG": ('{"id": 2, "ts": 99999999999999999999}', "processedWithError", "TIMESTAMP"),
    "TIMESTAMP just past a LONG": ('{"id": 2, "ts": 9223372036854775808}', "processedWithError", "TIMESTAMP"),
    "lone surrogate": ('{"id": 2, "name": "a\\ud800b"}', "processedWithError", "lone surrogate"),
    "lone surrogate in a list": ('{"id": 2, "tags": ["x", "\\udfff"]}', "processedWithError", "surrogate"),
    "100,000-deep array": ("[" * 100_000 + "]" * 100_000, "unparseable", "nested deeper"),
    "100,000-deep value": (
        '{"id": 2, "name": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "unparseable",
        "nested",
    ),
}


async def bad_rows_table(http: httpx.AsyncClient) -> str:
    raw = f"badrows{uuid.uuid4().hex[:8]}"
    schema = {
        "schemaName": raw,
        "dimensionFieldSpecs": [
            {"name": "id", "dataType": "LONG"},
            {"name": "small", "dataType": "INT"},
            {"name": "name", "dataType": "STRING"},
            {"name": "tags", "dataType": "STRING", "singleValueField": False},
        ],
        "metricFieldSpecs": [
            {"name": "ratio", "dataType": "FLOAT"},
            {"name": "amount", "dataType": "DOUBLE"},
        ],
        "dateTimeFieldSpecs": [
            {"name": "ts", "dataType": "TIMESTAMP", "format": "TIMESTAMP", "granularity": "1:MILLISECONDS"}
        ],
    }
    assert (await http.post("/schemas", json=schema)).status_code == 200
    response = await http.post("/tables", json={"tableName": raw, "tableType": "OFFLINE"})
    assert response.status_code == 200, response.text
    return f"{raw}_OFFLINE"


async def upload(
    http: httpx.AsyncClient, table: str, lines: list[str], **batch_configs: str
) -> httpx.Response:
    return await http.post(
        "/ingestFromFile",
        params={
            "tableNameWithType": table,
            "batchConfigMapStr": json.dumps({"inputFormat": "json", **batch_configs}),
        },
        files={"file": ("rows.json", "".join(f"{line}\n" for line in lines).encode(), "text/plain")},
    )


@pytest.mark.parametrize(("line", "counter", "words"), BAD_LINES.values(), ids=list(BAD_LINES))
async def test_a_hostile_value_is_a_counted_bad_row(
    http: httpx.AsyncClient, line: str, counter: str, words: str
) -> None:
    table = await bad_rows_table(http)
    response = await upload(http, table, [GOOD, line])
    assert response.status_code == 200, response.text
    body = response.json()
    stats = body["rowStats"]
    assert stats["processed"] == 1 and stats[counter] == 1, body
    assert sum(stats[k] for k in ("processedWithError", "unparseable", "thrownAway")) == 1, body
    [sample] = body["samples"]
    assert sample.startswith("line 2: ") and words in sample and len(sample) < 200, sample
    kept = 2 if counter == "processedWithError" else 1  # a bad value's row is kept, its value null
    assert body["segment"]["totalDocs"] == kept


async def test_a_hostile_row_over_the_limit_is_a_400_naming_it(http: httpx.AsyncClient) -> None:
    table = await bad_rows_table(http)
    response = await upload(http, table, [GOOD, DEEP], maxParseExceptions="0")
    assert response.status_code == 400, response.text
    assert f"line 2: nested deeper than {MAX_JSON_DEPTH} levels" in response.json()["error"]
    segments = (await http.get(f"/segments/{table}")).json()
    assert segments == [{"OFFLINE": []}]


async def test_values_at_the_edge_of_their_range_are_kept(http: httpx.AsyncClient) -> None:
    table = await bad_rows_table(http)
    edge = {
        "id": 2**63 - 1,
        "small": -(2**31),
        "ratio": 3.4e38,
        "amount": -1e308,
        "ts": -(2**63),
        "name": "\U0001f600 \u00fc",
        "tags": [json.dumps([[1]])],
    }
    nested = '{"id": 3, "name": ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1) + "}"
    padded = '{"id": 5, "small": "-000000000000000000000000042"}'  # 27 digits, but the value -42
    lines = [GOOD, json.dumps(edge), nested, '{"id": 4, "amount": "Infinity"}', padded]
    response = await upload(http, table, lines)
    assert response.status_code == 200, response.text
    assert response.json()["rowStats"]["processed"] == 5, response.json()
