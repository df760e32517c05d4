"""How deeply a JSON text nests, measured without parsing it.

Python's JSON parser and every recursive walk over its result (repr, json.dumps, a validator) recurse once
per level, so text nested near the interpreter's recursion limit (about 1,000) raises RecursionError.
Callers measure first and refuse what is deeper than they allow.
"""

from __future__ import annotations

import re

# A string (skipped whole, so brackets inside it do not count) or one bracket.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def nesting_depth(text: str, limit: int) -> int:
    """The depth of the deepest array or object in ``text``; 0 when it cannot exceed ``limit`` (fewer
    opening brackets than that, counted at C speed: the common case costs no scan)."""
    if text.count("[") + text.count("{") <= limit:
        return 0
    depth = deepest = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest
