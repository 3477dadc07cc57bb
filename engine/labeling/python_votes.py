"""Python labeling functions inside the label-matrix query, as temporary DuckDB functions.

Each Python function becomes a DuckDB UDF ``f(key, column, ...) -> vote code`` for the
duration of one LABEL: DuckDB calls it on its batches of rows (vectorized functions get
whole Arrow batches), so Python and SQL functions run in the same single query.

Strict mode (the default) stops at the first row where a function raises, naming the
function and the row's key; fault-tolerant mode counts the failures per function and
abstains on those rows.  A vote outside the classes is always an error.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
from duckdb import PythonExceptionHandling
from duckdb.func import FunctionNullHandling, PythonUDFType
from sqlglot import exp

from engine.errors import DataError
from engine.labeling.classes import LabelClasses
from engine.labeling.functions import LabelingFunction
from engine.labeling.table import quote_column

if TYPE_CHECKING:
    from engine.session import Session

#: Rows per call of a vectorized function outside DuckDB (DuckDB's vector size, as inside it).
BATCH_ROWS = 2048


@dataclass(eq=False)
class PythonVotes:
    """One Python labeling function registered as a DuckDB function for one run."""

    lf: LabelingFunction
    classes: LabelClasses
    fault_tolerant: bool
    udf_name: str
    failures: int = 0
    failure: Exception | None = None  # the error that stopped the query (strict mode)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def fn(self) -> Callable[..., Any]:
        assert self.lf.python is not None
        return self.lf.python.fn

    def call(self, key: exp.Expr) -> exp.Expr:
        """The SQL call: ``udf(key, column, ...)``, giving the vote code (0 abstains)."""
        return exp.Anonymous(this=self.udf_name, expressions=[key.copy(), *[quote_column(c) for c in self.lf.columns()]])

    def register(self, session: Session, key_type: str, column_types: dict[str, str]) -> None:
        by_lower = {name.lower(): kind for name, kind in column_types.items()}
        parameters: list[Any] = [duckdb.sqltype(key_type), *(duckdb.sqltype(by_lower[c.lower()]) for c in self.lf.columns())]
        vectorized = self.lf.python is not None and self.lf.python.vectorized
        session.quiesce()
        session.duck.create_function(
            self.udf_name, _with_arity(self._batch if vectorized else self._row, len(parameters)), parameters,
            duckdb.sqltype("INTEGER"),
            type=PythonUDFType.ARROW if vectorized else PythonUDFType.NATIVE, null_handling=FunctionNullHandling.SPECIAL,
            exception_handling=PythonExceptionHandling.DEFAULT,
            side_effects=True,  # never merged or skipped: failures are counted
        )

    def unregister(self, session: Session) -> None:
        session.quiesce()
        with contextlib.suppress(duckdb.Error):  # never registered (an earlier step failed)
            session.duck.remove_function(self.udf_name)

    def vote_partition(self, keys: pa.Array, columns: Sequence[pa.Array]) -> np.ndarray:
        """The vote codes (int8) of a partition of rows, outside DuckDB (a cluster task runs
        this): row by row, or in DuckDB-sized batches for vectorized functions, with the same
        codes, failure counts and errors as inside the label-matrix query."""
        out = np.zeros(len(keys), dtype=np.int8)
        if self.lf.python is not None and self.lf.python.vectorized:
            for start in range(0, len(keys), BATCH_ROWS):
                stop = min(start + BATCH_ROWS, len(keys))
                codes = self._batch(keys.slice(start, stop - start), *[c.slice(start, stop - start) for c in columns])
                out[start:stop] = codes.to_numpy(zero_copy_only=False)
            return out
        for i, row in enumerate(zip(keys.to_pylist(), *[c.to_pylist() for c in columns])):
            out[i] = self._row(*row)
        return out

    # Row at a time --------------------------------------------------------------------
    def _row(self, key: Any, *values: Any) -> int:
        try:
            vote = self.fn(*values)
        except Exception as e:
            return self._failed(key, e)
        return self._code(vote, key)

    # Arrow batches ----------------------------------------------------------------------
    def _batch(self, keys: Any, *columns: Any) -> pa.Array:
        n = len(keys)
        try:
            votes = _as_list(self.fn(*columns))
        except Exception as e:
            return pa.array([self._single(keys, columns, i, e) for i in range(n)], pa.int32())
        if len(votes) != n:
            self.failure = DataError(
                f"labeling function {self.lf.name} returned {len(votes)} votes for a batch of {n} rows; "
                "a vectorized function returns one vote per row"
            )
            raise self.failure
        return pa.array([self._code(v, keys[i].as_py()) for i, v in enumerate(votes)], pa.int32())

    def _single(self, keys: Any, columns: Sequence[Any], i: int, batch_error: Exception) -> int:
        """After a batch failed: row ``i`` alone, to count (or name) the failing rows."""
        key = keys[i].as_py()
        try:
            vote = _as_list(self.fn(*[c.slice(i, 1) for c in columns]))[0]
        except Exception as e:
            return self._failed(key, e)
        return self._code(vote, key)

    # Shared ---------------------------------------------------------------------------------
    def _failed(self, key: Any, error: Exception) -> int:
        if self.fault_tolerant:
            with self._lock:
                self.failures += 1
            return 0
        self.failure = DataError(
            f"labeling function {self.lf.name} raised {type(error).__name__}: {error} on the row with key {key!r} "
            "(use WITH (fault_tolerant = true) to count failures and abstain instead)"
        )
        self.failure.__cause__ = error
        raise self.failure

    def _code(self, vote: Any, key: Any) -> int:
        if vote is None or (isinstance(vote, float) and math.isnan(vote)):
            return 0
        code = self.classes.code_of(str(vote))
        if code is None:
            self.failure = DataError(
                f"labeling function {self.lf.name} voted {vote!r} on the row with key {key!r}, which is not one of "
                f"the classes {list(self.classes.values)!r} (return None to abstain)"
            )
            raise self.failure
        return code


def _with_arity(method: Callable[..., Any], arity: int) -> Callable[..., Any]:
    """``method`` (which takes ``*args``) as a function DuckDB sees taking ``arity`` arguments."""
    def call(*args: Any) -> Any:
        return method(*args)

    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(f"arg{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(arity)])
    return call


def _as_list(result: Any) -> list[Any]:
    if isinstance(result, (pa.Array, pa.ChunkedArray)):
        return result.to_pylist()
    if hasattr(result, "tolist"):
        return result.tolist()
    return list(result)
