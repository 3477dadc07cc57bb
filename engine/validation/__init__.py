"""Data validation inside the database: TFDV's statistics, schemas, anomalies, drift and skew,
computed by SQL (``sql/macros/validation.sql``) over mergeable per-span statistics.

Modules, one idea each: :mod:`column_kinds` (types), :mod:`span_statistics` (one span's
scans), :mod:`statistics_store` and :mod:`schema_store` (the catalog), :mod:`schema` and
:mod:`properties` (the schema model and its JSON), :mod:`inference`, :mod:`checks` (the
anomaly queries), :mod:`validation_run`, :mod:`evolution` (ALTER and UPDATE), :mod:`json_io`.
"""
from __future__ import annotations

from engine.validation import thresholds  # noqa: F401  (registers the settings)
