"""Binding ``?`` parameters into a parsed statement, once, for every statement.

Parameters bind by position in the statement's text, as DuckDB binds them (the parser
records where each ``?`` stands); DuckDB's ``$1``-style parameters bind by number.  A
value becomes a typed SQL literal built through sqlglot (never pasted text), so executors
and planner rules see plain values.  A count mismatch, named parameters for ``?`` or a value
of a type SQL has no literal for is a ProgrammingError naming the parameter.

>>> from engine.dialect import parse_statements
>>> bind_parameters(parse_statements("LOAD VIDEO ? INTO t WITH (every = ?)")[0], ["a.mp4", 2]).sql("mallard")
"LOAD VIDEO 'a.mp4' INTO t WITH (every = 2)"
>>> bind_parameters(parse_statements("SHOW MODELS")[0], [1, 2])
Traceback (most recent call last):
...
engine.errors.ProgrammingError: expected 0 parameters for the ? in the statement, found 2
>>> import uuid
>>> to_literal(uuid.UUID(int=1), 1).sql("duckdb")
"CAST('00000000-0000-0000-0000-000000000001' AS UUID)"
"""
from __future__ import annotations

import datetime
import decimal
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlglot import exp

from engine.errors import ProgrammingError

_SUPPORTED = ("None, bool, int, float, decimal.Decimal, str, bytes (bytearray, memoryview), uuid.UUID, "
              "datetime.date/time/datetime/timedelta, or a list, tuple or dict of those")


def placeholders(tree: exp.Expr) -> list[exp.Expr]:
    """The tree's parameter slots in binding order: ``?`` by text position, ``$n`` by number."""
    slots = list(tree.find_all(exp.Placeholder))
    positional = [p for p in slots if not p.this]
    numbered = [p for p in slots if p.this]
    if positional and numbered:
        raise ProgrammingError("expected either ? or $n parameters in a statement, found both")
    if numbered:
        return sorted(numbered, key=lambda p: _number(p))
    return sorted(positional, key=lambda p: p.meta.get("offset", 0))


def _number(placeholder: exp.Expr) -> int:
    text = str(placeholder.name)
    if not text.isdigit():
        raise ProgrammingError(f"Mallard statements take ? or $1-style parameters, found ${text}")
    return int(text)


def bind_parameters(tree: exp.Expr, parameters: Sequence[Any] | Mapping[str, Any] | None) -> exp.Expr:
    """A copy of ``tree`` with every parameter slot replaced by its value's literal."""
    if isinstance(parameters, Mapping):
        raise ProgrammingError("Mallard statements take positional (?) parameters, found named ones (a dict)")
    if parameters is not None and (isinstance(parameters, (str, bytes)) or not isinstance(parameters, Sequence)):
        raise ProgrammingError(f"expected the parameters as a list or tuple, found {type(parameters).__name__}")
    values = list(parameters or [])
    copy = tree.copy()
    slots = placeholders(copy)
    expected = len({_number(p) for p in slots}) if slots and slots[0].this else len(slots)
    if expected != len(values):
        raise ProgrammingError(f"expected {expected} parameters for the ? in the statement, found {len(values)}")
    for index, slot in enumerate(slots):
        position = _number(slot) if slot.this else index + 1
        slot.replace(to_literal(values[position - 1], position))
    return copy


def to_literal(value: Any, position: int) -> exp.Expr:
    """The SQL literal of one parameter value (``position`` counts from 1, for messages)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return to_literal(value.item() if getattr(value, "ndim", 0) == 0 else value.tolist(), position)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return exp.Literal.number(repr(value))
        return exp.cast(exp.Literal.string(str(value)), exp.DataType.Type.DOUBLE)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return exp.cast(exp.Literal.string(str(value)), exp.DataType.Type.DOUBLE)
        return exp.Literal.number(str(value))
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return exp.Anonymous(this="unhex", expressions=[exp.Literal.string(bytes(value).hex())])
    if isinstance(value, uuid.UUID):
        return exp.cast(exp.Literal.string(str(value)), exp.DataType.Type.UUID)
    if isinstance(value, datetime.datetime):
        kind = exp.DataType.Type.TIMESTAMPTZ if value.tzinfo else exp.DataType.Type.TIMESTAMP
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), kind)
    if isinstance(value, datetime.date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.Type.DATE)
    if isinstance(value, datetime.time):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.Type.TIME)
    if isinstance(value, datetime.timedelta):
        micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        return exp.Anonymous(this="to_microseconds", expressions=[exp.Literal.number(micros)])
    if isinstance(value, (list, tuple)):
        return exp.Array(expressions=[to_literal(v, position) for v in value])
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier(k), expression=to_literal(v, position))
                                       for k, v in value.items()])
    raise ProgrammingError(
        f"parameter {position}: cannot bind a value of type {type(value).__name__}; expected {_SUPPORTED}")
