"""The PEP 249 exception tree, and the translation of DuckDB's exceptions into it.

Every error Mallard raises is an :class:`Error` subclass.  DuckDB's own exceptions are
re-raised as the matching PEP 249 class with the original chained (``raise ... from e``),
so ``except engine.ProgrammingError`` catches a DuckDB parser error and a Mallard one alike.

>>> import engine
>>> con = engine.connect()
>>> try:
...     con.execute("SELEC 1")
... except engine.ProgrammingError as e:
...     print(type(e.__cause__).__name__)
ParserException
"""
from __future__ import annotations

from typing import Any

import duckdb


class Warning(Exception):
    """Important warnings, such as data truncation while inserting."""


class Error(Exception):
    """Root of every Mallard error."""


class InterfaceError(Error):
    """Misuse of the interface itself: a closed cursor or connection, a bad argument."""


class DatabaseError(Error):
    """Errors related to the database."""


class DataError(DatabaseError):
    """Problems with the processed data: a corrupt video, a value outside its domain."""


class OperationalError(DatabaseError):
    """Errors in the database's operation: out of memory, an I/O failure, a lost file."""


class IntegrityError(DatabaseError):
    """Relational integrity is affected: a duplicate key, a violated constraint."""


class InternalError(DatabaseError):
    """The database hit an internal error: a bug, not the user's fault."""


class ProgrammingError(DatabaseError):
    """Errors in the statement: a syntax error, a missing table, a wrong argument count."""


class NotSupportedError(DatabaseError):
    """A method or API the database does not support."""


PEP249_ERRORS = (
    Warning, Error, InterfaceError, DatabaseError, DataError, OperationalError,
    IntegrityError, InternalError, ProgrammingError, NotSupportedError,
)

# DuckDB's exception classes already sit under PEP 249 categories of their own; map each
# category to ours, most specific first.
_DUCKDB_TO_PEP249: tuple[tuple[Any, Any], ...] = (
    (duckdb.NotSupportedError, NotSupportedError),
    (duckdb.ProgrammingError, ProgrammingError),
    (duckdb.IntegrityError, IntegrityError),
    (duckdb.DataError, DataError),
    (duckdb.InternalError, InternalError),
    (duckdb.OperationalError, OperationalError),
    (duckdb.InterfaceError if hasattr(duckdb, "InterfaceError") else (), InterfaceError),
    (duckdb.DatabaseError, DatabaseError),
    (duckdb.Warning if hasattr(duckdb, "Warning") else (), Warning),
    (duckdb.Error, DatabaseError),
)


def pep249_class(exc: BaseException) -> type[Error]:
    """The PEP 249 class that a DuckDB exception belongs to.

    >>> import duckdb
    >>> pep249_class(duckdb.CatalogException("no table")).__name__
    'ProgrammingError'
    >>> pep249_class(duckdb.ConversionException("bad cast")).__name__
    'DataError'
    """
    for duck_cls, ours in _DUCKDB_TO_PEP249:
        if duck_cls and isinstance(exc, duck_cls):
            return ours
    return DatabaseError


def translate(exc: BaseException) -> Error:
    """A PEP 249 exception carrying DuckDB's message; raise it ``from exc``."""
    if isinstance(exc, Error):
        return exc
    message = str(exc)
    if "Python exception occurred while executing the UDF" in message:
        return DataError(message)  # a function rejected a value it was given
    return pep249_class(exc)(message)
