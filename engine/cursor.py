"""PEP 249 cursors.

Every statement goes through the connection's session (:meth:`engine.session.Session.execute`).
All cursors of a connection share its DuckDB connection and transaction.  A cursor's rows
stay in DuckDB (streamed by fetchone/fetchmany) until another cursor of the same connection
runs a statement; then the first cursor's remaining rows are read into memory, so
interleaved cursors each keep their own result.  Cursors may be used from several threads:
each operation holds the connection's lock (``threadsafety = 2``).

>>> import engine
>>> with engine.connect() as con, con.cursor() as cur:
...     cur.execute("SELECT range AS n FROM range(5)").fetchmany(2)
[(0,), (1,)]
"""
from __future__ import annotations

import re
import sys
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from engine.errors import InterfaceError, NotSupportedError, ProgrammingError, translate
from engine.options import whole_argument

if TYPE_CHECKING:
    from engine.connection import Connection
    from engine.session import Session

_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_ROWS_MISSING = "the last statement produced no result set (fetch needs a query such as SELECT)"

#: The most rows one fetch asks DuckDB for (its count is a 64-bit integer); a bigger size is
#: capped, since asking for up to more rows than a result has is legal.
MAX_FETCH = sys.maxsize

Description = list[tuple[Any, ...]]


def _describe(duck_description: list[tuple[Any, ...]] | None) -> Description | None:
    if duck_description is None:
        return None
    described = []
    for column in duck_description:
        type_code = str(column[1])
        precision = scale = None
        match = _DECIMAL.match(type_code)
        if match:
            precision, scale = int(match.group(1)), int(match.group(2))
        described.append((column[0], type_code, None, None, precision, scale, None))
    return described


