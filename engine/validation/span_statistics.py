"""One span's partial statistics, computed by SQL in three scans and staged in temp tables.

Scan 1 is one aggregate query over every column: counts and, for floats, times and booleans,
NaN/infinity/zero counts, mean, variance, min and max.  Scan 2 counts the span's duplicate rows
(``count(*)`` minus the distinct 64-bit hashes of whole rows).  Scan 3 is one ``GROUP BY
GROUPING SETS`` over every string column's values, every integer column's values and every
other number's DDSketch bin (``sketch_key(x)``, relative accuracy 1%): from its counts SQL
derives the integers' exact mean, variance, min, max and zeros, the numeric sketches (bin ->
count), distinct counts, lengths, the most frequent values, value shapes and a KMV sketch of
distinct hashes.
DuckDB streams all three, so a table larger than memory is fine.  (Three scans rather than
one: a DISTINCT aggregate, or a histogram() aggregate, next to the others made DuckDB hold
about 1 GB at 5M rows; apart, each stays near 200 MB.)

Every partial merges across spans (see ``sql/003_validation.sql``), so adding a span never
rescans earlier ones.  Staged rows live in ``mallard_span_*`` (temp tables, per connection)
under a caller-chosen key until :mod:`engine.validation.statistics_store` saves or discards them.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp

from engine.errors import ProgrammingError
from engine.system_catalog import catalog_name
from engine.validation.column_kinds import CATEGORICAL_KINDS, NUMERIC_KINDS, category_value, column_kind, numeric_value
from engine.validation.sql_templates import fill, struct

if TYPE_CHECKING:
    from engine.session import Session

#: Hashes kept per column and span by the KMV distinct-count sketch.
KMV_SIZE = 1024
#: Value shapes (patterns) kept per column and span.
MAX_PATTERNS = 100


@dataclass(frozen=True)
class SourceColumn:
    """A column of the scanned table, as statistics see it."""

    name: str
    position: int
    sql_type: str
    kind: str

    @property
    def ref(self) -> exp.Column:
        return exp.column(self.name, quoted=True)


def describe_source(session: Session, source: exp.Table) -> list[SourceColumn]:
    """The columns of a table or view (ProgrammingError naming it when there is none)."""
    if not session.table_exists(source):
        raise ProgrammingError(f"expected a table or view named {source.sql('duckdb')}, found none")
    cursor = session.sql(exp.select("*").from_(source.copy()).limit(0))
    columns = [SourceColumn(d[0], i, str(d[1]), column_kind(str(d[1]))) for i, d in enumerate(cursor.description)]
    cursor.fetchall()
    if not columns:
        raise ProgrammingError(f"table {source.sql('duckdb')} has no columns to compute statistics of")
    return columns


#: Relative accuracy of the numeric sketches (DDSketch's alpha; the macros' gamma is 1.01 / 0.99).
SKETCH_ACCURACY = 0.01


@dataclass(frozen=True)
class StagedSpan:
    """A span staged by :func:`stage_span`: its columns, and how a cluster computed it ('' here)."""

    columns: list[SourceColumn]
    cluster: str = ""


def scan_span(session: Session, source: exp.Table, key: str, max_values: int) -> list[SourceColumn]:
    """Stage the partial statistics of ``source`` under ``key`` (span 0); return its columns."""
    return stage_span(session, source, key, max_values).columns


def stage_span(session: Session, source: exp.Table, key: str, max_values: int) -> StagedSpan:
    """Stage the partial statistics of ``source`` under ``key`` (span 0).

    With a cluster set, partitions of the rows are summarized in Ray tasks and merged here
    (:mod:`engine.cluster.statistics`); the staged rows are the same."""
    from engine.cluster.statistics import cluster_span

    columns = describe_source(session, source)
    cluster = cluster_span(session, source, key, columns, max_values)
    if cluster is not None:
        return StagedSpan(columns, cluster.summary())
    started = time.perf_counter()
    with session.progress(3, f"statistics of {source.sql('duckdb')}", unit="scan") as bar:
        _aggregate_scan(session, source, key, columns)
        bar.update(1)
        _duplicate_scan(session, source, key, columns)
        bar.update(1)
        _count_scan(session, source, key, columns, max_values)
        bar.update(1)
    session.sql("UPDATE mallard_span_rows SET seconds = ? WHERE statistics = ?",
                [time.perf_counter() - started, key])
    return StagedSpan(columns)


# Scan 1: one aggregate row ----------------------------------------------------------------
def aggregate_query(source: exp.Table, columns: list[SourceColumn]) -> exp.Select:
    """Scan 1: one row ``(row_count, columns)``, ``columns`` a list of each column's partial struct."""
    return exp.select(
        exp.alias_(exp.Count(this=exp.Star()), "row_count"),
        exp.alias_(exp.Array(expressions=[_column_partial(c) for c in columns]), "columns"),
    ).from_(source.copy())


