"""PEP 249 cursors.

All cursors of a connection share its one DuckDB connection.  A cursor's rows stay in
DuckDB (streamed by fetchone/fetchmany) until another cursor of the same connection runs a
statement; then the first cursor's remaining rows are read into memory, so interleaved
cursors each keep their own result.

>>> import engine
>>> with engine.connect() as con, con.cursor() as cur:
...     cur.execute("SELECT range AS n FROM range(5)").fetchmany(2)
[(0,), (1,)]
"""
from __future__ import annotations

import re
import warnings
from collections import deque
from typing import Any, Iterator, Sequence, TYPE_CHECKING

import duckdb
import pyarrow as pa
from sqlglot import exp

from engine.dialect import parse_in_script, statement_spans
from engine.errors import InterfaceError, NotSupportedError, ProgrammingError, translate
from engine.executors import EXECUTORS
from engine.executors.query import run_planned_query
from engine.result import Result
from engine.router import statement_kind

if TYPE_CHECKING:
    from engine.connection import Connection

_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_ROWS_MISSING = "the last statement produced no result set (fetch needs a query such as SELECT)"


def _describe(duck_description: list[tuple[Any, ...]] | None) -> list[tuple[Any, ...]] | None:
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

    def __init__(self, connection: "Connection") -> None:
        self.connection = connection
        self.arraysize = 1
        self.rowcount = -1
        self.lastrowid = None
        self.message: str | None = None  # a summary of the last extended statement
        self._closed = False
        self._has_rows = False
        self._live = False  # rows still pending on the shared DuckDB connection
        self._buffer: deque[tuple[Any, ...]] | None = None
        self._description: list[tuple[Any, ...]] | None = None
        self._registered: str | None = None

    # PEP 249 attributes ---------------------------------------------------------------
    @property
    def description(self) -> list[tuple[Any, ...]] | None:
        """One 7-tuple per result column (name, type_code, None, None, precision, scale, None)."""
        if not self._has_rows:
            return None
        if self._description is None and self._live:
            self._description = _describe(self.connection._session.duck.description)
        return self._description

    # Executing ----------------------------------------------------------------------------
    def execute(self, operation: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> "Cursor":
        """Run one statement (or a script of several; the last one's result is kept)."""
        session = self._prepare()
        if not isinstance(operation, str):
            raise ProgrammingError(f"expected the statement as a str, found {type(operation).__name__}")
        if not session.router.needs_mallard(operation):
            body = operation.rstrip().rstrip(";")
            if ";" not in body:
                self._execute_plain(operation, parameters)
                return self
        self._execute_script(operation, parameters)
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Sequence[Any]]) -> "Cursor":
        """Run ``operation`` once per parameter set; rowcount is the total of affected rows."""
        total = 0
        counted = True
        for parameters in seq_of_parameters:
            self.execute(operation, parameters)
            if self.rowcount < 0:
                counted = False
            total += max(self.rowcount, 0)
        self._drop_result()
        self.rowcount = total if counted else -1
        return self

    def callproc(self, procname: str, parameters: Sequence[Any] = ()) -> Sequence[Any]:
        """Call a DuckDB table function or table macro; its rows become the result.

        Returns ``parameters`` unchanged (DuckDB has no output parameters).
        """
        if not isinstance(procname, str) or not procname:
            raise ProgrammingError(f"expected a procedure name, found {procname!r}")
        call = exp.Anonymous(this=exp.to_identifier(procname).sql("duckdb"),
                             expressions=[exp.Placeholder() for _ in parameters])
        query = exp.select(exp.Star()).from_(exp.Table(this=call))
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
        self._check_rows()
        if self._live:
            try:
                return self.connection._session.duck.fetchone()
            except duckdb.Error as e:
                raise translate(e) from e
        assert self._buffer is not None
        return self._buffer.popleft() if self._buffer else None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        self._check_rows()
        size = self.arraysize if size is None else size
        if self._live:
            try:
                return self.connection._session.duck.fetchmany(size)
            except duckdb.Error as e:
                raise translate(e) from e
        assert self._buffer is not None
        return [self._buffer.popleft() for _ in range(min(size, len(self._buffer)))]

    def fetchall(self) -> list[tuple[Any, ...]]:
        self._check_rows()
        if self._live:
            try:
                return self.connection._session.duck.fetchall()
            except duckdb.Error as e:
                raise translate(e) from e
        assert self._buffer is not None
        rows = list(self._buffer)
        self._buffer.clear()
        return rows

    def fetch_arrow_table(self) -> pa.Table:
        """The remaining rows as a pyarrow Table."""
        self._check_rows()
        if self._live:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    return self.connection._session.duck.to_arrow_table()
                except duckdb.Error as e:
                    raise translate(e) from e
        names = [d[0] for d in self.description or []]
        rows = self.fetchall()
        return pa.table({name: [r[i] for r in rows] for i, name in enumerate(names)})

    def fetch_df(self) -> Any:
        """The remaining rows as a pandas DataFrame."""
        self._check_rows()
        if self._live:
            try:
                return self.connection._session.duck.fetch_df()
            except duckdb.Error as e:
                raise translate(e) from e
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
        self._drop_result()
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed or self.connection.closed

    def __enter__(self) -> "Cursor":
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

    def _prepare(self) -> Any:
        self._check_open()
        self.connection._session.claim(self)
        self._drop_result()
        self.rowcount = -1
        self.message = None
        return self.connection._session

    def _drop_result(self) -> None:
        session = self.connection._session
        if self._live and not self.connection.closed:
            session.duck.abort()  # discard this cursor's unread rows
        self._has_rows = self._live = False
        self._buffer = None
        self._description = None
        if self._registered is not None and not self.connection.closed:
            session.unregister(self._registered)
        self._registered = None

    def _detach(self) -> None:
        """Read this cursor's pending rows into memory: another cursor needs the connection."""
        if not self._live:
            return
        self._description = self.description
        try:
            self._buffer = deque(self.connection._session.duck.fetchall())
        except duckdb.Error:
            self._buffer = deque()
        self._live = False

    def _execute_plain(self, sql: str, parameters: Any) -> None:
        session = self.connection._session
        kind = statement_kind(sql)
        if kind == "begin" and session.in_transaction and not session.autocommit:
            return  # manual-commit mode already opened the transaction: BEGIN is a no-op
        if kind not in ("begin", "end"):
            session.begin_implicit()
        duck = session.duck
        try:
            if parameters is None:
                duck.execute(sql)
            else:
                duck.execute(sql, parameters)
        except duckdb.Error as e:
            if kind == "end":
                session.in_transaction = False
                session.catalog_changed()
            raise translate(e) from e
        if kind == "begin":
            session.in_transaction = True
        elif kind == "end":
            session.in_transaction = False
            session.catalog_changed()
        if kind == "rows":
            self._has_rows = self._live = True
        elif kind == "dml":
            self.rowcount = duck.rowcount
        elif kind == "other":
            description = duck.description
            if description is not None and not (len(description) == 1 and description[0][0] in ("Count", "Success")):
                self._has_rows = self._live = True

    def _execute_script(self, sql: str, parameters: Any) -> None:
        spans = statement_spans(sql)
        if not spans:
            raise ProgrammingError("expected a SQL statement, found only whitespace or comments")
        if parameters and len(spans) > 1:
            raise ProgrammingError(
                f"parameters need a single statement; found {len(spans)} statements separated by ;"
            )
        session = self.connection._session
        session.script_state = {}  # a new script: nothing shared with the previous execute()
        for start, end in spans:
            text = sql[start:end]
            self._drop_result()
            self.rowcount = -1
            if not session.router.needs_mallard(text):
                self._execute_plain(text, parameters)
                continue
            for node in parse_in_script(sql, start, end):
                self._execute_tree(node, text, parameters)

    def _execute_tree(self, node: exp.Expression, text: str, parameters: Any) -> None:
        session = self.connection._session
        session.begin_implicit()
        executor = EXECUTORS.get(type(node), run_planned_query)
        result: Result = executor(session, node, parameters, text) if executor is run_planned_query \
            else executor(session, node, parameters)
        self.message = result.message
        if result.query is not None:
            self._execute_plain(result.query, result.params)
        elif result.arrow is not None:
            name = f"__mallard_result_{id(self):x}"
            session.register(name, result.arrow)
            self._registered = name
            self._execute_plain(f'SELECT * FROM "{name}"', None)
        else:
            self.rowcount = result.rowcount
