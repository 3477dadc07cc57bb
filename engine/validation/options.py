"""Reading the ``WITH (...)`` options and the names of validation statements.

>>> import sqlglot
>>> from engine.dialect import Mallard
>>> node = sqlglot.parse_one("VALIDATE t AGAINST s WITH (previous = main.jan, environment = serving)", read=Mallard)
>>> read_options(node, {"previous": table_option, "environment": text_option}, "VALIDATE")["previous"].sql()
'main.jan'
"""
from __future__ import annotations

from typing import Any, Callable

from sqlglot import exp

from engine.dialect.base import literal_value, option_dict
from engine.errors import DataError, ProgrammingError


def object_name(identifier: exp.Identifier | None) -> str | None:
    """A catalog name as DuckDB compares identifiers: unquoted names lower-cased."""
    if identifier is None:
        return None
    return identifier.name if identifier.args.get("quoted") else identifier.name.lower()


def read_options(node: exp.Expression, allowed: dict[str, Callable[[exp.Expression], Any]], statement: str) -> dict[str, Any]:
    """The statement's options, each read by its reader; unknown names are ProgrammingError."""
    raw = option_dict(node)
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ProgrammingError(f"unknown {statement} option {unknown[0]!r}; expected one of {', '.join(sorted(allowed))}")
    values = {}
    for key, value in raw.items():
        try:
            values[key] = allowed[key](value)
        except ValueError as e:
            raise DataError(f"{statement} option {key}: {e}") from None
    return values


def literal_option(parse: Callable[[Any], Any]) -> Callable[[exp.Expression], Any]:
    """A reader of a literal value checked by ``parse`` (a settings-style parser)."""

    def read(node: exp.Expression) -> Any:
        return parse(literal_value(node))

    return read


def text_option(node: exp.Expression) -> str:
    value = literal_value(node)
    if not isinstance(value, str):
        raise ValueError(f"expected a name or a quoted string, found {node.sql()}")
    return value


def table_option(node: exp.Expression) -> exp.Table:
    """A table or statistics name given as a bare name, a dotted name or a string."""
    if isinstance(node, exp.Literal) and node.is_string:
        return exp.to_table(node.this)
    if isinstance(node, exp.Column):
        parts = [p for p in (node.args.get("catalog"), node.args.get("db"), node.args.get("table"), node.this) if p]
        return exp.Table(this=parts[-1], db=parts[-2] if len(parts) > 1 else None,
                         catalog=parts[-3] if len(parts) > 2 else None)
    raise ValueError(f"expected a table or statistics name, found {node.sql()}")
