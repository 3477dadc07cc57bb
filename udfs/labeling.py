"""Python labeling functions: the ``@labeling_function`` decorator and its registry.

A labeling function (LF) votes a class for a row, or abstains by returning ``None``.  Its
parameters name the columns it reads.  Decorated functions are registered for every
connection (through :data:`udfs.PREPARERS`); ``LABEL <table> USING <name>, ...`` then runs
them inside the same DuckDB query as the SQL labeling functions, in batches.

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
from collections import ChainMap
from dataclasses import dataclass, field
from typing import Any, Callable, MutableMapping

from udfs import PREPARERS


@dataclass(frozen=True, eq=False)
class PythonLabelingFunction:
    """A labeling function written in Python; calling it calls the function."""

    name: str
    on: str
    fn: Callable[..., Any] = field(repr=False)
    columns: tuple[str, ...]
    vectorized: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def definition(self) -> str:
        """The function's source text (or its qualified name when the source is unavailable)."""
        try:
            return inspect.getsource(self.fn).strip()
        except (OSError, TypeError):
            return f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', self.name)}"


#: Labeling functions declared with the decorator, by lower-case name: every connection sees them.
LABELING_FUNCTIONS: dict[str, PythonLabelingFunction] = {}

_STATE_KEY = "labeling.python_functions"


def labeling_function(name: str | None = None, *, on: str | None = None, vectorized: bool = False,
                      replace: bool = False, register: bool = True) -> Callable[[Callable[..., Any]], PythonLabelingFunction]:
    """Declare a Python labeling function over the columns its parameters name.

    ``name`` defaults to the function's name; ``on`` is the table it is written for.  A
    second function with the same name is an error unless ``replace=True``.  With
    ``register=False`` it is only returned, for :func:`register_labeling_function`.
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
            _add(LABELING_FUNCTIONS, lf, replace)
        return lf

    return declare


def register_labeling_function(connection: Any, lf: PythonLabelingFunction, *, replace: bool = False) -> None:
    """Make ``lf`` known on one connection only (an ``engine.Connection``).

    >>> import engine
    >>> con = engine.connect()
    >>> only_here = labeling_function(name="doc_only_here", on="t", register=False)(lambda text: None)
    >>> register_labeling_function(con, only_here)
    >>> "doc_only_here" in python_labeling_functions(con._session), "doc_only_here" in LABELING_FUNCTIONS
    (True, False)
    """
    if not isinstance(lf, PythonLabelingFunction):
        raise TypeError(f"expected a function made by @labeling_function(...), found {type(lf).__name__}")
    session = getattr(connection, "_session", connection)
    _add(python_labeling_functions(session).maps[0], lf, replace)


def python_labeling_functions(session: Any) -> ChainMap[str, PythonLabelingFunction]:
    """The Python labeling functions a session sees: its own, then the declared ones."""
    if _STATE_KEY not in session.state:
        prepare_labeling(session)
    return session.state[_STATE_KEY]


def prepare_labeling(session: Any) -> None:
    """The preparer: give the session its own registry, falling back on the declared functions."""
    session.state[_STATE_KEY] = ChainMap({}, LABELING_FUNCTIONS)


def _add(registry: MutableMapping[str, PythonLabelingFunction], lf: PythonLabelingFunction, replace: bool) -> None:
    if lf.name in registry and not replace and registry[lf.name].fn is not lf.fn:
        raise ValueError(
            f"a labeling function named {lf.name!r} is already registered; pass replace=True to replace it"
        )
    registry[lf.name] = lf


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


PREPARERS.append(prepare_labeling)
