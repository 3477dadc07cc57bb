"""Executors of the data validation statements; the work lives in :mod:`engine.validation`.

Each validates its input before writing anything, and writes inside ``session.atomic()``.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

from engine.catalog import catalog_name
from engine.dialect.validation import ComputeStatistics, DropStatistics, ShowStatistics
from engine.errors import ProgrammingError
from engine.executors import executes
from engine.result import Result
from engine.settings import number
from engine.validation import statistics_store as store
from engine.validation.options import literal_option, object_name, read_options
from engine.validation.span_statistics import scan_span

_COMPUTE_OPTIONS = {
    "max_values": literal_option(number(100, 1_000_000, integer=True)),
    "quantile_buckets": literal_option(number(10, 1000, integer=True)),
}


@executes(ComputeStatistics)
def compute_statistics(session: Any, node: ComputeStatistics, params: Sequence[Any] | None) -> Result:
    """``COMPUTE STATISTICS FOR <table> [AS <name> | APPEND TO <name>] [WITH (max_values, quantile_buckets)]``."""
    session.require_writable("COMPUTE STATISTICS")
    table = node.this
    name = object_name(node.args.get("name")) or catalog_name(table)
    options = read_options(node, _COMPUTE_OPTIONS, "COMPUTE STATISTICS")
    append = bool(node.args.get("append"))
    if append:
        if options:
            raise ProgrammingError("COMPUTE STATISTICS ... APPEND TO takes no options: a span uses its set's sizes")
        store.require_statistics(session, name)
        points, max_values = session.sql("SELECT quantile_points, max_values FROM mallard.statistics WHERE name = ?",
                                         [name]).fetchone()
    else:
        points = options.get("quantile_buckets", session.settings["validation_quantile_buckets"]) + 1
        max_values = options.get("max_values", session.settings["validation_max_values"])
    started = time.perf_counter()
    with store.staged(session) as key:
        columns = scan_span(session, table, key, points, max_values)
        if append:
            _check_same_columns(session, name, {c.name: c.kind for c in columns}, table.sql("duckdb"))
        with session.atomic():
            if not append:
                store.delete_statistics(session, name)
                store.create_statistics(session, name, points, max_values)
            span = store.next_span(session, name)
            store.save_span(session, key, name, span)
        rows = session.sql("SELECT row_count FROM mallard.statistics_spans WHERE statistics = ? AND span = ?",
                           [name, span]).fetchone()[0]
    seconds = time.perf_counter() - started
    return Result(rowcount=rows, message=(
        f"COMPUTE STATISTICS: {rows} rows x {len(columns)} columns of {table.sql('duckdb')} as span {span} "
        f"of statistics {name} in {seconds:.2f} s"))


def _check_same_columns(session: Any, name: str, found: dict[str, str], table: str) -> None:
    expected = store.stored_columns(session, name)
    if expected == found:
        return
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    changed = [f"{c} ({expected[c]} -> {found[c]})" for c in expected if c in found and expected[c] != found[c]]
    details = "; ".join(part for part in (
        f"missing {', '.join(missing)}" if missing else "",
        f"new {', '.join(extra)}" if extra else "",
        f"changed type {', '.join(changed)}" if changed else "") if part)
    raise ProgrammingError(
        f"cannot append {table} to statistics {name}: expected the same columns and types as its spans, "
        f"found {details}; compute a new set with COMPUTE STATISTICS FOR {table} AS <name>")


_SHOWN_COLUMNS = (
    "column_name, type, sql_type, count, present, missing, missing_fraction, zeros AS num_zeros, nan_count, "
    "inf_count, mean, std_dev, min, median, max, histogram, quantile_histogram, distinct_count, avg_length, "
    "top_values, spans"
)


@executes(ShowStatistics)
def show_statistics(session: Any, node: ShowStatistics, params: Sequence[Any] | None) -> Result:
    """``SHOW STATISTICS [<name>]``: a set's merged statistics, or the list of sets."""
    if node.this is None:
        return Result(query=(
            "SELECT s.name, count(p.span) AS spans, sum(p.row_count)::BIGINT AS row_count, "
            "list(p.source ORDER BY p.span) AS sources, s.created_at, s.updated_at "
            "FROM mallard.statistics s LEFT JOIN mallard.statistics_spans p ON p.statistics = s.name "
            "GROUP BY ALL ORDER BY s.name"))
    name = object_name(node.this)
    store.require_statistics(session, name)
    return Result(query=f"SELECT {_SHOWN_COLUMNS} FROM validation_statistics(?)", params=[name])


@executes(DropStatistics)
def drop_statistics(session: Any, node: DropStatistics, params: Sequence[Any] | None) -> Result:
    """``DROP STATISTICS [IF EXISTS] <name>``."""
    session.require_writable("DROP STATISTICS")
    name = object_name(node.this)
    if not store.statistics_exists(session, name):
        if node.args.get("exists"):
            return Result(message=f"DROP STATISTICS: no statistics named {name}")
        store.require_statistics(session, name)
    with session.atomic():
        store.delete_statistics(session, name)
    return Result(message=f"DROP STATISTICS {name}")
