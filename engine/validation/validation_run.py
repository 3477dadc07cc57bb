"""One validation: lay out the relations the checks read, run every check as one SQL query
(a UNION ALL of :data:`engine.validation.checks.CHECKS`), and hand back the anomaly rows.

The schema is the only thing that crosses from Python, as a small Arrow table of its columns
with each threshold resolved (the column's own value, else the session's setting).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import duckdb
import pyarrow as pa

from engine.errors import translate

from engine.validation.checks import CHECKS
from engine.validation.schema import ColumnSchema, Schema

ANOMALY_COLUMNS = ("column_name", "anomaly", "severity", "description", "measured", "threshold", "source")
ANOMALY_SCHEMA = pa.schema([
    ("column_name", pa.string()), ("anomaly", pa.string()), ("severity", pa.string()),
    ("description", pa.string()), ("measured", pa.float64()), ("threshold", pa.float64()), ("source", pa.string()),
])

_SCHEMA_FIELDS = pa.schema([
    ("key", pa.string()), ("column_name", pa.string()), ("position", pa.int64()), ("type", pa.string()),
    ("expected", pa.bool_()), ("min_fraction", pa.float64()), ("min_count", pa.int64()),
    ("domain", pa.list_(pa.string())), ("min_domain_mass", pa.float64()), ("min", pa.float64()),
    ("max", pa.float64()), ("disallow_nan", pa.bool_()), ("disallow_inf", pa.bool_()),
    ("unique_min", pa.int64()), ("unique_max", pa.int64()), ("patterns", pa.list_(pa.string())),
    ("max_off_pattern_fraction", pa.float64()),
    ("drift_l_infinity", pa.float64()), ("skew_l_infinity", pa.float64()),
    ("drift_normalized_abs_difference", pa.float64()), ("skew_normalized_abs_difference", pa.float64()),
    ("drift_jensen_shannon_divergence", pa.float64()), ("skew_jensen_shannon_divergence", pa.float64()),
    ("jensen_shannon_histogram", pa.string()),
    ("shift_threshold", pa.float64()), ("shift_covered", pa.bool_()), ("missing_rise_threshold", pa.float64()),
    ("baseline_missing_fraction", pa.float64()), ("baseline_count", pa.float64()), ("baseline_mean", pa.float64()),
    ("baseline_quantiles", pa.list_(pa.float64())), ("baseline_cuts", pa.list_(pa.float64())),
    ("baseline_masses", pa.list_(pa.float64())),
])


@dataclass(frozen=True)
class References:
    """Statistics keys of the data validated and of what it is compared with."""

    current: str
    previous: str | None = None
    training: str | None = None


def find_anomalies(session: Any, schema: Schema, refs: References, environment: str | None) -> pa.Table:
    """The anomalies of ``refs.current`` against ``schema`` as an Arrow table (ANOMALY_COLUMNS)."""
    with _relations(session, schema, refs, environment):
        checks = [c.sql for c in CHECKS if c.needs is None or getattr(refs, c.needs) is not None]
        union = "\nUNION ALL\n".join(f"({sql.strip()})" for sql in checks)
        query = (
            f"SELECT a.* FROM ({union}) AS a({', '.join(ANOMALY_COLUMNS)})"
            " LEFT JOIN mallard_v_order o ON o.key = lower(a.column_name)"
            " ORDER BY a.column_name IS NOT NULL, o.position, a.anomaly, a.description"
        )
        table = _arrow(session, query)
    return table.cast(ANOMALY_SCHEMA)


@contextmanager
def _relations(session: Any, schema: Schema, refs: References, environment: str | None) -> Iterator[None]:
    created: list[str] = []

    def temp(name: str, sql: str, params: list[Any] | None = None) -> None:
        session.sql(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params)
        created.append(name)

    settings = session.settings
    session.register("mallard_v_schema_arrow", _schema_table(schema, environment, refs, settings))
    try:
        temp("mallard_v_schema", "SELECT * FROM mallard_v_schema_arrow")
        _statistics_relations(temp, "current", refs.current)
        temp("mallard_v_current_values", "SELECT * FROM validation_values(?)", [refs.current])
        temp("mallard_v_columns", _COLUMNS_SQL)
        temp("mallard_v_order", "SELECT key, position FROM mallard_v_schema UNION ALL "
             "SELECT key, 100000 + position FROM mallard_v_current WHERE key NOT IN (SELECT key FROM mallard_v_schema)")
        previous_rows = None
        for role in ("previous", "training"):
            key = getattr(refs, role)
            if key is not None:
                _statistics_relations(temp, role, key)
                temp(f"mallard_v_{role}_distances", "SELECT * FROM validation_category_distances(?, ?)",
                     [refs.current, key])
        if refs.previous is not None:
            previous_rows = session.sql("SELECT sum(row_count) FROM validation_spans(?)", [refs.previous]).fetchone()[0]
        temp("mallard_v_dataset",
             "SELECT sum(row_count)::BIGINT AS row_count, sum(duplicate_rows)::BIGINT AS duplicate_rows,"
             " ?::BIGINT AS previous_row_count, ?::BIGINT AS min_examples_count, ?::BIGINT AS max_examples_count,"
             " ?::DOUBLE AS drift_min_fraction, ?::DOUBLE AS drift_max_fraction, ?::DOUBLE AS max_duplicate_fraction"
             " FROM validation_spans(?)",
             [previous_rows, schema.min_examples_count, schema.max_examples_count,
              schema.num_examples_drift_min_fraction, schema.num_examples_drift_max_fraction,
              _or(schema.max_duplicate_fraction, settings["validation_duplicate_threshold"]), refs.current])
        yield
    finally:
        for name in reversed(created):
            session.sql(f"DROP TABLE IF EXISTS {name}")
        session.unregister("mallard_v_schema_arrow")


def _arrow(session: Any, query: str) -> pa.Table:
    session.quiesce()
    try:
        return session.duck.sql(query).to_arrow_table()
    except duckdb.Error as e:
        raise translate(e) from e


def _statistics_relations(temp: Any, role: str, key: str) -> None:
    temp(f"mallard_v_{role}", "SELECT *, lower(column_name) AS key FROM validation_statistics(?)", [key])


_COLUMNS_SQL = """
SELECT s.*, c.column_name AS data_name, c.type AS data_type, c.sql_type, c.count, c.present, c.missing,
       c.missing_fraction, c.nan_count, c.inf_count, c.min AS data_min, c.max AS data_max, c.mean, c.median,
       c.distinct_count, c.unstored_count, c.histogram, c.quantile_histogram, c.sketch,
       (c.present = 0 OR s.type = c.type OR (s.type = 'FLOAT' AND c.type = 'INT')) AS type_ok
