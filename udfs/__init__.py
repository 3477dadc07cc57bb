"""Mallard's function library: the built-in SQL functions and the decorators users write
their own with.

Built-in functions are listed in :data:`BUILTIN_FUNCTIONS` (read by
:mod:`engine.registry`, the one place the engine reads this package); a user's are declared
with :func:`scalar_function`, through engine's public API (:mod:`engine.extensions`).  Both
reach DuckDB through the same registration path on every connection.

>>> import engine
>>> from udfs import scalar_function
>>> @scalar_function(parameters=["DOUBLE"], returns="DOUBLE", replace=True)
... def fahrenheit(celsius):
...     return celsius * 9 / 5 + 32
>>> engine.connect().execute("SELECT fahrenheit(100)").fetchone()
(212.0,)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.extensions import ScalarFunction, declare_scalar_function
from udfs.video import FRAME_FUNCTIONS

#: The built-in SQL functions (frame functions of udfs.video).
BUILTIN_FUNCTIONS: tuple[ScalarFunction, ...] = (*FRAME_FUNCTIONS,)


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
        declare_scalar_function(ScalarFunction(key, fn, tuple(parameters), returns, vectorized, side_effects),
                                replace=replace)
        return fn

    return declare


__all__ = ["BUILTIN_FUNCTIONS", "scalar_function"]
