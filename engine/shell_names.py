"""What the ``mallard`` shell completes: keywords, and the names a database holds.

Mallard's keywords are derived from the statement table (:data:`engine.registry.STATEMENTS`):
the words of each statement's ``PREFIX``, the words of its syntax line (:func:`engine.statement_docs.syntax`), and its ``WITH (...)`` option names; SQL's keywords are DuckDB's own
(``duckdb_keywords()``).  The names (tables and their columns, models, labeling functions,
data schemas, statistics sets, functions, settings) are read from the catalog by
:func:`read_names`, which the shell calls again after each statement that may change them.

>>> "LABELING" in mallard_keywords() and "AGAINST" in mallard_keywords()
True
>>> statement_options("LOAD VIDEO 'v.avi' INTO t WITH (")[:2]
['batch_frames', 'every']
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from engine.errors import Error

if TYPE_CHECKING:
    from engine.connection import Connection

_WORD = re.compile(r"\b[A-Z][A-Z_]+\b")


@dataclass
class CatalogNames:
    """Names a database holds, by kind (each list sorted)."""

    #: table name as written in SQL (``t``, or ``schema.t`` outside ``main``) -> its columns
    tables: dict[str, list[str]] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    labeling_functions: list[str] = field(default_factory=list)
    data_schemas: list[str] = field(default_factory=list)
    statistics: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    table_functions: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)

    def columns(self, table: str) -> list[str]:
        """The columns of ``table`` (case-insensitive; [] when unknown)."""
        wanted = table.lower()
        for name, columns in self.tables.items():
            if name.lower() == wanted or name.lower().split(".")[-1] == wanted:
                return columns
        return []


@cache
def mallard_keywords() -> frozenset[str]:
    """The upper-case words of Mallard's statements (prefixes and syntax lines)."""
    from engine.registry import STATEMENTS
    from engine.statement_docs import syntax

    words: set[str] = set()
    for cls in STATEMENTS:
        words.update(w for w in re.split(r"[\s\[\]]+", cls.PREFIX) if w.isalpha())
        words.update(_WORD.findall(syntax(cls) or ""))
    return frozenset(words)


@cache
def _prefix_patterns() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    from engine.dialect.base import prefix_regex
    from engine.registry import SETTINGS, STATEMENTS

    found = []
    for cls in STATEMENTS:
        if cls.OPTIONS:
            pattern = re.compile(r"^\s*" + prefix_regex(cls.PREFIX, tuple(SETTINGS)), re.I)
            found.append((pattern, tuple(sorted(cls.OPTIONS))))
    return tuple(found)


def statement_options(statement: str) -> list[str]:
    """The ``WITH (...)`` option names of the Mallard statement ``statement`` starts, if any."""
    for pattern, options in _prefix_patterns():
        if pattern.match(statement):
            return list(options)
    return []


def setting_names() -> list[str]:
    """Every Mallard setting's name."""
    from engine.registry import SETTINGS

    return sorted(SETTINGS)


def _rows(con: Connection, sql: str) -> list[tuple[Any, ...]]:
    try:
        return con.execute(sql).fetchall()
    except Error:
        return []  # a catalog this connection cannot read (an older file, a remote server): no names


def read_names(con: Connection) -> CatalogNames:
    """Every name the shell completes, read from the database behind ``con``."""
    names = CatalogNames()
    for schema, table, column in _rows(
            con, "SELECT table_schema, table_name, column_name FROM information_schema.columns"
                 " WHERE table_catalog = current_database() OR table_catalog = 'temp'"
                 " ORDER BY table_schema, table_name, ordinal_position"):
        key = table if schema == "main" else f"{schema}.{table}"
        names.tables.setdefault(key, []).append(column)
    names.models = [r[0] for r in _rows(con, "SELECT name FROM mallard.models ORDER BY name")]
    names.labeling_functions = sorted({r[0] for r in _rows(con, "SELECT name FROM mallard.labeling_functions")}
                                      | set(_python_labeling_functions(con)))
    names.data_schemas = [r[0] for r in _rows(con, "SELECT DISTINCT name FROM mallard.schemas ORDER BY name")]
    names.statistics = [r[0] for r in _rows(con, "SELECT name FROM mallard.statistics ORDER BY name")]
    names.functions = [r[0] for r in _rows(
        con, "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_name NOT LIKE '\\_\\_%' ESCAPE '\\'"
             " ORDER BY 1")]
    names.table_functions = sorted({r[0] for r in _rows(
        con, "SELECT function_name FROM duckdb_functions() WHERE function_type IN ('table', 'table_macro')"
             " AND function_name NOT LIKE '\\_\\_%' ESCAPE '\\'")} | {"occlusion_map"})
    names.keywords = sorted({r[0].upper() for r in _rows(con, "SELECT keyword_name FROM duckdb_keywords()")}
                            | mallard_keywords())
    return names


def _python_labeling_functions(con: Connection) -> list[str]:
    from engine.extensions import session_labeling_functions

    session = getattr(con, "session", None)
    return list(session_labeling_functions(session)) if session is not None else []


_PLANNED_ARGUMENTS = {"features": "model, frame", "logits": "model, frame",
                      "occlusion_map": "model, (query of one frame), patch, stride, target, method"}


def mallard_functions(con: Connection) -> list[tuple[str, str, str, str]]:
    """Mallard's SQL functions as (name, kind, arguments, returns): the function library's,
    the user's own, the models (and what the planner rewrites), and the catalog's macros."""
    from engine.extensions import DECLARED
    from engine.registry import PLANNED_FUNCTION_SOURCES, builtin_functions

    rows = [(f.name, "built-in", ", ".join(f.parameters), f.returns) for f in builtin_functions()]
    rows += [(f.name, "user", ", ".join(f.parameters), f.returns) for f in DECLARED.scalar_functions.values()]
    session = getattr(con, "session", None)
    if session is not None:
        for source in PLANNED_FUNCTION_SOURCES:
            for name, planned in source(session).items():
                kind = "model" if getattr(planned, "kind", "") == "model" else "model function"
                rows.append((name, kind, _PLANNED_ARGUMENTS.get(name, "frame"), "(planned by Mallard)"))
    rows += [(name, kind, ", ".join(params or []), "TABLE" if kind == "table_macro" else "")
             for name, kind, params in _rows(
                 con, "SELECT function_name, function_type, parameters FROM duckdb_functions()"
                      " WHERE database_name = 'temp' AND function_type IN ('macro', 'table_macro')")]
    return sorted(set(rows))
