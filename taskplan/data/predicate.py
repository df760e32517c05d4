"""SegmentPurgeTask's ``purgeFilter``: one SQL boolean expression over the table's columns, nothing else.

The expression is parsed by DuckDB's own parser (``json_serialize_sql``) inside a fixed statement, and the
parse tree is checked against an allow-list: column references to the schema's columns, constants,
comparisons, AND/OR/NOT, IN, BETWEEN, IS NULL, LIKE, CASE, CAST, arithmetic and a few scalar functions. A
second statement, a subquery, a table function, a set operation, a comment or an unknown column is refused
with a message naming it, and so is a tree nested deeper than ``MAX_FILTER_DEPTH`` or with more than
``MAX_FILTER_TERMS`` terms. Last, the expression is bound to the schema's column types on an empty in-memory
table: it must be BOOLEAN (``amount`` alone is refused), and it is evaluated once on a row of NULLs, so a
constant that cannot be cast or a broken regular expression is refused when the plan is triggered rather
than failing its subtasks. The purge itself also runs on a DuckDB connection that can only touch the
segment's own directory.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Mapping
from typing import Any

import duckdb

from taskplan.data.json_depth import nesting_depth
from taskplan.data.parquet import quote

MAX_FILTER_LENGTH = 10_000
MAX_FILTER_DEPTH = 50  # levels of nested expressions: operators, AND/OR/NOT, calls, CASE
MAX_FILTER_TERMS = 1_000  # expressions in all: columns, constants, operators, calls
# DuckDB's JSON parse tree takes up to 3 levels per expression level, below a statement's few; deeper JSON
# is refused before it is parsed (Python's parser would hit its recursion limit near 1,000).
_TREE_JSON_DEPTH = 3 * MAX_FILTER_DEPTH + 20
_PLACEHOLDER_TABLE = "__taskplan_segment__"
_parsers = threading.local()

ALLOWED_CLASSES = {
    "COMPARISON",
    "CONJUNCTION",
    "OPERATOR",
    "COLUMN_REF",
    "CONSTANT",
    "BETWEEN",
    "CASE",
    "CAST",
    "FUNCTION",
    "TYPE",
}
ALLOWED_FUNCTIONS = {
    # operators DuckDB parses as functions
    "+", "-", "*", "/", "//", "%", "||", "~~", "!~~", "~~*", "!~~*", "~~~",
    # scalar functions with no side effects
    "lower", "upper", "length", "abs", "round", "floor", "ceil", "coalesce", "nullif", "substring",
    "substr", "trim", "ltrim", "rtrim", "starts_with", "ends_with", "contains", "regexp_matches",
    "like_escape", "concat", "least", "greatest", "mod", "sign", "strlen", "prefix", "suffix",
    "epoch_ms", "year", "month", "day", "hour", "minute", "second", "date_part", "list_contains",
    "array_contains", "len",
}  # fmt: skip


class PurgeFilterError(ValueError):
    pass


@functools.lru_cache(maxsize=256)
def _parse_tree(expression: str) -> str:
    """DuckDB's parse tree of the expression, as JSON (cached: every subtask of a purge checks the same
    filter again; and a DuckDB connection costs 20 ms or more to open, hence one per thread)."""
    statement = f"SELECT * FROM {_PLACEHOLDER_TABLE} WHERE ({expression})"
    parser = getattr(_parsers, "conn", None)
    if parser is None:
        # Parsing only (json_serialize_sql runs nothing and keeps no state): one connection per thread.
        parser = _parsers.conn = duckdb.connect(config={"enable_external_access": False})
    row = parser.execute("SELECT json_serialize_sql(?)", [statement]).fetchone()
    assert row is not None
    return str(row[0])


def _parse(expression: str) -> dict[str, Any]:
    tree = _parse_tree(expression)
    if nesting_depth(tree, _TREE_JSON_DEPTH) > _TREE_JSON_DEPTH:
        raise PurgeFilterError(f"purgeFilter nests expressions deeper than {MAX_FILTER_DEPTH} levels")
    parsed: dict[str, Any] = json.loads(tree)
    if parsed.get("error"):
        raise PurgeFilterError(f"purgeFilter is not a valid SQL expression: {parsed.get('error_message')}")
    return parsed


def validate_purge_filter(expression: str, columns: Mapping[str, str]) -> str:
    """Return the expression, stripped, if it is one boolean expression over ``columns`` (name -> DuckDB
    type, as the segment files store them); else raise."""
    text = expression.strip()
    if not text:
        raise PurgeFilterError("purgeFilter is empty: give a SQL boolean expression, e.g. country = 'US'")
    if len(text) > MAX_FILTER_LENGTH:
        raise PurgeFilterError(f"purgeFilter is longer than {MAX_FILTER_LENGTH} characters")
    for token, what in ((";", "a statement separator ';'"), ("--", "a comment '--'"), ("/*", "a comment")):
        if token in text:
            raise PurgeFilterError(f"purgeFilter must be one expression: it contains {what}")
    if not _balanced(text):
        raise PurgeFilterError("purgeFilter must be one expression: its parentheses do not balance")
    parsed = _parse(text)
    statements = parsed.get("statements") or []
    if len(statements) != 1:
        raise PurgeFilterError("purgeFilter must be one expression, not several statements")
    node = statements[0]["node"]
    if node.get("type") != "SELECT_NODE":
        raise PurgeFilterError(
            "purgeFilter must be one expression: it closes the expression and adds a query"
        )
    from_table = node.get("from_table") or {}
    extra_clauses = [
        name
        for name in ("group_expressions", "group_sets", "having", "sample", "qualify", "modifiers")
        if node.get(name)
    ]
    cte = (node.get("cte_map") or {}).get("map")
    if (
        from_table.get("type") != "BASE_TABLE"
        or from_table.get("table_name") != _PLACEHOLDER_TABLE
        or extra_clauses
        or cte
        or len(node.get("select_list") or []) != 1
    ):
        raise PurgeFilterError("purgeFilter must be one expression: it adds clauses to the query")
    known = {c.lower(): c for c in columns}
    _check_size(node["where_clause"])
    _check(node["where_clause"], known)
    problem = _evaluation_problem(text, tuple(columns.items()))
    if problem:
        raise PurgeFilterError(problem)
    return text


def _check_size(tree: Any) -> None:
    """Refuse a tree deeper than MAX_FILTER_DEPTH expressions or with more than MAX_FILTER_TERMS of them
    (walked with a stack of our own: the tree may be deep enough to exhaust Python's)."""
    terms = 0
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if node.get("class") is not None:
                depth += 1
                terms += 1
                if depth > MAX_FILTER_DEPTH:
                    raise PurgeFilterError(
                        f"purgeFilter nests expressions deeper than {MAX_FILTER_DEPTH} levels"
                    )
                if terms > MAX_FILTER_TERMS:
                    raise PurgeFilterError(f"purgeFilter has more than {MAX_FILTER_TERMS} terms")
            stack.extend((value, depth) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth) for value in node)


