"""A data schema as a table, one row per column: what SHOW SCHEMA and INFER SCHEMA return.

>>> from engine.validation.schema import ColumnSchema, Schema
>>> table = schema_rows(Schema(columns=[ColumnSchema(name="month", type="INT", min=1, max=12)]))
>>> table.select(["column_name", "type", "min", "max"]).to_pylist()
[{'column_name': 'month', 'type': 'INT', 'min': 1.0, 'max': 12.0}]
"""
from __future__ import annotations

import pyarrow as pa

from engine.validation.schema import ColumnSchema, Schema

SCHEMA_ROWS = pa.schema([
    ("column_name", pa.string()), ("type", pa.string()), ("sql_type", pa.string()),
    ("min_fraction", pa.float64()), ("min_count", pa.int64()),
    ("domain", pa.list_(pa.string())), ("min_domain_mass", pa.float64()),
    ("min", pa.float64()), ("max", pa.float64()), ("disallow_nan", pa.bool_()), ("disallow_inf", pa.bool_()),
    ("unique_min", pa.int64()), ("unique_max", pa.int64()),
    ("patterns", pa.list_(pa.string())), ("max_off_pattern_fraction", pa.float64()),
    ("in_environment", pa.list_(pa.string())), ("not_in_environment", pa.list_(pa.string())),
    ("drift_comparator", pa.string()), ("skew_comparator", pa.string()),
    ("shift_threshold", pa.float64()), ("missing_rise_threshold", pa.float64()), ("deprecated", pa.bool_()),
])

_COMPARATORS = ("l_infinity", "normalized_abs_difference", "jensen_shannon_divergence")


def comparator_text(column: ColumnSchema, prefix: str) -> str | None:
    """E.g. ``'l_infinity <= 0.1'`` for a column with ``drift_l_infinity = 0.1``."""
    parts = [f"{name} <= {getattr(column, f'{prefix}_{name}'):g}" for name in _COMPARATORS
             if getattr(column, f"{prefix}_{name}") is not None]
    if column.jensen_shannon_histogram and getattr(column, f"{prefix}_jensen_shannon_divergence") is not None:
        parts[-1] += f" ({column.jensen_shannon_histogram.lower()} histograms)"
    return ", ".join(parts) or None


def schema_rows(schema: Schema) -> pa.Table:
    rows = []
    for c in schema.columns:
        rows.append({
            "column_name": c.name, "type": c.type, "sql_type": c.sql_type,
            "min_fraction": c.min_fraction, "min_count": c.min_count,
            "domain": c.domain, "min_domain_mass": c.min_domain_mass if c.domain is not None else None,
            "min": c.min, "max": c.max, "disallow_nan": c.disallow_nan, "disallow_inf": c.disallow_inf,
            "unique_min": c.unique_min, "unique_max": c.unique_max,
            "patterns": c.patterns, "max_off_pattern_fraction": c.max_off_pattern_fraction,
            "in_environment": c.in_environment, "not_in_environment": c.not_in_environment,
            "drift_comparator": comparator_text(c, "drift"), "skew_comparator": comparator_text(c, "skew"),
            "shift_threshold": c.shift_threshold, "missing_rise_threshold": c.missing_rise_threshold,
            "deprecated": c.deprecated,
        })
    return pa.Table.from_pylist(rows, schema=SCHEMA_ROWS)
