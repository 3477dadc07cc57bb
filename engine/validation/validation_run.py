"""One validation: lay out the relations the checks read (temp tables, dropped at the end), run
every check as one SQL query (a UNION ALL of :data:`engine.validation.checks.CHECKS`), and hand
back the anomalies in order, as Arrow rows.

Nothing crosses from Python but parameters: the schema's columns come from its stored JSON
(``validation_schema(name, version)``), each threshold resolved against the session's settings.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine.validation.checks import CHECKS
from engine.validation.schema import Schema

if TYPE_CHECKING:
    from engine.session import Session

#: The columns of an anomaly row and their types.
ANOMALY_COLUMNS = (("column_name", "VARCHAR"), ("anomaly", "VARCHAR"), ("severity", "VARCHAR"),
                   ("description", "VARCHAR"), ("measured", "DOUBLE"), ("threshold", "DOUBLE"), ("source", "VARCHAR"))


@dataclass(frozen=True)
class References:
    """Statistics keys of the data validated and of what it is compared with."""

    current: str
    previous: str | None = None
    training: str | None = None


@dataclass(frozen=True)
class SchemaVersion:
    """A stored schema version and its dataset-level constraints."""

    name: str
    version: int
    schema: Schema


def find_anomalies(session: Session, target: SchemaVersion, refs: References, environment: str | None) -> pa.Table:
    """The anomalies of ``refs.current`` against ``target``, in order (ANOMALY_COLUMNS), as
    DuckDB computed them (read once as Arrow: no row crosses into Python objects)."""
    names = [name for name, _ in ANOMALY_COLUMNS]
    with _relations(session, target, refs, environment):
        checks = [c.sql for c in CHECKS if c.needs is None or getattr(refs, c.needs) is not None]
        union = "\nUNION ALL\n".join(f"({sql.strip()})" for sql in checks)
        typed = ", ".join(f"CAST(a.{name} AS {sql_type}) AS {name}" for name, sql_type in ANOMALY_COLUMNS)
        return session.relation(
            f"SELECT {typed} FROM ({union}) AS a({', '.join(names)})"
            " LEFT JOIN mallard_v_order o ON o.key = lower(a.column_name)"
            " ORDER BY a.column_name IS NOT NULL, o.position, a.anomaly, a.description").to_arrow_table()


@contextmanager
def _relations(session: Session, target: SchemaVersion, refs: References, environment: str | None) -> Iterator[None]:
    created: list[str] = []

    def temp(name: str, sql: str, params: list[Any] | None = None) -> None:
        session.sql(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params)
        created.append(name)

    settings = session.settings
    schema = target.schema
    try:
        temp("mallard_v_schema", _SCHEMA_SQL, [
            environment, settings["validation_format_threshold"], settings["validation_shift_threshold"],
            refs.previous is not None, refs.training is not None, settings["validation_missing_rise_threshold"],
            target.name, target.version])
        _statistics_relation(temp, "current", refs.current)
        temp("mallard_v_current_values", "SELECT * FROM validation_values(?)", [refs.current])
        temp("mallard_v_columns", _COLUMNS_SQL)
        temp("mallard_v_order", "SELECT key, position FROM mallard_v_schema UNION ALL "
             "SELECT key, 100000 + position FROM mallard_v_current WHERE key NOT IN (SELECT key FROM mallard_v_schema)")
        for role in ("previous", "training"):
            key = getattr(refs, role)
            if key is not None:
                _statistics_relation(temp, role, key)
                temp(f"mallard_v_{role}_distances", "SELECT * FROM validation_category_distances(?, ?)",
                     [refs.current, key])
        temp("mallard_v_dataset", _DATASET_SQL, [
            refs.previous, schema.min_examples_count, schema.max_examples_count,
            schema.num_examples_drift_min_fraction, schema.num_examples_drift_max_fraction,
            _or(schema.max_duplicate_fraction, settings["validation_duplicate_threshold"]), refs.current])
        yield
    finally:
        for name in reversed(created):
            session.sql(f"DROP TABLE IF EXISTS {name}")


def _statistics_relation(temp: Any, role: str, key: str) -> None:
    temp(f"mallard_v_{role}", "SELECT *, lower(column_name) AS key FROM validation_statistics(?)", [key])


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


# $1 environment, $2..$6 default thresholds and which references exist, $7 $8 the schema version.
_SCHEMA_SQL = """
SELECT lower(column_name) AS key, column_name, position, type,
       NOT deprecated AND ($1::VARCHAR IS NULL OR ((len(in_environment) = 0 OR list_contains(in_environment, $1))
                                                   AND NOT list_contains(not_in_environment, $1))) AS expected,
       min_fraction, min_count, domain, coalesce(min_domain_mass, 1.0) AS min_domain_mass, min, max,
       disallow_nan, disallow_inf, unique_min, unique_max, patterns,
       coalesce(max_off_pattern_fraction, $2) AS max_off_pattern_fraction,
       drift_l_infinity, skew_l_infinity, drift_normalized_abs_difference, skew_normalized_abs_difference,
       drift_jensen_shannon_divergence, skew_jensen_shannon_divergence,
       coalesce(jensen_shannon_histogram, 'STANDARD') AS jensen_shannon_histogram,
       coalesce(shift_threshold, $3) AS shift_threshold,
       (drift_jensen_shannon_divergence IS NOT NULL AND $4) OR (skew_jensen_shannon_divergence IS NOT NULL AND $5)
           AS shift_covered,
       coalesce(missing_rise_threshold, $6) AS missing_rise_threshold,
       baseline_missing_fraction, baseline_count, baseline_mean, baseline_quantiles, baseline_cuts, baseline_masses,
       inferred_range, $7::VARCHAR AS schema_name
FROM validation_schema($7, $8)
"""

_COLUMNS_SQL = """
SELECT s.*, c.column_name AS data_name, c.type AS data_type, c.sql_type, c.count, c.present, c.missing,
       c.missing_fraction, c.nan_count, c.inf_count, c.min AS data_min, c.max AS data_max, c.mean, c.median,
       c.distinct_count, c.unstored_count, c.histogram, c.quantile_histogram, c.sketch,
       (c.present = 0 OR s.type = c.type OR (s.type = 'FLOAT' AND c.type = 'INT')) AS type_ok
FROM mallard_v_schema s JOIN mallard_v_current c USING (key)
WHERE s.expected
"""

# $1 the previous statistics (or NULL), $2..$6 dataset constraints, $7 the current statistics.
_DATASET_SQL = """
SELECT sum(row_count)::BIGINT AS row_count, sum(duplicate_rows)::BIGINT AS duplicate_rows,
       (SELECT sum(row_count) FROM validation_spans($1))::BIGINT AS previous_row_count,
       $2::BIGINT AS min_examples_count, $3::BIGINT AS max_examples_count,
       $4::DOUBLE AS drift_min_fraction, $5::DOUBLE AS drift_max_fraction, $6::DOUBLE AS max_duplicate_fraction
FROM validation_spans($7)
"""
