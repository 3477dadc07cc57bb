"""Column kinds: how a DuckDB type is seen by statistics and schemas.

Six kinds, after TFDV's feature types (INT, FLOAT, BYTES) with strings, booleans and time
told apart: numbers get numeric statistics, strings and booleans get value counts, time gets
numeric statistics over epoch seconds, anything else (BLOB, lists, ...) only counts.

>>> column_kind("BIGINT"), column_kind("DECIMAL(10,2)"), column_kind("ENUM('a', 'b')")
('INT', 'FLOAT', 'STRING')
>>> numeric_value(exp.column("t"), "TIMESTAMP").sql("duckdb")
'EPOCH(t)'
"""
from __future__ import annotations

import re

from sqlglot import exp

KINDS = ("INT", "FLOAT", "STRING", "BOOLEAN", "TIMESTAMP", "BYTES")
#: Kinds with numeric statistics (mean, quantiles, histograms).
NUMERIC_KINDS = frozenset({"INT", "FLOAT", "BOOLEAN", "TIMESTAMP"})
#: Kinds with value counts (domains, top values, L-infinity).
CATEGORICAL_KINDS = frozenset({"STRING", "BOOLEAN"})

_INT = re.compile(r"^U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)$|^(INT\d*|LONG|SHORT)$")
_FLOAT = re.compile(r"^(FLOAT|DOUBLE|REAL|DECIMAL.*|NUMERIC.*)$")
_STRING = re.compile(r"^(VARCHAR.*|TEXT|STRING|ENUM\(.*|UUID|JSON|CHAR.*|BPCHAR)$")
_TIME = re.compile(r"^(DATE|TIMESTAMP.*|DATETIME)$")


def column_kind(sql_type: str) -> str:
    """The kind of a DuckDB column type (BYTES for anything without statistics of its own)."""
    text = sql_type.strip().upper()
    if _INT.match(text):
        return "INT"
    if _FLOAT.match(text):
        return "FLOAT"
    if text == "BOOLEAN":
        return "BOOLEAN"
    if _STRING.match(text):
        return "STRING"
    if _TIME.match(text):
        return "TIMESTAMP"
    return "BYTES"


def numeric_value(column: exp.Expr, kind: str) -> exp.Expr:
    """The DOUBLE a numeric column's statistics are computed over."""
    if kind == "TIMESTAMP":
        return exp.func("epoch", column)
    if kind == "BOOLEAN":
        return exp.cast(exp.cast(column, "INTEGER"), "DOUBLE")
    return exp.cast(column, "DOUBLE")


def category_value(column: exp.Expr) -> exp.Expr:
    """The VARCHAR a categorical column's values are counted as."""
    return exp.cast(column, "VARCHAR")


def accepts(schema_type: str, data_kind: str) -> bool:
    """Whether data of ``data_kind`` conforms to a schema column of ``schema_type``.

    The same kind conforms; integers also conform to FLOAT (a widening, as a float column
    whose values happen to be whole numbers reads as integers).

    >>> accepts("FLOAT", "INT"), accepts("INT", "FLOAT"), accepts("INT", "STRING")
    (True, False, False)
    """
    return schema_type == data_kind or (schema_type == "FLOAT" and data_kind == "INT")
