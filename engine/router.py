"""The fast path: a cheap check that decides whether SQL text needs Mallard at all.

Plain DuckDB SQL goes to DuckDB as it is, with no sqlglot parse; only text that starts a
statement with the prefix of one of Mallard's statements (``PREFIX``, the same words the
parser dispatches on), or calls a function Mallard plans (a model), is split and parsed.
The check is one precompiled regular expression; a false positive only costs a parse (the
statement then still runs on DuckDB unchanged).

>>> r = Router()
>>> r.needs_mallard("SELECT 42"), r.needs_mallard("select 1; load video 'v.avi' into t")
(False, True)
>>> Router(frozenset({"mobilenet"})).needs_mallard("SELECT mobilenet (frame) FROM t")
True
>>> statement_kind("  -- note\\n(SELECT 1)"), statement_kind("insert into t values (1)")
('rows', 'dml')
"""
from __future__ import annotations

import re
from functools import lru_cache

_COMMENTS = r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*"
_LEADING = re.compile(_COMMENTS + r"[\s(]*([A-Za-z]+)", re.S)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)

_KINDS = {
    **dict.fromkeys(
        ("SELECT", "WITH", "FROM", "VALUES", "TABLE", "SHOW", "DESCRIBE", "DESC", "SUMMARIZE",
         "EXPLAIN", "CALL", "PIVOT", "UNPIVOT"), "rows"),
    **dict.fromkeys(("INSERT", "UPDATE", "DELETE", "MERGE", "COPY"), "dml"),
    **dict.fromkeys(("BEGIN", "START"), "begin"),
    **dict.fromkeys(("COMMIT", "END", "ROLLBACK", "ABORT"), "end"),
    "DROP": "drop",
}


def statement_kind(sql: str) -> str:
    """How a plain statement behaves: 'rows', 'dml', 'begin', 'end', 'drop' or 'other'."""
    match = _LEADING.match(sql)
    if not match:
        return "other"
    kind = _KINDS.get(match.group(1).upper(), "other")
    if kind == "dml" and _RETURNING.search(sql):
        return "rows"
    return kind


@lru_cache(maxsize=1)
def _statement_routes() -> str:
    from engine.dialect.base import prefix_regex
    from engine.registry import SETTINGS, STATEMENTS

    settings = tuple(SETTINGS)
    return "|".join(f"(?:{prefix_regex(cls.PREFIX, settings, cls.OWNED_AFTER_OPTIONAL)})" for cls in STATEMENTS)


@lru_cache(maxsize=64)
def _compile(functions: frozenset[str]) -> re.Pattern[str]:
    pattern = rf"(?:^|;){_COMMENTS}(?:{_statement_routes()})"
    if functions:
        names = "|".join(re.escape(f) for f in sorted(functions, key=len, reverse=True))
        pattern += rf"|\b(?:{names})\s*\("
    return re.compile(pattern, re.I | re.S)


class Router:
    """Decides, per SQL text, between DuckDB directly and Mallard's parser."""

    def __init__(self, functions: frozenset[str] = frozenset()) -> None:
        self.functions = frozenset(f.lower() for f in functions)
        self._pattern = _compile(self.functions)

    def needs_mallard(self, sql: str) -> bool:
        return self._pattern.search(sql) is not None
