"""The purgeFilter parser fuzzed with a grammar of SQL-ish expressions, hostile ones included (table
functions such as read_csv, subqueries, COPY, PRAGMA, ATTACH, comments, casts, string escapes, unicode,
lambdas, positional and prepared parameters, stray quotes and parentheses).

Every expression must either be refused with a PurgeFilterError (a ValueError: the API's 400), or be
accepted and then (a) use only the allow-listed node classes, functions and the schema's columns, read from
DuckDB's parse tree by a walker of this test's own, and (b) evaluate on the purge's sandboxed connection
over a real segment file without a permission error (it tried to reach a file) or an internal error. Any
other exception from the validator is a crash.

`make test` runs FUZZ_FILTER_EXAMPLES examples (default 60). `make fuzz` sets FUZZ_FILTER_SECONDS=600: new
runs of FILTER_BATCH examples each, until the time is up; the figures are printed as a `FUZZ` line.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
import uuid
from pathlib import Path

import duckdb
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskplan.data.parquet import DuckDBConfig, column_types, sql_string
from taskplan.data.predicate import (
    ALLOWED_CLASSES,
    ALLOWED_FUNCTIONS,
    PurgeFilterError,
    keep_rows_sql,
    validate_purge_filter,
)
from tests.data.test_data_plans import create, execute
from tests.support.data import events_schema

COLUMNS = column_types(
    events_schema("t")
)  # id BIGINT, country VARCHAR, tags VARCHAR[], amount DOUBLE, ts BIGINT
EXAMPLES = int(os.environ.get("FUZZ_FILTER_EXAMPLES", "60"))
SECONDS = float(os.environ.get("FUZZ_FILTER_SECONDS", "0"))
FILTER_BATCH = 2_000

# --- the grammar -------------------------------------------------------------------------------------

columns = st.sampled_from(
    [
        "id", "country", "tags", "amount", "ts", "COUNTRY", '"amount"', '"Country"',
        # not the schema's, or not bare
        "secret", "t.country", "__taskplan_segment__.id", "main.t.id", '"evil""col"', "ünïcode", '"☃"',
        "rowid", "filename", "file_row_number", "COLUMNS(*)", "*", "#1", "$1", "?", "$name",
    ]
)  # fmt: skip
strings = st.one_of(
    st.sampled_from(
        [
            "'US'", "''", "'it''s'", "E'\\x41'", "e'\\''", "'\\'", "$$dollar$$", "$tag$x$tag$", "'%'",
            "'/etc/passwd'", "'ünïcode ☃'", "'\x00'", "'a\nb'", "U&'\\0041'", "'(' ", "')'", "'--'",
            "'/*'", "';'", "'\"'", "X'41'", "'\\xAA'::BLOB",
        ]
    ),
    st.text(max_size=8).map(sql_string),
)  # fmt: skip
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: f"'{f}'::DOUBLE" if f != f or abs(f) == float("inf") else repr(f)
    ),
    st.sampled_from(["1e308", "1e309", "-0", "0x10", "1_000", ".5", "5.", "1e", "00012"]),
)
literals = st.one_of(
    numbers,
    strings,
    st.sampled_from(
        [
            "NULL", "TRUE", "false", "DATE '2020-01-01'", "TIMESTAMP '2020-01-01 00:00:00'",
            "INTERVAL '1 day'", "INTERVAL 1 DAY", "[1, 2]", "['a']", "{'a': 1}", "MAP {'a': 1}",
            "current_date", "now()", "random()", "gen_random_uuid()",
        ]
    ),
)  # fmt: skip
types = st.sampled_from(
    ["INTEGER", "BIGINT", "VARCHAR", "DOUBLE", "BOOLEAN", "DATE", "BLOB", "VARCHAR[]", "HUGEINT",
     "DECIMAL(38, 10)", "STRUCT(a INT)", "TIMESTAMP", "UUID", "JSON", "no_such_type"]
)  # fmt: skip
hostile = st.sampled_from(
    [
        "read_csv('/etc/passwd')", "read_csv_auto('/etc/hosts')", "read_parquet('/tmp/x.parquet')",
        "read_text('/etc/passwd')", "read_blob('/etc/passwd')", "glob('/*')", "read_json('/etc/x')",
        "(SELECT 1)", "(SELECT count(*) FROM read_csv('/etc/passwd'))", "EXISTS (SELECT 1)",
        "amount IN (SELECT 1)", "getenv('HOME')", "current_setting('allowed_directories')",
        "getvariable('x')", "query('SELECT 1')", "query_table('t')", "pragma_version()",
        "duckdb_settings()", "nextval('s')", "currval('s')", "setseed(0.5)", "sql_auto_complete('x')",
        "list_transform(tags, x -> x)", "list_filter(tags, lambda x: x = 'a')", "tags[1]",
        "count(*) OVER ()", "sum(amount)", "sum(amount) FILTER (WHERE id > 1)", "string_agg(country, ',')",
        "main.lower(country)", "system.main.lower(country)", "lower(DISTINCT country)", "COLUMNS('.*')",
        "unnest(tags)", "struct_pack(a := 1)", "country COLLATE nocase", "ts AT TIME ZONE 'UTC'",
        "EXTRACT(year FROM now())", "POSITION('a' IN country)", "TRY_CAST(country AS INT)",
        "'x' || (SELECT 'y')", "format('{}', 1)", "printf('%s', 1)", "error('boom')", "hash(country)",
        "to_json(country)", "json_extract('{}', '$')", "regexp_replace(country, 'a', 'b')",
        "starts_with(country, (SELECT 'x'))", "lower(country) = lower(read_text('/etc/passwd'))",
        "contains(country, 'a') AND 1 = (SELECT 1 FROM duckdb_tables())", "ROW(1, 2)", "#2 = 1",
    ]
)  # fmt: skip
# Whole-expression breakouts: statements, comments, clauses appended to our wrapping query.
breakouts = st.sampled_from(
    [
        "1 = 1); COPY (SELECT 1) TO '/tmp/taskplan-fuzz-escape.csv'; SELECT (1",
        "1); PRAGMA database_list; SELECT (1", "PRAGMA version", "COPY x TO '/tmp/y'",
        "ATTACH '/tmp/taskplan-fuzz.db'", "1 = 1) UNION SELECT * FROM read_csv('/etc/passwd') WHERE (1",
        "1 = 1) UNION ALL SELECT 1 WHERE (1", "true) GROUP BY (id", "true) ORDER BY (1", "true) LIMIT (1",
        "true) HAVING (true", "true) QUALIFY (true", "true) WINDOW w AS (", "true) USING SAMPLE (1",
        "amount > 1 -- comment", "amount > 1 /* comment */", "amount /**/ > 1", "true)) OR ((true",
        "' OR '1'='1", "\" OR \"1\"=\"1", "amount > 1)", "(amount > 1", "country = 'US' OR 1=1 --'",
        "INSTALL httpfs", "LOAD httpfs", "SET enable_external_access = true", "CALL pragma_version()",
        "CREATE TABLE x AS SELECT 1", "DROP TABLE __taskplan_segment__", "EXPORT DATABASE '/tmp/x'",
        "1 = 1) AND (SELECT 1 FROM (SELECT 1)) = (1", "true\u2028", "true\x00", "\ufeffamount > 1",
    ]
)  # fmt: skip
token_soup = st.lists(
    st.sampled_from(
        ["(", ")", ",", "'", '"', ";", "--", "/*", "*/", "::", "SELECT", "FROM", "WHERE", "read_csv",
         "amount", "country", "=", ">", "AND", "OR", "NOT", "1", "'x'", "CAST", "AS", "INT", "IN", "[", "]",
         "{", "}", ":", "->", "$", "?", "#", "\\", "ü", " "]
    ),
    max_size=12,
).map(" ".join)  # fmt: skip


def _expression(depth: int) -> st.SearchStrategy[str]:
    leaf = st.one_of(columns, literals, hostile)
    if depth == 0:
        return leaf
    sub = st.deferred(lambda: _expression(depth - 1))
    binary = st.sampled_from(
        ["=", "<>", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "//", "%", "||", "AND", "OR", "LIKE",
         "NOT LIKE", "ILIKE", "GLOB", "SIMILAR TO", "^", "**", "<<", "&", "|", "->", "->>", "@>", "&&",
         "IS DISTINCT FROM", "IS NOT DISTINCT FROM", "~~", "!~~", "^@"]
    )  # fmt: skip
    functions = st.sampled_from(sorted(ALLOWED_FUNCTIONS - {"+", "-", "*", "/", "//", "%", "||"}))
    return st.one_of(
        leaf,
        st.tuples(sub, binary, sub).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        sub.map(lambda e: f"({e})"),
        st.tuples(st.sampled_from(["NOT ", "-", "+", "~", "NOT NOT "]), sub).map("".join),
        st.tuples(sub, st.lists(sub, min_size=1, max_size=3)).map(lambda t: f"{t[0]} IN ({', '.join(t[1])})"),
        st.tuples(sub, sub, sub).map(lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"),
        st.tuples(sub, st.sampled_from(["IS NULL", "IS NOT NULL", "IS TRUE", "NOTNULL", "ISNULL"])).map(
            " ".join
        ),
        st.tuples(sub, sub, sub).map(lambda t: f"CASE WHEN {t[0]} THEN {t[1]} ELSE {t[2]} END"),
        st.tuples(sub, types).map(lambda t: f"CAST({t[0]} AS {t[1]})"),
        st.tuples(sub, types).map(lambda t: f"{t[0]}::{t[1]}"),
        st.tuples(functions, st.lists(sub, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
    )


filters = st.one_of(
    _expression(3),
    st.tuples(_expression(2), breakouts).map(" ".join),
    st.tuples(breakouts, _expression(1)).map(" AND ".join),
    breakouts,
    token_soup,
    st.text(max_size=40),
)

# --- the checks --------------------------------------------------------------------------------------


def _nodes(tree: object) -> list[dict[str, object]]:
    """Every expression node (a dict with a "class") anywhere in DuckDB's parse tree."""
    found: list[dict[str, object]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class") is not None:
                found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


@functools.cache
def _parser() -> duckdb.DuckDBPyConnection:
    """This test's own parsing connection (opening one costs 20-80 ms)."""
    return duckdb.connect()


def assert_within_the_allow_list(expression: str) -> None:
    statement = f"SELECT * FROM segment WHERE ({expression})"
    row = _parser().execute("SELECT json_serialize_sql(?)", [statement]).fetchone()
    assert row is not None
    tree = json.loads(row[0])
    assert not tree.get("error"), tree
    [parsed] = tree["statements"]
    node = parsed["node"]
    assert node["type"] == "SELECT_NODE" and node["from_table"]["type"] == "BASE_TABLE", node
    assert node["from_table"]["table_name"] == "segment"
    for clause in ("group_expressions", "group_sets", "having", "sample", "qualify", "modifiers"):
        assert not node.get(clause), (clause, node[clause])
    assert not (node.get("cte_map") or {}).get("map")
    known = {c.lower() for c in COLUMNS}
    for expr in _nodes(node["where_clause"]):
        assert expr["class"] in ALLOWED_CLASSES, expr["class"]
        if expr["class"] == "FUNCTION":
            assert str(expr["function_name"]).lower() in ALLOWED_FUNCTIONS, expr["function_name"]
            assert not expr.get("schema") and not expr.get("catalog"), expr
        if expr["class"] == "COLUMN_REF":
            names = expr["column_names"]
            assert isinstance(names, list) and len(names) == 1 and names[0].lower() in known, names


def _segment(directory: Path) -> Path:
    """A small segment file with NULLs, empty lists and odd strings, as the purge reads it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "segment.parquet"
    if not path.exists():
        with duckdb.connect() as conn:
            conn.execute(
                "COPY (SELECT * FROM (VALUES "
                "(1::BIGINT, 'US', ['a', 'b'], 1.5::DOUBLE, 1700000000000::BIGINT), "
                "(2, 'ünï', [], -0.0, 0), (3, NULL, NULL, NULL, NULL), (4, '''%_\\', ['☃'], 1e300, -1)"
                ") t(id, country, tags, amount, ts)) "
                f"TO {sql_string(str(path))} (FORMAT parquet)"
            )
    return path


def assert_evaluates_in_the_sandbox(expression: str, segment: Path) -> None:
    with DuckDBConfig().pooled(segment.parent) as conn:  # the purge's own sandbox
        source = f"read_parquet({sql_string(str(segment))})"
        try:
            conn.execute(f"SELECT count(*) FROM {source} WHERE {keep_rows_sql(expression)}").fetchall()
        except (duckdb.PermissionException, duckdb.InternalException, duckdb.FatalException) as exc:
            raise AssertionError(f"accepted {expression!r}, then: {exc!r}") from exc
        except duckdb.Error:
            pass  # a data error on real rows (a cast, a regexp): the subtask fails, nothing escapes


class Tally:
    def __init__(self) -> None:
        self.examples = self.accepted = 0


def check(expression: str, segment: Path, tally: Tally) -> None:
    tally.examples += 1
    try:
        accepted = validate_purge_filter(expression, COLUMNS)
    except PurgeFilterError as exc:
        refusal = str(exc)
        assert refusal.startswith("purgeFilter"), refusal  # the message names the config
        return
    tally.accepted += 1
    assert accepted == expression.strip()
    assert_within_the_allow_list(accepted)
    assert_evaluates_in_the_sandbox(accepted, segment)


def fuzz(tmp_path: Path, examples: int, tally: Tally) -> None:
    segment = _segment(tmp_path / "segment")

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(filters)
    def run(expression: str) -> None:
        check(expression, segment, tally)

    run()


def test_the_purge_filter_parser_refuses_cleanly_or_stays_in_the_allow_list(tmp_path: Path) -> None:
    tally, started = Tally(), time.monotonic()
    fuzz(tmp_path, EXAMPLES, tally)
    while time.monotonic() - started < SECONDS:
        fuzz(tmp_path, FILTER_BATCH, tally)
    figures = {
        "examples": tally.examples,
        "accepted": tally.accepted,
        "seconds": round(time.monotonic() - started),
    }
    print("FUZZ purgeFilter", json.dumps(figures))
    assert tally.accepted > 0 and tally.accepted < tally.examples, figures  # the grammar reaches both sides


HOSTILE_AT_THE_API = [
    "read_csv('/etc/passwd') IS NOT NULL",
    "1 = 1); COPY (SELECT 1) TO '/tmp/taskplan-fuzz-escape.csv'; SELECT (1",
    "PRAGMA database_list",
    "amount IN (SELECT 1)",
    "amount > 1 /* x */",
    "lower(country) = getenv('HOME')",
    "country = E'\\x41' :: no_such_type",
]


async def test_the_api_answers_400_to_hostile_filters(http: httpx.AsyncClient) -> None:
    table = await create(http, f"purgefuzz{uuid.uuid4().hex[:8]}")
    for expression in HOSTILE_AT_THE_API:
        response = await execute(http, "SegmentPurgeTask", table, purgeFilter=expression)
        assert response.status_code == 400, (expression, response.text)
        assert "purgeFilter" in response.json()["error"], response.text
    plans = (await http.get(f"/tasks/taskPlans?tableNameWithType={table}&taskType=SegmentPurgeTask")).json()
    assert plans == []
    assert not await asyncio.to_thread(Path("/tmp/taskplan-fuzz-escape.csv").exists)


@pytest.mark.parametrize("expression", ["amount > 1", "country = 'it''s' AND NOT tags IS NULL"])
def test_the_checks_pass_plain_filters(tmp_path: Path, expression: str) -> None:
    tally = Tally()
    check(expression, _segment(tmp_path), tally)
    assert tally.accepted == 1
