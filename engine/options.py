"""One reader of every ``WITH (name = value, ...)`` list and one set of value validators.

A statement class declares its options in a class-level table, ``OPTIONS``, of
:class:`Option` entries; :func:`read_options` reads a parsed statement's list against that
table.  Settings (``SET name = value``) use the same validators, so a value is checked,
and a bad one described, the same way wherever it is given:

- an unknown name is a ``ProgrammingError``: ``unknown LOAD VIDEO option 'widht'; expected one of ...``
- a bad value is a ``DataError``: ``LOAD VIDEO option width: expected a whole number in [1, 16384], found 0``

>>> import sqlglot
>>> from engine.dialect import Mallard
>>> node = sqlglot.parse_one("LOAD VIDEO 'v.avi' INTO t WITH (width = 224, every = 2)", read=Mallard)
>>> sorted(read_options(node).items())
[('every', 2), ('width', 224)]
>>> whole(1, 10)(11)
Traceback (most recent call last):
...
ValueError: expected a whole number in [1, 10], found 11
"""
from __future__ import annotations

import contextlib
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from engine.errors import DataError, ProgrammingError


class Validator:
    """A check of one value: returns the value to use, or raises ValueError saying what was
    expected and what was found.  ``expected`` describes the accepted values (for docs)."""

    def __init__(self, expected: str, check: Callable[[Any], Any]) -> None:
        self.expected = expected
        self._check = check

    def __call__(self, value: Any) -> Any:
        return self._check(value)

    def __repr__(self) -> str:
        return f"<Validator {self.expected}>"


