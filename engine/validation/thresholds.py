"""Settings of data validation: statistics sizes and the default thresholds of the checks
TFDV lacks.  A schema field overrides its setting (``ALTER SCHEMA ... SET (...)``); a setting
applies to every schema whose field is unset, at validation time.

>>> import engine
>>> con = engine.connect()
>>> settings = {row[0]: row[1] for row in con.execute("SET validation_shift_threshold = 0.2")
...             .execute("SHOW MALLARD SETTINGS").fetchall()}
>>> settings["validation_shift_threshold"], settings["validation_duplicate_threshold"]
('0.2', '0.001')
"""
from __future__ import annotations

from engine.options import number, whole
from engine.settings import Setting

SETTINGS: tuple[Setting, ...] = (
    Setting("validation_max_values", 10000, whole(100, 1_000_000),
            "Value counts kept per categorical column and span by COMPUTE STATISTICS (merges are exact below it)."),
    Setting("validation_shift_threshold", 0.05, number(0, 1),
            "MALLARD_NUMERIC_SHIFT: Jensen-Shannon divergence (log2) between a numeric column's decile histogram "
            "and its schema's baseline, over bins cut at the baseline's deciles; 1 turns the check off."),
    Setting("validation_missing_rise_threshold", 0.02, number(0, 1),
            "MALLARD_MISSING_RISE: rise of an optional column's missing fraction over its inferred baseline; "
            "1 turns the check off."),
    Setting("validation_format_threshold", 0.01, number(0, 1),
            "MALLARD_FORMAT_CHANGE: fraction of a string column's values whose shape matches none of the "
            "schema's patterns; 1 turns the check off."),
    Setting("validation_duplicate_threshold", 0.001, number(0, 1),
            "MALLARD_DUPLICATE_ROWS: fraction of rows that repeat an earlier row; 1 turns the check off."),
)
