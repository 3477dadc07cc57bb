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
    "paramstyle",
    "threadsafety",
]
