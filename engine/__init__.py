"""Mallard: an in-process ML database on DuckDB.

A PEP 249 (DB-API 2.0) module.  ``engine.connect()`` opens a database; SQL is DuckDB's,
plus Mallard's statements (``LOAD VIDEO``, ``SET <mallard setting>``, and those of the
labeling, validation and inference capabilities).

>>> import engine
>>> con = engine.connect()
>>> con.execute("SELECT ? + 1", [41]).fetchone()
(42,)
>>> engine.apilevel, engine.paramstyle
('2.0', 'qmark')
"""
from __future__ import annotations

from typing import Any

from engine.connection import Connection, connect
from engine.cursor import Cursor
from engine.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)
from engine.types import (
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
)
from engine.video import frame_to_numpy, frames_from_numpy, frames_to_numpy, iter_frames

__version__ = "0.1.0"

#: PEP 249 module globals.
apilevel = "2.0"
#: Threads may share the module and connections: each operation holds the connection's lock, and a
#: connection per thread runs in parallel (they share one DuckDB database instance in a process).
threadsafety = 2
paramstyle = "qmark"


def load_model(con: Connection, name: str, version: int | None = None) -> Any:
    """Model ``name``'s current version (or ``version``) from the catalog as a torch module in
    eval mode (a trained model, or one created from a weights file).

    >>> import engine
    >>> con = engine.connect()
    >>> _ = con.execute("CREATE TABLE t AS SELECT range AS x, CASE WHEN range % 2 = 0 THEN 'even' ELSE 'odd' END AS label"
    ...                 " FROM range(40)")
    >>> _ = con.execute("CREATE MODEL parity WITH (architecture = 'mlp', hidden = [4], epochs = 1) AS SELECT x, label FROM t")
    >>> type(engine.load_model(con, "parity")).__name__
    'LayeredClassifier'
    """
    from engine.options import shown, whole_argument
    from engine.training.loading import load_model as load
    from engine.video import check_connection

    con = check_connection(con)
    if not isinstance(name, str) or not name:
        raise ProgrammingError(f"expected a model name as a non-empty str, found {shown(name)}")
    if version is not None:
        version = whole_argument("load_model version", version, 1)
    return load(con.duckdb_connection, name, version)


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext engine``: the ``%sql`` / ``%%sql`` magics."""
    from engine.magic import load_ipython_extension as load

    load(ipython)


__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "Binary",
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "Warning",
    "apilevel",
    "connect",
    "frame_to_numpy",
    "frames_from_numpy",
    "frames_to_numpy",
    "iter_frames",
    "load_model",
    "paramstyle",
    "threadsafety",
]
