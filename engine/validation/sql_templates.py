"""SQL expressions from templates whose placeholders are replaced by sqlglot nodes.

Statistics queries are written once as SQL text with placeholder columns (``_x``), then
each column's expression is substituted as a sqlglot node, so user names are always quoted
by sqlglot and never pasted into text.

>>> from sqlglot import exp
>>> fill("count(*) FILTER (WHERE _x = 0)", _x=exp.column("my col", quoted=True)).sql("duckdb")
'COUNT(*) FILTER(WHERE "my col" = 0)'
"""
from __future__ import annotations

from functools import lru_cache

import sqlglot
from sqlglot import exp


@lru_cache(maxsize=256)
def _parsed(template: str) -> exp.Expr:
    return sqlglot.parse_one(template, read="duckdb")


def fill(template: str, **placeholders: exp.Expr) -> exp.Expr:
    """The template parsed, each column named like a keyword replaced by its expression."""

    def substitute(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and node.name in placeholders:
            return placeholders[node.name].copy()
        return node

    return _parsed(template).copy().transform(substitute)


def struct(fields: dict[str, exp.Expr]) -> exp.Struct:
    """A DuckDB struct literal ``{'name': value, ...}``."""
    return exp.Struct(expressions=[
        exp.PropertyEQ(this=exp.to_identifier(name), expression=value) for name, value in fields.items()
    ])
