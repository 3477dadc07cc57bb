"""Schema inference from statistics: TFDV's rules, plus ranges and value patterns to review.

As TFDV does: the type of each column; presence (``min_fraction`` 1 for a column never
missing, else 0, and ``min_count`` 1); a string domain when a column has at most
``max_domain_size`` distinct values (100).  Beyond TFDV:

- numeric ranges: an integer column spanning at most 100 values (months, hours) gets its
  observed range; otherwise the range is widened by ``range_margin`` (0.5) of its span on
  each side, and a column never negative keeps 0 as its floor.  An inferred range is *soft*:
  data outside it is a WARNING that names the ``ALTER SCHEMA`` widening or dropping it (the
  sample the schema came from rarely shows a column's true extremes); a range set by hand
  is an ERROR;
- string domains tolerate 0.1% of values outside them (``min_domain_mass`` 0.999, TFDV's
  ``distribution_constraints``): new rare values of a real column (a new destination
  airport) pass, a corruption's many do not;
- ``disallow_nan`` / ``disallow_inf`` on float columns that had none;
- value patterns (shapes such as ``9999-99-99``) of string columns without a domain when at
  most 20 shapes cover 99.9% of the values;
- ``unique_max`` (twice the distinct values seen) on string columns that are not identifiers;
- a baseline (missing fraction; mean, std dev and deciles of numbers) that the MALLARD_*
  checks compare new data against.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.validation.column_kinds import CATEGORICAL_KINDS
from engine.validation.schema import ColumnSchema, Schema

if TYPE_CHECKING:
    from engine.session import Session

#: Integer columns spanning at most this many values get their exact observed range.
SMALL_INT_SPAN = 100
#: Shapes cover at least this fraction of values, with at most MAX_PATTERNS shapes.
PATTERN_COVERAGE = 0.999
MAX_PATTERNS = 20
#: unique_max is this many times the distinct values seen.
UNIQUE_SLACK = 2


@dataclass
class InferenceOptions:
    """The WITH options of INFER SCHEMA."""

    max_domain_size: int = 100
    infer_ranges: bool = True
    range_margin: float = 0.5
    infer_patterns: bool = True
    environments: list[str] = field(default_factory=list)
    min_domain_mass: float = 0.999


def infer_schema(session: Session, statistics: str, options: InferenceOptions) -> Schema:
    """A schema inferred from the statistics ``statistics`` (a set name or staging key)."""
    rows = statistics_rows(session, statistics)
    values = _values(session, statistics, options.max_domain_size)
    patterns = _patterns(session, statistics)
    columns = [infer_column(row, values.get(row["column_name"]), patterns.get(row["column_name"], []), options)
               for row in rows]
    row_count, duplicates = session.row(
        "SELECT sum(row_count)::BIGINT, sum(duplicate_rows)::BIGINT FROM validation_spans(?)", [statistics])
    duplicate_fraction = duplicates / row_count if row_count else 0.0
    return Schema(
        columns=columns,
        environments=list(options.environments),
        max_duplicate_fraction=_duplicate_allowance(session, duplicate_fraction),
        baseline={"row_count": row_count, "duplicate_fraction": duplicate_fraction},
    )


def statistics_rows(session: Session, statistics: str) -> list[dict[str, Any]]:
    """The merged statistics of each column, with the masses of its decile bins (a baseline)."""
    cursor = session.sql(
        "SELECT * EXCLUDE (sketch), decile_cuts(quantiles) AS decile_cuts,"
        " histogram_open_bin_masses(sketch, decile_cuts(quantiles)) AS decile_masses"
        " FROM validation_statistics(?)", [statistics])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


def _values(session: Session, statistics: str, limit: int) -> dict[str, list[str]]:
    """Column -> all its values, for categorical columns with at most ``limit`` of them."""
    rows = session.sql(
        "SELECT v.column_name, list(v.value ORDER BY v.value) FROM validation_values(?) v"
        " JOIN validation_statistics(?) s USING (column_name)"
        " WHERE v.kind = 'value' AND s.distinct_count <= ? GROUP BY ALL",
        [statistics, statistics, limit]).fetchall()
    return dict(rows)


def _patterns(session: Session, statistics: str) -> dict[str, list[tuple[str, int]]]:
    rows = session.sql(
        "SELECT column_name, list({'value': value, 'count': count} ORDER BY rank) FROM validation_values(?)"
        " WHERE kind = 'pattern' GROUP BY ALL", [statistics]).fetchall()
    return {name: [(p["value"], p["count"]) for p in shapes] for name, shapes in rows}


def infer_column(row: dict[str, Any], values: list[str] | None, patterns: list[tuple[str, int]],
                  options: InferenceOptions) -> ColumnSchema:
    kind, present, count = row["type"], row["present"] or 0, row["count"] or 0
    column = ColumnSchema(name=row["column_name"], type=kind, sql_type=row["sql_type"],
                          min_fraction=1.0 if count and present == count else 0.0,
                          min_count=1 if present else 0)
    if kind in CATEGORICAL_KINDS and values is not None and present:
        column.domain = values
        column.min_domain_mass = options.min_domain_mass
    if kind == "STRING" and present:
        distinct = row["distinct_count"] or 0
        if distinct <= present / 2:
            column.unique_max = UNIQUE_SLACK * distinct
        if column.domain is None and options.infer_patterns:
            column.patterns = _covering_patterns(patterns, present)
    if kind in ("INT", "FLOAT") and options.infer_ranges and row["min"] is not None:
        column.min, column.max = _range(kind, row["min"], row["max"], options.range_margin)
        column.inferred.append("range")
    if kind == "FLOAT":
        column.disallow_nan = not row["nan_count"]
        column.disallow_inf = not row["inf_count"]
    column.baseline = _baseline(row)
    return column


def _covering_patterns(patterns: list[tuple[str, int]], present: int) -> list[str] | None:
    covered, chosen = 0, []
    for shape, count in patterns:
        if covered >= PATTERN_COVERAGE * present:
            break
        chosen.append(shape)
        covered += count
    if covered < PATTERN_COVERAGE * present or len(chosen) > MAX_PATTERNS:
        return None
    return chosen


def _range(kind: str, low: float, high: float, margin: float) -> tuple[float, float]:
    span = high - low
    if kind == "INT" and span <= SMALL_INT_SPAN:
        return low, high
    floor = 0.0 if low >= 0 else low - margin * span
    ceiling = high + margin * span
    if not math.isfinite(floor):
        floor = low  # the margin would overflow a double: keep the observed bound
    if not math.isfinite(ceiling):
        ceiling = high
    if kind == "INT":
        return float(math.floor(floor)), float(math.ceil(ceiling))
    return floor, ceiling


def _baseline(row: dict[str, Any]) -> dict[str, Any]:
    baseline: dict[str, Any] = {"count": row["count"], "missing_fraction": row["missing_fraction"] or 0.0}
    if row["quantiles"] is not None and row["type"] in ("INT", "FLOAT", "TIMESTAMP"):
        total = sum(row["decile_masses"] or []) or 1.0
        baseline.update(mean=row["mean"], std_dev=row["std_dev"], quantiles=[float(q) for q in row["quantiles"]],
                        decile_cuts=[float(u) for u in row["decile_cuts"] or []],
                        decile_masses=[float(m) / total for m in row["decile_masses"] or []])
    return baseline


def _duplicate_allowance(session: Session, observed: float) -> float | None:
    """Keep the default threshold unless the data the schema came from already had more."""
    default = session.settings["validation_duplicate_threshold"]
    return min(1.0, 2 * observed) if observed > default else None
