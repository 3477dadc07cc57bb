"""Rows handed back to a cursor as one list parameter per column, unnested by DuckDB.

A statement's few result rows (anomalies, schema changes) need neither a temp table (which
would show in SHOW TABLES) nor an Arrow table (whose first use imports pandas, 0.4 s).

>>> import duckdb
>>> columns = (("name", "VARCHAR"), ("score", "DOUBLE"))
>>> duckdb.execute(rows_query(columns), column_lists([{"name": "a", "score": 1.5}, {"name": "b", "score": None}], columns)).fetchall()
[('a', 1.5), ('b', None)]
"""
from __future__ import annotations

from typing import Any, Sequence

Columns = Sequence[tuple[str, str]]


def rows_query(columns: Columns) -> str:
    """SELECT of the rows given as parameters, one typed list per column (in order)."""
    return "SELECT " + ", ".join(f"unnest(?::{sql_type}[]) AS {name}" for name, sql_type in columns)


def column_lists(rows: Sequence[dict[str, Any]], columns: Columns) -> list[list[Any]]:
    """The parameters of :func:`rows_query` for ``rows`` (dicts keyed by column name)."""
    return [[row[name] for row in rows] for name, _ in columns]