@functools.lru_cache(maxsize=256)
def _evaluation_problem(expression: str, columns: tuple[tuple[str, str], ...]) -> str | None:
    """Why DuckDB cannot use the (allow-listed) expression as a filter over columns of these types; None
    if it can. Bound on an empty table, it must be BOOLEAN; evaluated on one row of NULLs, it must not
    fail (constants are cast and regular expressions compiled then, whatever the data)."""
    definition = ", ".join(f"{quote(name)} {kind}" for name, kind in columns)
    with duckdb.connect(config={"enable_external_access": False}) as conn:
        conn.execute(f"CREATE TABLE {_PLACEHOLDER_TABLE} ({definition})")
        try:
            described = conn.execute(
                f"DESCRIBE SELECT ({expression}) AS purge_filter FROM {_PLACEHOLDER_TABLE}"
            ).fetchall()
            kind = str(described[0][1])
            if kind != "BOOLEAN":
                return (
                    f"purgeFilter must be a boolean expression (a condition such as amount > 10), "
                    f"not a value of type {kind}"
                )
            conn.execute(f"INSERT INTO {_PLACEHOLDER_TABLE} DEFAULT VALUES")
            conn.execute(
                f"SELECT count(*) FROM {_PLACEHOLDER_TABLE} WHERE {keep_rows_sql(expression)}"
            ).fetchall()
        except duckdb.Error as exc:
            # The first line names the problem; the next ones quote our wrapping statement.
            return f"purgeFilter cannot be evaluated: {str(exc).splitlines()[0]}"
    return None


def _balanced(text: str) -> bool:
    """Parentheses balance outside quoted strings and identifiers (so the expression cannot close ours)."""
    depth, quote_char = 0, ""
    for char in text:
        if quote_char:
            if char == quote_char:
                quote_char = ""
        elif char in "'\"":
            quote_char = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0 and not quote_char


def _check(node: Any, columns: dict[str, str]) -> None:
    if isinstance(node, list):
        for item in node:
            _check(item, columns)
        return
    if not isinstance(node, dict):
        return
    cls = node.get("class")
    if cls is not None:
        if cls not in ALLOWED_CLASSES:
            what = {"SUBQUERY": "a subquery", "STAR": "*", "WINDOW": "a window function"}.get(cls, cls)
            raise PurgeFilterError(f"purgeFilter may not contain {what}")
        if cls == "COLUMN_REF":
            names = node.get("column_names") or []
            if len(names) != 1:
                raise PurgeFilterError(f"purgeFilter: use bare column names, not {'.'.join(names)}")
            if names[0].lower() not in columns:
                raise PurgeFilterError(
                    f"purgeFilter names column {names[0]!r}, which the table's schema does not have"
                )
        if cls == "FUNCTION":
            name = str(node.get("function_name", "")).lower()
            if name not in ALLOWED_FUNCTIONS or node.get("schema") or node.get("catalog"):
                raise PurgeFilterError(f"purgeFilter may not call function {name!r}")
            if node.get("is_operator") is False and node.get("distinct"):
                raise PurgeFilterError("purgeFilter may not use DISTINCT")
    for key, value in node.items():
        if key in ("class", "type", "alias", "query_location", "query_location_length"):
            continue
        _check(value, columns)


def keep_rows_sql(expression: str) -> str:
    """The WHERE condition of the rows a purge keeps: those the filter is not true for (NULL is kept)."""
    return f"NOT coalesce(({expression}), false)"


__all__ = ["PurgeFilterError", "keep_rows_sql", "quote", "validate_purge_filter"]
