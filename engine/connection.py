"""PEP 249 connections over one DuckDB connection.

>>> import engine
>>> con = engine.connect()                       # an in-memory database
>>> con.execute("CREATE TABLE t AS SELECT 1 AS x").rowcount
-1
>>> con.execute("SELECT x FROM t").fetchall()
[(1,)]
>>> con.commit(); con.close()
"""
from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import duckdb

from engine import errors, instances
from engine.cursor import Cursor
from engine.errors import InterfaceError, OperationalError, translate
from engine.registry import SETTINGS, register_functions
from engine.session import Session
from engine.settings import SessionSettings
from engine.system_catalog import drop_abandoned_loads, load_macros, migrate


class Connection:
    """A Mallard connection: DuckDB plus Mallard's statements, catalog and functions.

    Transactions follow PEP 249: unless ``autocommit`` is on, the first statement opens a
    transaction that lasts until :meth:`commit` or :meth:`rollback`; closing without
    committing rolls back.  Used as a context manager, the connection commits on success,
    rolls back on an exception, and closes.
    """

    Warning = errors.Warning
    Error = errors.Error
    InterfaceError = errors.InterfaceError
    DatabaseError = errors.DatabaseError
    DataError = errors.DataError
    OperationalError = errors.OperationalError
    IntegrityError = errors.IntegrityError
    InternalError = errors.InternalError
    ProgrammingError = errors.ProgrammingError
    NotSupportedError = errors.NotSupportedError

    def __init__(self, database: str = ":memory:", *, read_only: bool = False, autocommit: bool = False,
                 **config: Any) -> None:
        settings = SessionSettings(SETTINGS)
        given = {k: config.pop(k) for k in list(config) if k.lower() in SETTINGS}
        for name, value in given.items():
            settings.set(name, value)
        database = os.fspath(database)
        duck, self._instance, instance = instances.open_connection(database, read_only, dict(config),
                                                                   _preparer(read_only))
        try:
            _quiet_duckdb_progress(duck)
            load_macros(duck)
        except duckdb.Error as e:
            duck.close()
            instances.release(self._instance)
            raise OperationalError(f"could not prepare a connection to {database!r}: {translate(e)}") from e
        self._session = Session(duck, database, autocommit=autocommit, read_only=read_only, settings=settings,
                                instance=instance)
        self._closed = False
        self._cursors: weakref.WeakSet[Cursor] = weakref.WeakSet()

    # PEP 249 ------------------------------------------------------------------------------
    def cursor(self) -> Cursor:
        self._check_open()
        cursor = Cursor(self)
        self._cursors.add(cursor)
        return cursor

    def commit(self) -> None:
        self._check_open()
        self._session.commit()

    def rollback(self) -> None:
        self._check_open()
        self._session.rollback()

    def close(self) -> None:
        """Close the connection; uncommitted changes are rolled back.  Closing twice is harmless."""
        if self._closed:
            return
        with self._session.lock:
            for cursor in list(self._cursors):
                cursor.close()
            try:
                self._session.rollback()
            finally:
                self._closed = True
                self._session.duck.close()
                instances.release(self._instance)

    # Extensions -------------------------------------------------------------------------------
    def execute(self, operation: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> Cursor:
        """A new cursor that has run ``operation`` (as sqlite3's and DuckDB's connections offer)."""
        return self.cursor().execute(operation, parameters)

    def executemany(self, operation: str, seq_of_parameters: Sequence[Sequence[Any]]) -> Cursor:
        return self.cursor().executemany(operation, seq_of_parameters)

    @property
    def autocommit(self) -> bool:
        """Whether each statement commits on its own (off by default, as PEP 249 asks)."""
        return self._session.autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self._check_open()
        if value and not self._session.autocommit:
            self._session.commit()
        self._session.autocommit = bool(value)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def database(self) -> str:
        return self._session.database

    @property
    def duckdb_connection(self) -> duckdb.DuckDBPyConnection:
        """The underlying DuckDB connection (statements run on it bypass Mallard)."""
        self._check_open()
        return self._session.duck

    @property
    def settings(self) -> SessionSettings:
        """This connection's Mallard settings (``con.settings['progress']``)."""
        return self._session.settings

    @property
    def session(self) -> Session:
        """The connection's session: its DuckDB connection, transaction, settings and statement
        path (for Mallard's own modules and extensions; SQL goes through cursors)."""
        self._check_open()
        return self._session

    def interrupt(self) -> None:
        """Stop the statement running on this connection (from another thread, or a signal
        handler): DuckDB's work stops at once, Mallard's long work (inference scans, training)
        at its next batch; what was half-made is not kept.  Safe to call when nothing runs."""
        if self._closed:
            return
        self._session.cancel.set()
        with contextlib.suppress(duckdb.Error):
            self._session.duck.interrupt()

    def __enter__(self) -> Connection:
        self._check_open()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._closed:
            return
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<engine.Connection {self._session.database!r} {state}>"

    # Internals -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise InterfaceError("connection is closed")



def _preparer(read_only: bool) -> Callable[[instances.Instance, bool], None]:
    """What a database instance needs when a connection opens it: on the first open, the
    catalog migrated and the leftovers of killed loads dropped; on every open, the SQL
    functions declared since."""

    def prepare(instance: instances.Instance, first: bool) -> None:
        if first:
            migrate(instance.root, read_only=read_only)
            if not read_only:
                drop_abandoned_loads(instance.root)
            instance.root.abort()  # leave no finished statement's result pending on the root connection
        register_functions(instance)

    return prepare


def _quiet_duckdb_progress(duck: duckdb.DuckDBPyConnection) -> None:
    """Mallard shows its own progress bars; DuckDB's would print even outside terminals.

    Under Jupyter, DuckDB refuses to change the setting when ipywidgets is missing (it then
    renders no bar anyway), so that refusal is ignored.
    """
    try:
        duck.execute("SET enable_progress_bar = false")
    except duckdb.Error as e:
        if "ipywidgets" not in str(e):
            raise


def connect(database: str = ":memory:", *, path: str | None = None, read_only: bool = False,
            autocommit: bool = False, **config: Any) -> Connection:
    """Open a Mallard database (a DuckDB file, or ``":memory:"``).

    ``config`` holds Mallard settings (``progress="off"``) and DuckDB options
    (``threads=2``, ``memory_limit="4GB"``).  The catalog is created or migrated on connect.

    >>> import engine, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.duckdb")
    >>> with engine.connect(path) as con:
    ...     _ = con.execute("CREATE TABLE notes AS SELECT 'hello' AS text")
    >>> engine.connect(path, read_only=True).execute("SELECT text FROM notes").fetchone()
    ('hello',)
    """
    if path is not None:
        database = path
    if not isinstance(database, (str, os.PathLike)):
        raise InterfaceError(f"expected a database path or ':memory:', found {type(database).__name__}")
    try:
        return Connection(database, read_only=read_only, autocommit=autocommit, **config)
    except errors.Error:
        raise
    except OSError as e:
        raise OperationalError(f"could not open {database!r}: {e}") from e
