"""Statistics sets in the catalog: save staged spans, look sets up, delete them.

A set is a row of ``mallard.statistics`` plus its spans' partial aggregates; its merged
statistics are read with the ``validation_statistics(name)`` table macro.
"""
from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Any, Iterator

from engine.errors import Error, ProgrammingError

_STAGING = ("mallard_span_rows", "mallard_span_columns", "mallard_span_values")


def statistics_exists(session: Any, name: str) -> bool:
    return bool(session.sql("SELECT count(*) FROM mallard.statistics WHERE name = ?", [name]).fetchone()[0])


def require_statistics(session: Any, name: str) -> None:
    if not statistics_exists(session, name):
        known = [r[0] for r in session.sql("SELECT name FROM mallard.statistics ORDER BY name").fetchall()]
        listing = ", ".join(known) if known else "none yet (COMPUTE STATISTICS FOR <table> makes one)"
        raise ProgrammingError(f"expected statistics named {name!r}; known statistics: {listing}")


def stored_columns(session: Any, name: str) -> dict[str, str]:
    """Column name -> kind of a stored set (from its first span)."""
    rows = session.sql(
        "SELECT column_name, kind FROM mallard.statistics_columns WHERE statistics = ? AND span = 1"
        " ORDER BY position", [name]).fetchall()
    return dict(rows)


def next_span(session: Any, name: str) -> int:
    return session.sql("SELECT coalesce(max(span), 0) + 1 FROM mallard.statistics_spans WHERE statistics = ?",
                       [name]).fetchone()[0]


def delete_statistics(session: Any, name: str) -> None:
    for table in ("statistics_values", "statistics_columns", "statistics_spans"):
        session.sql(f"DELETE FROM mallard.{table} WHERE statistics = ?", [name])
    session.sql("DELETE FROM mallard.statistics WHERE name = ?", [name])


def create_statistics(session: Any, name: str, sketch_accuracy: float, max_values: int) -> None:
    session.sql("INSERT INTO mallard.statistics (name, sketch_accuracy, max_values) VALUES (?, ?, ?)",
                [name, sketch_accuracy, max_values])


def save_span(session: Any, key: str, name: str, span: int) -> None:
    """Copy the span staged under ``key`` into set ``name`` as span number ``span``."""
    session.sql("INSERT INTO mallard.statistics_spans SELECT * REPLACE (? AS statistics, ? AS span)"
                " FROM mallard_span_rows WHERE statistics = ?", [name, span, key])
    session.sql("INSERT INTO mallard.statistics_columns SELECT * REPLACE (? AS statistics, ? AS span)"
                " FROM mallard_span_columns WHERE statistics = ?", [name, span, key])
    session.sql("INSERT INTO mallard.statistics_values SELECT * REPLACE (? AS statistics, ? AS span)"
                " FROM mallard_span_values WHERE statistics = ?", [name, span, key])
    session.sql("UPDATE mallard.statistics SET updated_at = current_timestamp WHERE name = ?", [name])


@contextmanager
def staged(session: Any) -> Iterator[str]:
    """A fresh staging key; whatever was staged under it is discarded at the end."""
    key = f"__staged_{uuid.uuid4().hex}"
    try:
        yield key
    finally:
        try:
            for table in _STAGING:
                session.sql(f"DELETE FROM {table} WHERE statistics = ?", [key])
        except Error:
            pass  # the failed statement's transaction is aborted; rolling it back drops the rows
