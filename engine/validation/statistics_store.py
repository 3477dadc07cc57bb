"""Statistics sets in the catalog: save staged spans, look sets up, delete them.

A set is a row of ``mallard.statistics`` plus its spans' partial aggregates; its merged
statistics are read with the ``validation_statistics(name)`` table macro.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from engine.errors import Error, ProgrammingError

if TYPE_CHECKING:
    from engine.session import Session

#: Staging table -> (the catalog table it mirrors, the macro that reads both).
_STAGING = {
    "mallard_span_rows": ("mallard.statistics_spans", "validation_spans"),
    "mallard_span_columns": ("mallard.statistics_columns", "validation_partials"),
    "mallard_span_values": ("mallard.statistics_values", "validation_partial_values"),
}
_DEPTH = "validation_staging_depth"


def statistics_exists(session: Session, name: str) -> bool:
    return bool(session.scalar("SELECT count(*) FROM mallard.statistics WHERE name = ?", [name]))


def require_statistics(session: Session, name: str) -> None:
    if not statistics_exists(session, name):
        known = [r[0] for r in session.sql("SELECT name FROM mallard.statistics ORDER BY name").fetchall()]
        listing = ", ".join(known) if known else "none yet (COMPUTE STATISTICS FOR <table> makes one)"
        raise ProgrammingError(f"expected statistics named {name!r}; known statistics: {listing}")


def stored_columns(session: Session, name: str) -> dict[str, str]:
    """Column name -> kind of a stored set (from its first span)."""
    rows = session.sql(
        "SELECT column_name, kind FROM mallard.statistics_columns WHERE statistics = ? AND span = 1"
        " ORDER BY position", [name]).fetchall()
    return dict(rows)


def next_span(session: Session, name: str) -> int:
    return session.scalar("SELECT coalesce(max(span), 0) + 1 FROM mallard.statistics_spans WHERE statistics = ?",
                       [name])


def delete_statistics(session: Session, name: str) -> None:
    for table in ("statistics_values", "statistics_columns", "statistics_spans"):
        session.sql(f"DELETE FROM mallard.{table} WHERE statistics = ?", [name])
    session.sql("DELETE FROM mallard.statistics WHERE name = ?", [name])


def create_statistics(session: Session, name: str, sketch_accuracy: float, max_values: int) -> None:
    session.sql("INSERT INTO mallard.statistics (name, sketch_accuracy, max_values) VALUES (?, ?, ?)",
                [name, sketch_accuracy, max_values])


def save_span(session: Session, key: str, name: str, span: int) -> None:
    """Copy the span staged under ``key`` into set ``name`` as span number ``span``."""
    session.sql("INSERT INTO mallard.statistics_spans SELECT * REPLACE (? AS statistics, ? AS span)"
                " FROM mallard_span_rows WHERE statistics = ?", [name, span, key])
    session.sql("INSERT INTO mallard.statistics_columns SELECT * REPLACE (? AS statistics, ? AS span)"
                " FROM mallard_span_columns WHERE statistics = ?", [name, span, key])
    session.sql("INSERT INTO mallard.statistics_values SELECT * REPLACE (? AS statistics, ? AS span)"
                " FROM mallard_span_values WHERE statistics = ?", [name, span, key])
    session.sql("UPDATE mallard.statistics SET updated_at = current_timestamp WHERE name = ?", [name])


@contextmanager
def staged(session: Session) -> Iterator[str]:
    """A fresh staging key for statistics computed but not stored.

    The staging tables are temp tables that live only while some statement stages into them
    (so they never show in SHOW TABLES); rows staged under the key are discarded at the end.
    """
    key = f"__staged_{uuid.uuid4().hex}"
    depth = session.state.get(_DEPTH, 0)
    if depth == 0:
        _open_staging(session)
    session.state[_DEPTH] = depth + 1
    try:
        yield key
    finally:
        session.state[_DEPTH] -= 1
        try:
            for table in _STAGING:
                session.sql(f"DELETE FROM {table} WHERE statistics = ?", [key])
            if session.state[_DEPTH] == 0:
                _close_staging(session)
        except Error:
            pass  # the failed statement's transaction is aborted; its rollback undoes the staging


def _open_staging(session: Session) -> None:
    for table, (stored, macro) in _STAGING.items():
        session.sql(f"CREATE TEMP TABLE IF NOT EXISTS {table} AS SELECT * FROM {stored} LIMIT 0")
        session.sql(_partial_macro(macro, stored, table))


def _close_staging(session: Session) -> None:
    for table, (stored, macro) in _STAGING.items():
        session.sql(_partial_macro(macro, stored, None))
        session.sql(f"DROP TABLE IF EXISTS {table}")


def _partial_macro(macro: str, stored: str, staging: str | None) -> str:
    """The macro reading a set's partial rows: stored ones, and staged ones while staging is open."""
    union = f" UNION ALL SELECT * FROM {staging} WHERE statistics = stats_name" if staging else ""
    return (f"CREATE OR REPLACE TEMP MACRO {macro}(stats_name) AS TABLE"
            f" SELECT * FROM {stored} WHERE statistics = stats_name{union}")
