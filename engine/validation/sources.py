"""Where statistics come from: a stored set by that name, else a table scanned now.

``INFER SCHEMA ... FROM x``, ``UPDATE SCHEMA ... FROM x`` and VALIDATE's ``previous = x`` /
``training = x`` name either stored statistics (``COMPUTE STATISTICS ... AS x``) or a table
or view; stored statistics win, so a span computed once is never rescanned.  A table is
scanned into the connection's staging area and its statistics are dropped afterwards.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp

from engine.errors import ProgrammingError
from engine.system_catalog import catalog_name
from engine.validation.span_statistics import scan_span
from engine.validation.statistics_store import staged, statistics_exists

if TYPE_CHECKING:
    from engine.session import Session


@dataclass(frozen=True)
class StatisticsRef:
    """Statistics ready to read with ``validation_statistics(key)``."""

    key: str      # the stored set's name, or the staging key
    label: str    # what users call it: the set or table name
    stored: bool  # a stored set (True) or a table scanned for this statement (False)


def check_source(session: Session, source: exp.Table, role: str) -> None:
    """Fail before any work when ``source`` is neither stored statistics nor a table."""
    if _stored_name(session, source) is None and not session.table_exists(source):
        raise ProgrammingError(
            f"{role}: expected stored statistics or a table named {source.sql('duckdb')}, found neither")


@contextmanager
def statistics_of(session: Session, source: exp.Table, role: str) -> Iterator[StatisticsRef]:
    """Statistics of ``source``: the stored set of that name, else a fresh scan of the table."""
    stored = _stored_name(session, source)
    if stored is not None:
        yield StatisticsRef(stored, stored, True)
        return
    check_source(session, source, role)
    with table_statistics(session, source) as ref:
        yield ref


@contextmanager
def table_statistics(session: Session, table: exp.Table) -> Iterator[StatisticsRef]:
    """Statistics of a table scanned now (staged, dropped at the end)."""
    with staged(session) as key:
        scan_span(session, table, key, session.settings["validation_max_values"])
        yield StatisticsRef(key, catalog_name(table), False)


def _stored_name(session: Session, source: exp.Table) -> str | None:
    if source.args.get("db") or source.args.get("catalog"):
        return None
    name = catalog_name(source)
    return name if statistics_exists(session, name) else None
