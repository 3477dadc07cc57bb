"""PEP 249 type objects and constructors.

``cursor.description`` reports each column's type code as DuckDB's type name (a string such
as ``'INTEGER'`` or ``'DECIMAL(18,3)'``); the type objects compare equal to every type code
of their group, as PEP 249 asks:

>>> NUMBER == "DECIMAL(18,3)", STRING == "VARCHAR", NUMBER == "VARCHAR"
(True, True, False)
>>> Date(2024, 1, 31), Binary(b"\\x00\\x01")
(datetime.date(2024, 1, 31), b'\\x00\\x01')
"""
from __future__ import annotations

import datetime
import re
import time

_BASE_NAME = re.compile(r"^[A-Z_ ]+")


class DBAPITypeObject:
    """A group of database type names that compares equal to each of its members."""

    def __init__(self, name: str, *type_names: str) -> None:
        self.name = name
        self.values = frozenset(type_names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DBAPITypeObject):
            return self.values == other.values
        base = _BASE_NAME.match(str(other).upper())
        return base is not None and base.group(0).strip() in self.values

    def __hash__(self) -> int:
        return hash(self.values)

    def __repr__(self) -> str:
        return f"<DBAPITypeObject {self.name}>"


STRING = DBAPITypeObject("STRING", "VARCHAR", "CHAR", "BPCHAR", "TEXT", "STRING", "UUID", "ENUM", "JSON")
BINARY = DBAPITypeObject("BINARY", "BLOB", "BYTEA", "VARBINARY", "BIT", "BITSTRING")
NUMBER = DBAPITypeObject(
    "NUMBER", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "NUMERIC",
    "BOOLEAN", "VARINT", "BIGNUM",
)
DATETIME = DBAPITypeObject(
    "DATETIME", "DATE", "TIME", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ",
    "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIME WITH TIME ZONE", "TIMETZ", "INTERVAL",
)
# DuckDB's row identifier (the ``rowid`` pseudo-column) is a BIGINT.
ROWID = DBAPITypeObject("ROWID", "ROWID", "BIGINT")

Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime


def DateFromTicks(ticks: float) -> datetime.date:
    """The local date of a POSIX timestamp."""
    return Date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> datetime.time:
    """The local time of day of a POSIX timestamp."""
    return Time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> datetime.datetime:
    """The local date and time of a POSIX timestamp."""
    return Timestamp(*time.localtime(ticks)[:6])


def Binary(value: bytes | bytearray | memoryview | str) -> bytes:
    """A binary (BLOB) value; a ``str`` is encoded as UTF-8."""
    return value.encode() if isinstance(value, str) else bytes(value)