def _aggregate_scan(session: Session, source: exp.Table, key: str, columns: list[SourceColumn]) -> None:
    query = aggregate_query(source, columns)
    session.sql(exp.Create(this=exp.to_table("mallard_span_aggregate"), kind="TABLE", replace=True,
                           expression=query, properties=exp.Properties(expressions=[exp.TemporaryProperty()])))
    session.sql(
        "INSERT INTO mallard_span_rows SELECT ?, 0, ?, row_count, 0, current_timestamp, NULL"
        " FROM mallard_span_aggregate", [key, catalog_name(source)])
    session.sql(
        "INSERT INTO mallard_span_columns BY NAME SELECT ? AS statistics, 0 AS span, unnest(columns, recursive := true)"
        " FROM mallard_span_aggregate", [key])
    session.sql("DROP TABLE mallard_span_aggregate")


def row_hash(columns: list[SourceColumn]) -> exp.Expr:
    """The 64-bit hash of a whole row (scan 2 counts its distinct values)."""
    return exp.func("hash", *[c.ref for c in columns])


def _duplicate_scan(session: Session, source: exp.Table, key: str, columns: list[SourceColumn]) -> None:
    everything = row_hash(columns)
    count = exp.select(exp.Sub(this=exp.Count(this=exp.Star()),
                               expression=exp.Count(this=exp.Distinct(expressions=[everything])))).from_(source.copy())
    duplicates = session.scalar(count)
    session.sql("UPDATE mallard_span_rows SET duplicate_rows = ? WHERE statistics = ?", [duplicates, key])


_NULL_INT = exp.cast(exp.null(), "BIGINT")
_NULL_DOUBLE = exp.cast(exp.null(), "DOUBLE")


def _column_partial(column: SourceColumn) -> exp.Struct:
    fields: dict[str, exp.Expr] = {
        "column_name": exp.Literal.string(column.name),
        "position": exp.Literal.number(column.position),
        "sql_type": exp.Literal.string(column.sql_type),
        "kind": exp.Literal.string(column.kind),
        "present": fill("count(_c)", _c=column.ref),
    }
    if counted_integers(column):
        fields.update(_integer_placeholders())
    elif column.kind in NUMERIC_KINDS:
        fields.update(_numeric_partial(column))
    else:
        fields.update({
            "finite": _NULL_INT, "nan_count": _NULL_INT, "inf_count": _NULL_INT, "zeros": _NULL_INT,
            "mean": _NULL_DOUBLE, "m2": _NULL_DOUBLE, "min": _NULL_DOUBLE, "max": _NULL_DOUBLE,
            "bins": exp.cast(exp.null(), _BINS, dialect="duckdb"),
        })
    categorical = column.kind in CATEGORICAL_KINDS
    zero = exp.cast(exp.Literal.number(0), "BIGINT")
    fields["distinct_count"] = zero if categorical else _NULL_INT
    fields["length_sum"] = zero if column.kind == "STRING" else _NULL_INT
    fields["unstored_count"] = zero if categorical else _NULL_INT
    fields["distinct_hashes"] = exp.cast(exp.Array(expressions=[]) if categorical else exp.null(), "UBIGINT[]", dialect="duckdb")
    return struct(fields)


_BINS = "MAP(INTEGER, BIGINT)"


#: Integer types whose values fit a BIGINT.
_SMALL_INT = re.compile(r"^(U?(TINYINT|SMALLINT|INTEGER)|BIGINT|INT\d*)$")


def counted_integers(column: SourceColumn) -> bool:
    """Integer columns are summarized from scan 3's exact value counts, not aggregated in scan 1."""
    return column.kind == "INT" and bool(_SMALL_INT.match(column.sql_type.upper()))


def _integer_placeholders() -> dict[str, exp.Expr]:
    zero = exp.cast(exp.Literal.number(0), "BIGINT")
    return {"finite": zero, "nan_count": zero, "inf_count": zero, "zeros": zero, "mean": _NULL_DOUBLE,
            "m2": _NULL_DOUBLE, "min": _NULL_DOUBLE, "max": _NULL_DOUBLE,
            "bins": exp.cast(exp.null(), _BINS, dialect="duckdb")}


