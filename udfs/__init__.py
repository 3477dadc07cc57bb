"""Mallard's function library, registered into DuckDB through one path.

Built-in functions and a user's own are declared the same way, with
:func:`scalar_function`; :func:`prepare_connection` registers every declared function (and
runs each capability's preparer) on every new connection.

>>> import engine
>>> from udfs import scalar_function
>>> @scalar_function(parameters=["DOUBLE"], returns="DOUBLE", replace=True)
... def fahrenheit(celsius):
...     return celsius * 9 / 5 + 32
>>> engine.connect().execute("SELECT fahrenheit(100)").fetchone()
(212.0,)
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

import duckdb


@dataclass(frozen=True)
class ScalarFunction:
    """A declared scalar SQL function."""

    name: str
    fn: Callable[..., Any]
    parameters: tuple[str, ...]
    returns: str
    vectorized: bool
    side_effects: bool


#: Every declared scalar function, by lower-case name.
SCALAR_FUNCTIONS: dict[str, ScalarFunction] = {}

#: Per-connection preparers of the capabilities: ``fn(session)``, run in order.
PREPARERS: list[Callable[[Any], None]] = []


def scalar_function(name: str | None = None, *, parameters: list[str], returns: str, vectorized: bool = False,
                    side_effects: bool = False, replace: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a Python function as a SQL scalar function on every Mallard connection.

    ``parameters`` and ``returns`` are DuckDB type names.  With ``vectorized=True`` the
    function receives and returns pyarrow arrays (one call per batch of rows).
    """
    if callable(name):
        raise TypeError("scalar_function needs its arguments: write @scalar_function(parameters=[...], returns=...)")

    def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = (name or fn.__name__).lower()
        if key in SCALAR_FUNCTIONS and not replace and SCALAR_FUNCTIONS[key].fn is not fn:
            raise ValueError(f"a function named {key!r} is already declared; pass replace=True to replace it")
        SCALAR_FUNCTIONS[key] = ScalarFunction(key, fn, tuple(parameters), returns, vectorized, side_effects)
        return fn

    return declare


def prepare_connection(session: Any) -> None:
    """Register every declared function and run every capability's preparer on ``session``."""
    session.quiesce()
    duck: duckdb.DuckDBPyConnection = session.duck
    for spec in SCALAR_FUNCTIONS.values():
        duck.create_function(
            spec.name, spec.fn, [duckdb.sqltype(p) for p in spec.parameters], duckdb.sqltype(spec.returns),
            type="arrow" if spec.vectorized else "native", side_effects=spec.side_effects,
            exception_handling="default",
        )
    for preparer in PREPARERS:
        preparer(session)


#: Modules that declare no SQL function and need torch: imported where they are used (CREATE
#: MODEL, model functions), so that ``import engine`` stays light (torch costs ~1 s and ~300 MB).
_ON_DEMAND = frozenset({"architectures", "models"})

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _ON_DEMAND:
        importlib.import_module(f"{__name__}.{_module.name}")
