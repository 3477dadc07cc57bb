"""The editable properties of data schemas: one line each, with the value they take and the
column kinds they apply to.  ``ALTER SCHEMA`` and JSON import check values through here.

>>> COLUMN_PROPERTIES["min_fraction"].parse(0.5)
0.5
>>> sorted(COLUMN_PROPERTIES["drift_l_infinity"].kinds)
['BOOLEAN', 'STRING']
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.options import Validator, boolean, choice, either, finite, list_of, mapped, number, text, whole
from engine.validation.column_kinds import CATEGORICAL_KINDS, KINDS

NUMBERS = frozenset({"INT", "FLOAT"})
#: Kinds the Jensen-Shannon comparator and the numeric-shift check measure.
DISTRIBUTIONS = frozenset({"INT", "FLOAT", "TIMESTAMP"})

fraction = mapped(number(0, 1), float, expected="a fraction in [0, 1]")
count = whole(0, 2**63 - 1)
finite_number = finite
flag = boolean
strings = mapped(list_of(text, min_length=0), lambda values: list(dict.fromkeys(values)))
environments = mapped(either(text, list_of(text, min_length=0)),
                      lambda value: list(dict.fromkeys(v.upper() for v in ([value] if isinstance(value, str) else value))))
histogram_source = mapped(choice("standard", "quantiles"), str.upper)
kind = mapped(choice(*(k.lower() for k in KINDS)), str.upper, expected=f"a type among {', '.join(KINDS)}")


@dataclass(frozen=True)
class Property:
    """A schema property: how its value is read, the kinds it applies to (None: all), what it means."""

    name: str
    parse: Validator
    kinds: frozenset[str] | None
    description: str


def _table(*rows: tuple[str, Validator, frozenset[str] | None, str]) -> dict[str, Property]:
    return {name: Property(name, parse, kinds, text) for name, parse, kinds, text in rows}


COLUMN_PROPERTIES = _table(
    ("type", kind, None, "INT, FLOAT, STRING, BOOLEAN, TIMESTAMP or BYTES"),
    ("min_fraction", fraction, None, "least fraction of rows with a value (1: required)"),
    ("min_count", count, None, "least number of rows with a value"),
    ("domain", strings, CATEGORICAL_KINDS, "the allowed string values"),
    ("min_domain_mass", fraction, CATEGORICAL_KINDS, "least fraction of values inside the domain"),
    ("min", finite_number, NUMBERS, "smallest allowed value"),
    ("max", finite_number, NUMBERS, "largest allowed value"),
    ("disallow_nan", flag, frozenset({"FLOAT"}), "NaN is an anomaly"),
    ("disallow_inf", flag, frozenset({"FLOAT"}), "infinity is an anomaly"),
    ("unique_min", count, CATEGORICAL_KINDS, "least number of distinct values"),
    ("unique_max", count, CATEGORICAL_KINDS, "largest number of distinct values"),
    ("patterns", strings, frozenset({"STRING"}), "allowed value shapes (digits 9, capitals A, small letters a)"),
    ("max_off_pattern_fraction", fraction, frozenset({"STRING"}), "fraction of values off every pattern allowed"),
    ("in_environment", environments, None, "environments the column is expected in (default: all)"),
    ("not_in_environment", environments, None, "environments the column is not expected in"),
    ("drift_l_infinity", fraction, CATEGORICAL_KINDS, "drift comparator threshold (L-infinity vs previous)"),
    ("skew_l_infinity", fraction, CATEGORICAL_KINDS, "skew comparator threshold (L-infinity vs training)"),
    ("drift_normalized_abs_difference", fraction, CATEGORICAL_KINDS, "drift threshold (normalized absolute difference)"),
    ("skew_normalized_abs_difference", fraction, CATEGORICAL_KINDS, "skew threshold (normalized absolute difference)"),
    ("drift_jensen_shannon_divergence", fraction, DISTRIBUTIONS, "drift comparator threshold (JSD vs previous)"),
    ("skew_jensen_shannon_divergence", fraction, DISTRIBUTIONS, "skew comparator threshold (JSD vs training)"),
    ("jensen_shannon_histogram", histogram_source, DISTRIBUTIONS,
     "histograms the JSD comparators compare: STANDARD (equal-width, TFDV's default) or QUANTILES"),
    ("shift_threshold", fraction, DISTRIBUTIONS, "MALLARD_NUMERIC_SHIFT threshold (JSD vs the inferred baseline)"),
    ("missing_rise_threshold", fraction, None, "MALLARD_MISSING_RISE threshold (rise of the missing fraction)"),
    ("deprecated", flag, None, "skip every check of the column"),
)

SCHEMA_PROPERTIES = _table(
    ("environments", environments, None, "the environments validation may name (TFDV's default_environment)"),
    ("min_examples_count", count, None, "least number of rows"),
    ("max_examples_count", count, None, "largest number of rows"),
    ("num_examples_drift_min_fraction", finite_number, None, "least rows / previous rows"),
    ("num_examples_drift_max_fraction", finite_number, None, "largest rows / previous rows"),
    ("max_duplicate_fraction", fraction, None, "MALLARD_DUPLICATE_ROWS threshold (fraction of repeated rows)"),
)