def _numeric_partial(column: SourceColumn) -> dict[str, exp.Expr]:
    # integers aggregate as they are (no casts per row); other kinds as DOUBLE, floats finite only
    x = column.ref if column.kind == "INT" else numeric_value(column.ref, column.kind)
    is_float = column.kind == "FLOAT"
    finite = "FILTER (WHERE isfinite(_x))" if is_float else ""

    def aggregate(template: str) -> exp.Expr:
        return fill(template.replace("{finite}", finite), _x=x)

    def as_double(template: str) -> exp.Expr:
        return exp.cast(aggregate(template), "DOUBLE")

    zero = exp.cast(exp.Literal.number(0), "BIGINT")
    return {
        "finite": aggregate("count(_x) {finite}"),
        "nan_count": aggregate("count(*) FILTER (WHERE isnan(_x))") if is_float else zero,
        "inf_count": aggregate("count(*) FILTER (WHERE isinf(_x))") if is_float else zero,
        "zeros": aggregate("count(*) FILTER (WHERE _x = 0)"),
        "mean": as_double("avg(_x) {finite}"),
        "m2": as_double("var_pop(_x) {finite} * count(_x) {finite}"),
        "min": as_double("min(_x) {finite}"),
        "max": as_double("max(_x) {finite}"),
        "bins": exp.cast(exp.null(), _BINS, dialect="duckdb"),  # filled by scan 3
    }


# Scan 3: counts of string values and of number bins ----------------------------------------
def _count_scan(session: Session, source: exp.Table, key: str, columns: list[SourceColumn], max_values: int) -> None:
    query = count_query(source, columns)
    if query is None:
        return
    session.sql(exp.Create(this=exp.to_table("mallard_span_counts"), kind="TABLE", replace=True,
                           expression=query, properties=exp.Properties(expressions=[exp.TemporaryProperty()])))
    summarize_counts(session, key, max_values)


def count_query(source: exp.Table, columns: list[SourceColumn]) -> exp.Select | None:
    """Scan 3's rows ``(position, role, value, bin, number, count)``; None when nothing is counted.
    Counts of disjoint row partitions add key by key into the counts of the whole."""
    keys = _count_keys(columns)
    return _count_query(source, keys) if keys else None


def summarize_counts(session: Session, key: str, max_values: int) -> None:
    """What scan 3 derives from the counts in the temp table ``mallard_span_counts`` (dropped
    after): bins, the integers' moments, distinct counts, lengths, top values and shapes."""
    session.sql(_STORE_BINS, [key])
    session.sql(_SUMMARIZE_INTEGERS, [key])
    session.sql(_RANK_VALUES)
    session.sql(_SUMMARIZE_VALUES, [max_values, KMV_SIZE, key])
    session.sql(_STORE_VALUES, [key, key, max_values])
    session.sql(_STORE_PATTERNS, [key, key, MAX_PATTERNS])
    session.sql("DROP TABLE mallard_span_groups")
    session.sql("DROP TABLE mallard_span_counts")


def _count_query(source: exp.Table, keys: list[tuple[str, exp.Expr, int, str]]) -> exp.Select:
    """``GROUP BY GROUPING SETS ((v0), (b1), ...)`` over the keys, as rows (position, role, value, bin,
    number, count)."""
    inner = exp.select(*[exp.alias_(expression, alias) for alias, expression, _, _ in keys]).from_(source.copy())

    def pick(values: dict[str, exp.Expr], empty_type: str) -> exp.Expr:
        if not values:
            return exp.cast(exp.null(), empty_type)
        return exp.Case(ifs=[exp.If(this=exp.EQ(this=exp.func("grouping", exp.column(alias)), expression=exp.Literal.number(0)),
                                    true=value) for alias, value in values.items()])

    counts = exp.select(
        exp.alias_(pick({a: exp.Literal.number(p) for a, _, p, _ in keys}, "INTEGER"), "position"),
        exp.alias_(pick({a: exp.Literal.string(r) for a, _, _, r in keys}, "VARCHAR"), "role"),
        exp.alias_(pick({a: exp.column(a) for a, _, _, r in keys if r == "value"}, "VARCHAR"), "value"),
        exp.alias_(pick({a: exp.column(a) for a, _, _, r in keys if r == "bin"}, "INTEGER"), "bin"),
        exp.alias_(pick({a: exp.column(a) for a, _, _, r in keys if r == "number"}, "BIGINT"), "number"),
        exp.alias_(exp.Count(this=exp.Star()), "count"),
    ).from_(inner.subquery()).group_by(exp.GroupingSets(
        expressions=[exp.Tuple(expressions=[exp.column(alias)]) for alias, _, _, _ in keys]))
    return exp.select("*").from_(counts.subquery()).where(
        "(role = 'value' AND value IS NOT NULL) OR (role = 'bin' AND bin IS NOT NULL)"
        " OR (role = 'number' AND number IS NOT NULL)")


