"""Python labeling functions: the ``@labeling_function`` decorator.

A labeling function (LF) votes a class for a row, or abstains by returning ``None``.  Its
parameters name the columns it reads.  Decorated functions are declared for every
connection (through engine's :mod:`engine.extensions`); ``LABEL <table> USING <name>, ...``
then runs them inside the same DuckDB query as the SQL labeling functions, in batches.

>>> import engine
>>> from udfs.labeling import labeling_function
>>> @labeling_function(name="doc_shouting", on="sms", replace=True)
... def shouting(text):
...     return "spam" if text.isupper() else None
>>> shouting("WIN NOW"), shouting("hi")
('spam', None)
>>> con = engine.connect()
>>> _ = con.execute("CREATE TABLE sms AS SELECT * FROM (VALUES (1, 'WIN NOW'), (2, 'hi')) t(id, text)")
>>> con.execute("SHOW LABELING FUNCTIONS ON sms").fetchall()[0][:3]
('doc_shouting', 'sms', 'python')

With ``vectorized=True`` the function gets one pyarrow array per column (a batch of rows)
and returns a sequence of votes of the same length.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from engine.extensions import PythonLabelingFunction, declare_labeling_function, register_labeling_function


def labeling_function(name: str | None = None, *, on: str | None = None, vectorized: bool = False,
                      replace: bool = False, register: bool = True) -> Callable[[Callable[..., Any]], PythonLabelingFunction]:
    """Declare a Python labeling function over the columns its parameters name.

    ``name`` defaults to the function's name; ``on`` is the table it is written for.  A
    second function with the same name is an error unless ``replace=True``.  With
    ``register=False`` it is only returned, for :func:`register_labeling_function`
    (one connection only).

    >>> import engine
    >>> con = engine.connect()
    >>> only_here = labeling_function(name="doc_only_here", on="t", register=False)(lambda text: None)
    >>> register_labeling_function(con, only_here)
    >>> con.execute("SHOW LABELING FUNCTIONS ON t").fetchall()[0][:3]
    ('doc_only_here', 't', 'python')
    """
    if callable(name):
        raise TypeError(
            "labeling_function needs parentheses and a table: write @labeling_function(on='<table>'), "
            "not @labeling_function"
        )
    if not on or not isinstance(on, str):
        raise TypeError(f"labeling_function needs on='<table name>' (the table it labels), found on={on!r}")

    def declare(fn: Callable[..., Any]) -> PythonLabelingFunction:
        lf = PythonLabelingFunction(
            name=(name or fn.__name__).lower(), on=on.lower(), fn=fn, columns=_columns(fn), vectorized=vectorized,
        )
        if register:
            declare_labeling_function(lf, replace=replace)
        return lf

    return declare


def _columns(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The columns a function reads: its parameter names, in order."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as e:
        raise TypeError(f"labeling_function: cannot read the parameters of {fn!r}: {e}") from None
    plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    odd = [p.name for p in parameters if p.kind not in plain]
    if odd or not parameters:
        raise TypeError(
            f"labeling_function {getattr(fn, '__name__', fn)!r}: expected plain parameters named after the columns "
            f"it reads (def lf(text): ...), found {list(inspect.signature(fn).parameters) or 'none'}"
        )
    return tuple(p.name for p in parameters)



__all__ = ["PythonLabelingFunction", "labeling_function", "register_labeling_function"]