class Cursor:
    """A PEP 249 cursor; see the module docstring."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._arraysize = 1
        self.rowcount = -1
        self.lastrowid = None
        self.message: str | None = None  # a summary of the last extended statement
        self._closed = False
        self._has_rows = False
        self._live = False  # rows still pending on the shared DuckDB connection
        self._buffer: deque[tuple[Any, ...]] | None = None
        self._description: Description | None = None

    @property
    def _session(self) -> Session:
        return self.connection.session

    # PEP 249 attributes ---------------------------------------------------------------
    @property
    def arraysize(self) -> int:
        """How many rows :meth:`fetchmany` fetches when given no size (1 by default)."""
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = whole_argument("arraysize", value, 1)

    @property
    def description(self) -> Description | None:
        """One 7-tuple per result column (name, type_code, None, None, precision, scale, None)."""
        if not self._has_rows:
            return None
        if self._description is None and self._live:
            with self._session.lock:
                self._description = _describe(self._session.duck.description)
        return self._description

    # Executing ----------------------------------------------------------------------------
    def execute(self, operation: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None) -> Cursor:
        """Run one statement (or a script of several; the last one's result is kept)."""
        self._check_open()
        session = self._session
        with session.lock:
            self._reset()
            opened = session.execute(self, operation, parameters)
            self.message = opened.message
            self.rowcount = opened.rowcount
            self._has_rows = self._live = opened.has_rows
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Sequence[Any]]) -> Cursor:
        """Run ``operation`` once per parameter set; rowcount is the total of affected rows."""
        self._check_open()
        if not isinstance(operation, str):
            raise ProgrammingError(f"expected the statement as a str, found {type(operation).__name__}")
        if (isinstance(seq_of_parameters, (str, bytes, bytearray, memoryview, Mapping))
                or not isinstance(seq_of_parameters, Iterable)):
            raise ProgrammingError("executemany: expected the parameter sets as a sequence of lists, tuples or dicts,"
                                   f" found {type(seq_of_parameters).__name__}")
        total = 0
        counted = True
        for parameters in seq_of_parameters:
            self.execute(operation, parameters)
            if self.rowcount < 0:
                counted = False
            total += max(self.rowcount, 0)
        with self._session.lock:
            self._reset()
        self.rowcount = total if counted else -1
        return self

    def callproc(self, procname: str, parameters: Sequence[Any] = ()) -> Sequence[Any]:
        """Call a function: a DuckDB table function or table macro (its rows become the result)
        or a scalar function (one row with its value).  Returns ``parameters`` unchanged, as
        PEP 249 asks (DuckDB has no output parameters); fetch the result.

        >>> import engine
        >>> cur = engine.connect().cursor()
        >>> cur.callproc("lower", ("FOO",))
        ('FOO',)
        >>> cur.fetchall()
        [('foo',)]
        """
        if not isinstance(procname, str) or not procname:
            raise ProgrammingError(f"expected a function name, found {procname!r}")
        if isinstance(parameters, (str, bytes, bytearray)) or not isinstance(parameters, Sequence):
            raise ProgrammingError(f"callproc: expected the parameters as a list or tuple, found {type(parameters).__name__}")
        self._check_open()
        kinds = {row[0] for row in self.connection.execute(
            "SELECT DISTINCT function_type FROM duckdb_functions() WHERE lower(function_name) = lower(?)",
            [procname]).fetchall()}
        if not kinds:
            raise ProgrammingError(f"no function named {procname!r} (duckdb_functions() lists the functions)")
        call = exp.Anonymous(this=exp.to_identifier(procname).sql("duckdb"),
                             expressions=[exp.Placeholder() for _ in parameters])
        if kinds & {"table", "table_macro"}:
            query = exp.select(exp.Star()).from_(exp.Table(this=call))
        else:
            query = exp.select(call)
        self.execute(query.sql("duckdb"), list(parameters))
        return parameters

    def setinputsizes(self, sizes: Any) -> None:
        """Accepted and ignored: DuckDB needs no input size hints."""
        self._check_open()

    def setoutputsize(self, size: int, column: int | None = None) -> None:
        """Accepted and ignored: DuckDB needs no output size hints."""
        self._check_open()

    def nextset(self) -> None:
        raise NotSupportedError("DuckDB returns one result set per statement; nextset is not supported")

    # Fetching -------------------------------------------------------------------------------
    def fetchone(self) -> tuple[Any, ...] | None:
        with self._session.lock:
            self._check_rows()
            if self._live:
                row = self._fetch_live(lambda duck: duck.fetchone())
                if row is None:
                    self._finished()
                return row
            assert self._buffer is not None
            return self._buffer.popleft() if self._buffer else None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        """Up to ``size`` rows (``arraysize`` when not given; a whole number >= 0)."""
        size = self.arraysize if size is None else min(whole_argument("fetchmany size", size, 0), MAX_FETCH)
        with self._session.lock:
            self._check_rows()
            if self._live:
                rows = self._fetch_live(lambda duck: duck.fetchmany(size))
                if len(rows) < size:
                    self._finished()
                return rows
            assert self._buffer is not None
            return [self._buffer.popleft() for _ in range(min(size, len(self._buffer)))]

    def fetchall(self) -> list[tuple[Any, ...]]:
        with self._session.lock:
            self._check_rows()
            if self._live:
                rows = self._fetch_live(lambda duck: duck.fetchall())
                self._finished()
                return rows
            assert self._buffer is not None
            rows = list(self._buffer)
            self._buffer.clear()
            return rows

    def fetch_arrow_table(self) -> pa.Table:
        """The remaining rows as a pyarrow Table."""
        with self._session.lock:
            self._check_rows()
            if self._live:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    table = self._fetch_live(lambda duck: duck.to_arrow_table())
                self._finished()
                return table
            names = [d[0] for d in self.description or []]
            rows = self.fetchall()
            return pa.table({name: [r[i] for r in rows] for i, name in enumerate(names)})

    def fetch_df(self) -> Any:
        """The remaining rows as a pandas DataFrame."""
        with self._session.lock:
            self._check_rows()
            if self._live:
                frame = self._fetch_live(lambda duck: duck.fetch_df())
                self._finished()
                return frame
            return self.fetch_arrow_table().to_pandas()

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self

    def __next__(self) -> tuple[Any, ...]:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    # Closing -----------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        if not self.connection.closed:
            with self._session.lock:
                self._reset()
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed or self.connection.closed

    def __enter__(self) -> Cursor:
        self._check_open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # Internals -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise InterfaceError("cursor is closed")
        if self.connection.closed:
            raise InterfaceError("connection is closed")

    def _check_rows(self) -> None:
        self._check_open()
        if not self._has_rows:
            raise ProgrammingError(_ROWS_MISSING)

    def _fetch_live(self, fetch: Any) -> Any:
        try:
            return fetch(self._session.duck)
        except duckdb.Error as e:
            self._finished()
            raise translate(e) from e

    def _finished(self) -> None:
        """All rows read (or the result failed): the statement ends, what it registered goes."""
        if self._live:
            if self._description is None:
                self._description = _describe(self._session.duck.description)
            self._live = False
            self._buffer = deque()
            self._session.finish(self)

    def _reset(self) -> None:
        """Forget the last result: unread rows are discarded and the statement ends."""
        if self._has_rows or self._live:
            self._session.finish(self)
        self._has_rows = self._live = False
        self._buffer = None
        self._description = None
        self.rowcount = -1
        self.message = None

    def _detach(self) -> None:
        """Read this cursor's pending rows into memory: another cursor needs the connection."""
        if not self._live:
            return
        self._description = self.description
        try:
            self._buffer = deque(self._session.duck.fetchall())
        except duckdb.Error:
            self._buffer = deque()
        self._live = False
        self._session.finish(self)
