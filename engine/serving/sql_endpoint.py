"""``POST /v1/sql``: statements run by the server on its own connection.

DuckDB lets no other process open a database file while the server has it open for writing,
so analysts (and ``mallard --server URL``) send their statements here.  They take the normal
path of every statement (a cursor of the server's connection): any SQL, Mallard's statements,
``?`` parameters.  A request's text may hold several statements (the last one's rows come
back); it runs in autocommit mode, and a transaction it opens without closing is rolled back
when it ends.  Afterwards the server reloads what the catalog changed (a new current version
swaps in: :mod:`engine.serving.versions`), and the answer says so.

Values come back as JSON: numbers, strings and booleans as they are, NaN and infinities as
the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, BLOBs as base64 strings, times as ISO
8601 strings, decimals and UUIDs as strings, lists and structs as arrays and objects.

>>> import engine
>>> result = run_statement(engine.connect(autocommit=True), "SELECT 42 AS answer, 'x'::BLOB AS b, [1.5, 'NaN'::DOUBLE] AS l")
>>> result["columns"], result["rows"]
([{'name': 'answer', 'type': 'INTEGER'}, {'name': 'b', 'type': 'BLOB'}, {'name': 'l', 'type': 'DOUBLE[]'}], [[42, 'eA==', [1.5, 'NaN']]])
"""
from __future__ import annotations

import base64
import datetime
import decimal
import math
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import engine

#: Rows returned at most by default (``max_rows`` in the request raises or lowers it).
MAX_ROWS = 10_000


def json_value(value: Any) -> Any:
    """A SQL value as a JSON-ready value (see the module docstring)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (datetime.date, datetime.time, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return str(value)


def run_statement(connection: engine.Connection, sql: str, parameters: Sequence[Any] | None = None,
                  max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """Run ``sql`` on a cursor of ``connection``; its result as a JSON-ready dict:
    ``columns`` (name, type), ``rows``, ``rowcount``, ``message``, ``truncated``."""
    cursor = connection.cursor()
    try:
        cursor.execute(sql, parameters)
        result: dict[str, Any] = {"columns": None, "rows": None, "rowcount": cursor.rowcount,
                                  "message": cursor.message, "truncated": False}
        if cursor.description is not None:
            rows = cursor.fetchmany(max_rows + 1)
            result["truncated"] = len(rows) > max_rows
            result["columns"] = [{"name": d[0], "type": str(d[1])} for d in cursor.description]
            result["rows"] = [[json_value(v) for v in row] for row in rows[:max_rows]]
        return result
    finally:
        cursor.close()
        session = connection.session
        if session.in_transaction:
            session.rollback()