FROM mallard_v_schema s JOIN mallard_v_current c USING (key)
WHERE s.expected
"""


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _schema_table(schema: Schema, environment: str | None, refs: References, settings: Any) -> pa.Table:
    rows = [_schema_row(c, i, environment, refs, settings) for i, c in enumerate(schema.columns)]
    return pa.Table.from_pylist(rows, schema=_SCHEMA_FIELDS)


def _schema_row(c: ColumnSchema, position: int, environment: str | None, refs: References, settings: Any) -> dict[str, Any]:
    baseline = c.baseline or {}
    covered = (c.drift_jensen_shannon_divergence is not None and refs.previous is not None) or \
              (c.skew_jensen_shannon_divergence is not None and refs.training is not None)
    return {
        "key": c.name.lower(), "column_name": c.name, "position": position, "type": c.type,
        "expected": c.expected_in(environment), "min_fraction": c.min_fraction, "min_count": c.min_count,
        "domain": c.domain, "min_domain_mass": c.min_domain_mass, "min": c.min, "max": c.max,
        "disallow_nan": c.disallow_nan, "disallow_inf": c.disallow_inf,
        "unique_min": c.unique_min, "unique_max": c.unique_max, "patterns": c.patterns,
        "max_off_pattern_fraction": _or(c.max_off_pattern_fraction, settings["validation_format_threshold"]),
        "drift_l_infinity": c.drift_l_infinity, "skew_l_infinity": c.skew_l_infinity,
        "drift_normalized_abs_difference": c.drift_normalized_abs_difference,
        "skew_normalized_abs_difference": c.skew_normalized_abs_difference,
        "drift_jensen_shannon_divergence": c.drift_jensen_shannon_divergence,
        "skew_jensen_shannon_divergence": c.skew_jensen_shannon_divergence,
        "jensen_shannon_histogram": c.jensen_shannon_histogram or "STANDARD",
        "shift_threshold": _or(c.shift_threshold, settings["validation_shift_threshold"]),
        "shift_covered": covered,
        "missing_rise_threshold": _or(c.missing_rise_threshold, settings["validation_missing_rise_threshold"]),
        "baseline_missing_fraction": baseline.get("missing_fraction"),
        "baseline_count": baseline.get("count"),
        "baseline_mean": baseline.get("mean"),
        "baseline_quantiles": baseline.get("quantiles"),
        "baseline_cuts": baseline.get("decile_cuts"),
        "baseline_masses": baseline.get("decile_masses"),
    }
