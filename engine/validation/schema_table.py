"""A data schema as a table, one row per column: what SHOW SCHEMA and INFER SCHEMA return.

The rows come from the ``validation_schema(name, version)`` table macro, which reads the
schema's JSON document in ``mallard.schemas`` with DuckDB's ``json_transform``; so a schema is
readable from plain SQL too: ``SELECT * FROM validation_schema('flights_schema', NULL)``.

>>> schema_query()[:40]
'SELECT column_name, type, sql_type, min_'
"""
from __future__ import annotations

#: The columns SHOW SCHEMA returns, in order (validation_schema also has thresholds and baselines).
SCHEMA_COLUMNS = (
    "column_name", "type", "sql_type", "min_fraction", "min_count", "domain", "min_domain_mass", "min", "max",
    "disallow_nan", "disallow_inf", "unique_min", "unique_max", "patterns", "max_off_pattern_fraction",
    "in_environment", "not_in_environment", "drift_comparator", "skew_comparator", "shift_threshold",
    "missing_rise_threshold", "deprecated",
)


def schema_query() -> str:
    """SQL returning one schema version's rows; parameters: the schema name and version."""
    return f"SELECT {', '.join(SCHEMA_COLUMNS)} FROM validation_schema(?, ?)"