def _found(value: Any) -> str:
    return repr(value)


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def whole_argument(what: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int (numpy integers too, bool not) >= ``minimum``, else a ProgrammingError
    naming ``what``.

    >>> whole_argument("fetchmany size", 3, 0)
    3
    >>> whole_argument("batch_size", "2", 1)
    Traceback (most recent call last):
    ...
    engine.errors.ProgrammingError: batch_size: expected a whole number >= 1, found '2'
    """
    expected = "a whole number" if minimum is None else f"a whole number >= {minimum}"
    number = None
    if not isinstance(value, bool):
        with contextlib.suppress(TypeError):
            number = operator.index(value)
    if number is None or (minimum is not None and number < minimum):
        raise ProgrammingError(f"{what}: expected {expected}, found {shown(value)}")
    return number


def _fail(expected: str, value: Any) -> ValueError:
    return ValueError(f"expected {expected}, found {_found(value)}")


def whole(lo: int, hi: int) -> Validator:
    """A whole number in [lo, hi]."""
    if hi >= 10**9 and lo in (0, 1):
        expected = "a positive whole number" if lo == 1 else "a whole number >= 0"
    else:
        expected = f"a whole number in [{lo}, {hi}]"

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _fail(expected, value)
        try:
            number = float(value)
        except ValueError:
            raise _fail(expected, value) from None
        if not math.isfinite(number) or number != int(number) or not lo <= number <= hi:
            raise _fail(expected, value)
        return int(number)

    return Validator(expected, check)


def number(lo: float, hi: float, *, open_low: bool = False) -> Validator:
    """A number in [lo, hi] (or (lo, hi] with ``open_low``)."""
    expected = f"a number in {'(' if open_low else '['}{lo:g}, {hi:g}]"

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _fail(expected, value)
        try:
            result = float(value)
        except ValueError:
            raise _fail(expected, value) from None
        if math.isnan(result) or result < lo or result > hi or (open_low and result == lo):
            raise _fail(expected, value)
        return result

    return Validator(expected, check)


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail("an integer", value)
    return value


#: An integer as written (a quoted '1' is text, not an integer).
integer = Validator("an integer", _integer)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "on", "1", "yes"):
        return True
    if text in ("false", "off", "0", "no"):
        return False
    raise _fail("true or false", value)


boolean = Validator("true or false", _boolean)


def choice(*allowed: str) -> Validator:
    """One of ``allowed`` (case-insensitive)."""
    expected = "one of " + ", ".join(repr(a) for a in allowed)

    def check(value: Any) -> str:
        text = str(value).lower() if isinstance(value, str) else None
        if text not in allowed:
            raise _fail(expected, value)
        return text

    return Validator(expected, check)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail("a name or a quoted string", value)
    return value


text = Validator("a name or a quoted string", _text)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def _column(value: Any) -> str:
    if not isinstance(value, str) or not value or "." in value:
        raise _fail("a column name", value)
    return value


column = Validator("a column name", _column)


def _table(value: Any) -> exp.Table:
    if isinstance(value, exp.Table):
        return value
    if isinstance(value, str) and value:
        parts = value.split(".")
        if len(parts) <= 3 and all(parts):
            identifiers = [exp.to_identifier(p, quoted=not _IDENTIFIER.match(p)) for p in parts]
            while len(identifiers) < 3:
                identifiers.insert(0, None)  # type: ignore[arg-type]
            return exp.Table(this=identifiers[2], db=identifiers[1], catalog=identifiers[0])
    raise _fail("a table name", value)


table = Validator("a table name", _table)


def list_of(item: Validator, *, min_length: int = 1, length: int | None = None, expected: str | None = None) -> Validator:
    """A list (``[a, b]``) of at least ``min_length`` (or exactly ``length``) values, each
    checked by ``item``; ``expected`` describes it in messages when the default wording would not."""
    count = f"{length} values, each " if length is not None else ""
    expected = expected or f"a list of {count}{item.expected}"

    def check(value: Any) -> list[Any]:
        if not isinstance(value, list) or len(value) < min_length or (length is not None and len(value) != length):
            raise _fail(expected, value)
        checked = []
        for element in value:
            try:
                checked.append(item(element))
            except ValueError:
                raise _fail(expected, value) from None
        return checked

    return Validator(expected, check)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?\s*$", re.I)
_UNITS = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def _byte_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if not match or float(match.group(1)) <= 0:
        raise _fail("a size such as '64MB' or '2GiB'", value)
    unit = match.group(2).upper() if match.group(2) else None
    return int(float(match.group(1)) * _UNITS[unit])


byte_size = Validator("a size such as '64MB' or '2GiB'", _byte_size)


def _finite(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail("a finite number", value)
    return float(value)


finite = Validator("a finite number", _finite)


def mapped(validator: Validator, convert: Callable[[Any], Any], expected: str | None = None) -> Validator:
    """What ``validator`` accepts, converted by ``convert`` (e.g. upper-cased); ``expected``
    replaces the description."""
    wording = expected or validator.expected

    def check(value: Any) -> Any:
        try:
            return convert(validator(value))
        except ValueError:
            raise _fail(wording, value) from None

    return Validator(wording, check)


def either(*validators: Validator, expected: str | None = None) -> Validator:
    """A value any of ``validators`` accepts (the first that does gives the result)."""
    expected = expected or " or ".join(v.expected for v in validators)

    def check(value: Any) -> Any:
        for validator in validators:
            try:
                return validator(value)
            except ValueError:
                continue
        raise _fail(expected, value)

    return Validator(expected, check)


def anything(expected: str) -> Validator:
    """Any literal value; the statement's own code checks it (``expected`` documents it)."""
    return Validator(expected, lambda value: value)


@dataclass(frozen=True)
class Option:
    """One entry of a statement's ``OPTIONS`` table."""

    validator: Validator
    default: Any = None
    doc: str = ""


def literal_value(node: exp.Expr | None) -> Any:
    """The Python value of an option's value as written.

    Numbers, strings, booleans, NULL, lists of those, and names (bare, or dotted for tables:
    read as strings).

    >>> import sqlglot
    >>> literal_value(sqlglot.parse_one("[1, -2.5, 'a', TRUE]"))
    [1, -2.5, 'a', True]
    >>> literal_value(sqlglot.parse_one("main.jan"))
    'main.jan'
    """
    if node is None or isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Paren):
        return literal_value(node.this)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        raw = node.this
        try:
            return int(raw) if re.fullmatch(r"[0-9]+", raw) else float(raw)
        except ValueError:
            raise ValueError(f"expected a literal (number, string, boolean or list), found {node.sql()}") from None
    if isinstance(node, exp.Neg):
        value = literal_value(node.this)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value
    if isinstance(node, (exp.Array, exp.Tuple)):
        return [literal_value(e) for e in node.expressions]
    if isinstance(node, (exp.Column, exp.Dot)) and all(isinstance(p, exp.Identifier) for p in _name_parts(node)):
        return ".".join(p.name for p in _name_parts(node))
    if isinstance(node, (exp.Identifier, exp.Var)):
        return node.name
    raise ValueError(f"expected a literal (number, string, boolean or list), found {node.sql()}")