def _count_keys(columns: list[SourceColumn]) -> list[tuple[str, exp.Expr, int, str]]:
    """(alias, expression, position, role) of what scan 3 counts: string values, number bins, and
    the integers themselves (binned after counting: a logarithm per distinct value, not per row)."""
    keys = []
    for c in columns:
        if c.kind in CATEGORICAL_KINDS:
            keys.append((f"v{c.position}", category_value(c.ref), c.position, "value"))
        if counted_integers(c):
            keys.append((f"n{c.position}", exp.cast(c.ref, "BIGINT"), c.position, "number"))
        elif c.kind in NUMERIC_KINDS:
            keys.append((f"b{c.position}", _bin_key(c), c.position, "bin"))
    return keys



def _bin_key(column: SourceColumn) -> exp.Expr:
    """The sketch bin of a value: hourly for times, DDSketch's for numbers (NULL for NaN, infinity)."""
    x = numeric_value(column.ref, column.kind)
    if column.kind == "TIMESTAMP":
        return exp.func("sketch_time_key", x)
    if column.kind == "FLOAT":
        return exp.Case(ifs=[exp.If(this=exp.func("isfinite", x), true=exp.func("sketch_key", x))])
    return exp.func("sketch_key", x)


_STORE_BINS = """
UPDATE mallard_span_columns AS c
SET bins = m.bins
FROM (SELECT position, map_from_entries(list((bin, count)))::MAP(INTEGER, BIGINT) AS bins
      FROM (SELECT position, bin, count FROM mallard_span_counts WHERE role = 'bin'
            UNION ALL
            SELECT position, sketch_key(number::DOUBLE) AS bin, sum(count)::BIGINT AS count
            FROM mallard_span_counts WHERE role = 'number' GROUP BY position, sketch_key(number::DOUBLE))
      GROUP BY position) AS m
WHERE c.statistics = $1 AND c.position = m.position
"""

_SUMMARIZE_INTEGERS = """
UPDATE mallard_span_columns AS c
SET finite = s.finite, zeros = s.zeros, mean = s.mean, m2 = s.m2, min = s.min, max = s.max
FROM (SELECT n.position, sum(n.count)::BIGINT AS finite,
             coalesce(sum(n.count) FILTER (WHERE n.number = 0), 0)::BIGINT AS zeros, any_value(m.mean) AS mean,
             sum(n.count * (n.number - m.mean) ^ 2) AS m2, min(n.number)::DOUBLE AS min, max(n.number)::DOUBLE AS max
      FROM mallard_span_counts n
      JOIN (SELECT position, sum(number::DOUBLE * count) / sum(count) AS mean
            FROM mallard_span_counts WHERE role = 'number' GROUP BY position) m USING (position)
      WHERE n.role = 'number' GROUP BY n.position) AS s
WHERE c.statistics = $1 AND c.position = s.position
"""

_RANK_VALUES = """
CREATE OR REPLACE TEMP TABLE mallard_span_groups AS
SELECT position, value, count, row_number() OVER (PARTITION BY position ORDER BY count DESC, value) AS rank
FROM mallard_span_counts WHERE role = 'value'
"""

_SUMMARIZE_VALUES = """
UPDATE mallard_span_columns AS c
SET distinct_count = g.distinct_count,
    length_sum = CASE WHEN c.kind = 'STRING' THEN g.length_sum END,
    unstored_count = g.unstored_count,
    distinct_hashes = g.distinct_hashes
FROM (SELECT position, count(*) AS distinct_count, sum(length(value) * count)::BIGINT AS length_sum,
             coalesce(sum(count) FILTER (WHERE rank > $1), 0)::BIGINT AS unstored_count,
             list_sort(min(hash(value), $2)) AS distinct_hashes
      FROM mallard_span_groups GROUP BY position) AS g
WHERE c.statistics = $3 AND c.position = g.position
"""

_STORE_VALUES = """
INSERT INTO mallard_span_values
SELECT $1, 0, c.column_name, 'value', g.value, g.count
FROM mallard_span_groups g JOIN mallard_span_columns c ON c.position = g.position AND c.statistics = $2
WHERE g.rank <= $3
"""

_STORE_PATTERNS = """
INSERT INTO mallard_span_values
SELECT $1, 0, column_name, 'pattern', pattern, count FROM (
    SELECT c.column_name, value_shape(g.value) AS pattern, sum(g.count)::BIGINT AS count,
           row_number() OVER (PARTITION BY c.column_name ORDER BY sum(g.count) DESC, value_shape(g.value)) AS rank
    FROM mallard_span_groups g JOIN mallard_span_columns c ON c.position = g.position AND c.statistics = $2
    WHERE c.kind = 'STRING'
    GROUP BY c.column_name, value_shape(g.value))
WHERE rank <= $3
"""