def _name_parts(node: exp.Expr) -> list[exp.Expr]:
    if isinstance(node, exp.Column):
        return [p for p in (node.args.get("catalog"), node.args.get("db"), node.args.get("table"), node.this) if p]
    if isinstance(node, exp.Dot):
        return [*_name_parts(node.this), node.expression]
    return [node]


def option_nodes(node: exp.Expr) -> dict[str, exp.Expr]:
    """The ``WITH (name = value, ...)`` of a statement as written, keyed by lower-case name."""
    return {o.name.lower(): o.args["value"] for o in node.args.get("options") or []}


def read_options(node: exp.Expr, table: Mapping[str, Option] | None = None,
                 statement: str | None = None) -> dict[str, Any]:
    """The options given in ``node``'s ``WITH (...)``, each checked by its validator.

    ``table`` defaults to the statement class's ``OPTIONS`` and ``statement`` to its name.
    Options not given are absent (their defaults are in the table); an unknown name is a
    ProgrammingError and a bad value a DataError, worded the same for every statement.
    """
    table = getattr(type(node), "OPTIONS", {}) if table is None else table
    statement = statement or getattr(type(node), "NAME", type(node).__name__)
    given = option_nodes(node)
    unknown = sorted(set(given) - set(table))
    if unknown:
        expected = ", ".join(sorted(table)) or "none (the statement takes no options)"
        raise ProgrammingError(f"unknown {statement} option {unknown[0]!r}; expected one of {expected}")
    values = {}
    for name, value_node in given.items():
        values[name] = check_value(f"{statement} option {name}", table[name].validator, value_node)
    return values


def named_arguments(function: str, named: Sequence[exp.Expr], table: Mapping[str, Option]) -> tuple[tuple[str, Any], ...]:
    """The ``name => value`` arguments of a table function such as ``predict(...)``, in order,
    each checked by its validator: an unknown or repeated name is a ProgrammingError."""
    values: list[tuple[str, Any]] = []
    for arg in named:
        name = arg.this.name.lower()
        if name not in table:
            raise ProgrammingError(f"unknown {function} option {name!r}; expected one of {', '.join(sorted(table))}")
        if any(name == given for given, _ in values):
            raise ProgrammingError(f"{function} option {name} is given twice; give it once")
        values.append((name, check_value(f"{function} option {name}", table[name].validator, arg.expression)))
    return tuple(values)


def check_value(where: str, validator: Validator, value: Any) -> Any:
    """``validator(value)`` (a node is read with :func:`literal_value` first); DataError on failure."""
    try:
        raw = literal_value(value) if isinstance(value, exp.Expr) else value
        return validator(raw)
    except ValueError as e:
        raise DataError(f"{where}: {e}") from None


def defaults(table: Mapping[str, Option]) -> dict[str, Any]:
    """Every option's default, by name."""
    return {name: option.default for name, option in table.items()}


def describe(table: Mapping[str, Option]) -> Sequence[tuple[str, str, str, str]]:
    """(name, accepted values, default, meaning) per option: the rows of the docs' tables."""
    return [(name, o.validator.expected, "" if o.default is None else repr(o.default), o.doc)
            for name, o in sorted(table.items())]
