"""Data schemas: what each column must look like, and what the dataset as a whole must.

A schema is plain data (dataclasses) that converts to and from a JSON document laid out like
TFDV's schema proto (``feature`` entries with ``presence``, ``string_domain``,
``int_domain``/``float_domain``, ``unique_constraints``, ``drift_comparator``, ...), with
Mallard's additions under ``"mallard"``.

>>> column = ColumnSchema(name="carrier", type="STRING", min_fraction=1.0, min_count=1, domain=["AA", "UA"])
>>> schema = Schema(columns=[column], environments=["TRAINING", "SERVING"])
>>> Schema.from_dict(schema.to_dict()) == schema
True
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from engine.errors import DataError
from engine.validation.properties import COLUMN_PROPERTIES, SCHEMA_PROPERTIES

FORMAT = "mallard-schema/1"

#: Properties INFER SCHEMA guesses softly: numeric ranges.
INFERRED = ("range",)


@dataclass
class ColumnSchema:
    """What one column must look like (fields are the properties of ALTER SCHEMA)."""

    name: str
    type: str
    sql_type: str | None = None
    min_fraction: float = 0.0
    min_count: int = 0
    domain: list[str] | None = None
    min_domain_mass: float = 1.0
    min: float | None = None
    max: float | None = None
    disallow_nan: bool = False
    disallow_inf: bool = False
    unique_min: int | None = None
    unique_max: int | None = None
    patterns: list[str] | None = None
    max_off_pattern_fraction: float | None = None
    in_environment: list[str] = field(default_factory=list)
    not_in_environment: list[str] = field(default_factory=list)
    drift_l_infinity: float | None = None
    skew_l_infinity: float | None = None
    drift_normalized_abs_difference: float | None = None
    skew_normalized_abs_difference: float | None = None
    drift_jensen_shannon_divergence: float | None = None
    skew_jensen_shannon_divergence: float | None = None
    jensen_shannon_histogram: str | None = None
    shift_threshold: float | None = None
    missing_rise_threshold: float | None = None
    deprecated: bool = False
    #: Statistics the column was inferred from: count, missing_fraction, and for numbers
    #: mean, std_dev and the deciles (the reference of MALLARD_NUMERIC_SHIFT / _MISSING_RISE).
    baseline: dict[str, Any] | None = None
    #: Properties INFER SCHEMA guessed and nobody has confirmed ('range'): data outside
    #: them is a WARNING, not an ERROR (ALTER SCHEMA ... SET confirms one).
    inferred: list[str] = field(default_factory=list)

    def expected_in(self, environment: str | None) -> bool:
        """Whether validation under ``environment`` (None: no environment) expects the column."""
        if self.deprecated:
            return False
        if environment is None:
            return True
        if self.in_environment and environment not in self.in_environment:
            return False
        return environment not in self.not_in_environment

    def to_dict(self) -> dict[str, Any]:
        return _column_to_dict(self)


@dataclass
class Schema:
    """A data schema: its columns in order and the dataset-level constraints."""

    columns: list[ColumnSchema] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    min_examples_count: int | None = None
    max_examples_count: int | None = None
    num_examples_drift_min_fraction: float | None = None
    num_examples_drift_max_fraction: float | None = None
    max_duplicate_fraction: float | None = None
    baseline: dict[str, Any] | None = None  # row_count and duplicate_fraction inferred from

    def column(self, name: str) -> ColumnSchema | None:
        """The column of that name (exact match first, then case-insensitive, as DuckDB does)."""
        for column in self.columns:
            if column.name == name:
                return column
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)

    def copy(self) -> Schema:
        return Schema.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        dataset: dict[str, Any] = _without_none({
            "min_examples_count": self.min_examples_count,
            "max_examples_count": self.max_examples_count,
            "num_examples_drift_comparator": _without_none({
                "min_fraction_threshold": self.num_examples_drift_min_fraction,
                "max_fraction_threshold": self.num_examples_drift_max_fraction,
            }) or None,
        })
        mallard = _without_none({"max_duplicate_fraction": self.max_duplicate_fraction, "baseline": self.baseline})
        return _without_none({
            "format": FORMAT,
            "default_environment": self.environments or None,
            "dataset_constraints": dataset or None,
            "feature": [c.to_dict() for c in self.columns],
            "mallard": mallard or None,
        })

    @classmethod
    def from_dict(cls, document: Any) -> Schema:
        """Read a schema document, checking every value (DataError naming the bad one)."""
        return _schema_from_dict(document)


# To and from the TFDV-like document -------------------------------------------------------
_COMPARATORS = {"l_infinity": "infinity_norm", "jensen_shannon_divergence": "jensen_shannon_divergence",
                "normalized_abs_difference": "normalized_abs_difference"}


def _without_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != {} and v != []}


def _comparator_dict(column: ColumnSchema, prefix: str) -> dict[str, Any] | None:
    found = {tfdv: {"threshold": getattr(column, f"{prefix}_{ours}")} for ours, tfdv in _COMPARATORS.items()
             if getattr(column, f"{prefix}_{ours}") is not None}
    if "jensen_shannon_divergence" in found and column.jensen_shannon_histogram:
        found["jensen_shannon_divergence"]["source"] = {"type": column.jensen_shannon_histogram}
    return found or None


def _column_to_dict(c: ColumnSchema) -> dict[str, Any]:
    numeric_domain = _without_none({"min": c.min, "max": c.max,
                                    "disallow_nan": c.disallow_nan or None, "disallow_inf": c.disallow_inf or None})
    return _without_none({
        "name": c.name,
        "type": c.type,
        "presence": {"min_fraction": c.min_fraction, "min_count": c.min_count},
        "string_domain": {"value": c.domain} if c.domain is not None else None,
        "distribution_constraints": {"min_domain_mass": c.min_domain_mass} if c.domain is not None else None,
        ("float_domain" if c.type == "FLOAT" else "int_domain"): numeric_domain or None,
        "unique_constraints": _without_none({"min": c.unique_min, "max": c.unique_max}) or None,
        "in_environment": c.in_environment or None,
        "not_in_environment": c.not_in_environment or None,
        "drift_comparator": _comparator_dict(c, "drift"),
        "skew_comparator": _comparator_dict(c, "skew"),
        "lifecycle_stage": "DEPRECATED" if c.deprecated else None,
        "mallard": _without_none({
            "sql_type": c.sql_type,
            "value_patterns": _without_none({"pattern": c.patterns,
                                             "max_off_pattern_fraction": c.max_off_pattern_fraction}) or None,
            "shift_threshold": c.shift_threshold,
            "missing_rise_threshold": c.missing_rise_threshold,
            "baseline": c.baseline,
            "inferred": c.inferred or None,
        }) or None,
    })


class _Reader:
    """Takes keys out of one JSON object; complains about wrong shapes and leftover keys."""

    def __init__(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise DataError(f"schema JSON: expected an object at {where}, found {type(value).__name__}")
        self.items = dict(value)
        self.where = where

    def take(self, key: str) -> Any:
        return self.items.pop(key, None)

    def child(self, key: str) -> _Reader:
        return _Reader(self.take(key) or {}, f"{self.where}.{key}")

    def done(self) -> None:
        if self.items:
            raise DataError(f"schema JSON: unknown key {sorted(self.items)[0]!r} at {self.where}")


def _checked(properties: dict[str, Any], name: str, value: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        return properties[name].parse(value)
    except ValueError as e:
        raise DataError(f"schema JSON: {where}.{name}: {e}") from None


def _column_from_dict(document: Any, where: str) -> ColumnSchema:
    r = _Reader(document, where)
    name = r.take("name")
    if not isinstance(name, str) or not name:
        raise DataError(f"schema JSON: expected a column name at {where}.name, found {name!r}")
    where = f"feature {name!r}"
    values: dict[str, Any] = {"name": name, "type": r.take("type")}
    presence = r.child("presence")
    values.update(min_fraction=presence.take("min_fraction"), min_count=presence.take("min_count"))
    presence.done()
    domain = r.child("string_domain")
    values["domain"] = domain.take("value")
    domain.done()
    constraints = r.child("distribution_constraints")
    values["min_domain_mass"] = constraints.take("min_domain_mass")
    constraints.done()
    for key in ("int_domain", "float_domain"):
        numeric = r.child(key)
        for prop in ("min", "max", "disallow_nan", "disallow_inf"):
            values[prop] = numeric.take(prop) if values.get(prop) is None else values[prop]
        numeric.done()
    unique = r.child("unique_constraints")
    values.update(unique_min=unique.take("min"), unique_max=unique.take("max"))
    unique.done()
    values.update(in_environment=r.take("in_environment"), not_in_environment=r.take("not_in_environment"))
    for prefix in ("drift", "skew"):
        comparators = r.child(f"{prefix}_comparator")
        for ours, tfdv in _COMPARATORS.items():
            threshold = comparators.child(tfdv)
            values[f"{prefix}_{ours}"] = threshold.take("threshold")
            source = threshold.child("source")
            values["jensen_shannon_histogram"] = source.take("type") or values.get("jensen_shannon_histogram")
            source.done()
            threshold.done()
        comparators.done()
    stage = r.take("lifecycle_stage")
    values["deprecated"] = stage == "DEPRECATED" or None
    mallard = r.child("mallard")
    patterns = mallard.child("value_patterns")
    values.update(patterns=patterns.take("pattern"), max_off_pattern_fraction=patterns.take("max_off_pattern_fraction"))
    patterns.done()
    values.update(shift_threshold=mallard.take("shift_threshold"),
                  missing_rise_threshold=mallard.take("missing_rise_threshold"))
    sql_type, baseline = mallard.take("sql_type"), mallard.take("baseline")
    inferred = mallard.take("inferred")
    mallard.done()
    r.done()
    checked = {k: _checked(COLUMN_PROPERTIES, k, v, where) for k, v in values.items() if k != "name"}
    if checked.get("type") is None:
        raise DataError(f"schema JSON: {where} has no type")
    for key, value in checked.items():
        kinds = COLUMN_PROPERTIES[key].kinds
        if value not in (None, False) and kinds is not None and checked["type"] not in kinds:
            raise DataError(f"schema JSON: {where}: {key} applies to {', '.join(sorted(kinds))} columns, "
                            f"the column is {checked['type']}")
    column = ColumnSchema(name=name, type=checked.pop("type"), sql_type=sql_type if isinstance(sql_type, str) else None,
                          baseline=baseline if isinstance(baseline, dict) else None,
                          inferred=[v for v in inferred if v in INFERRED] if isinstance(inferred, list) else [])
    return replace(column, **{k: v for k, v in checked.items() if v is not None})


def _schema_from_dict(document: Any) -> Schema:
    r = _Reader(document, "the top level")
    fmt = r.take("format")
    if fmt not in (None, FORMAT):
        raise DataError(f"schema JSON: expected format {FORMAT!r}, found {fmt!r}")
    features = r.take("feature") or []
    if not isinstance(features, list):
        raise DataError("schema JSON: expected a list at feature")
    columns = [_column_from_dict(f, f"feature[{i}]") for i, f in enumerate(features)]
    names = [c.name.lower() for c in columns]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise DataError(f"schema JSON: column {duplicate!r} appears twice")
    dataset = r.child("dataset_constraints")
    drift = dataset.child("num_examples_drift_comparator")
    values = {
        "environments": r.take("default_environment"),
        "min_examples_count": dataset.take("min_examples_count"),
        "max_examples_count": dataset.take("max_examples_count"),
        "num_examples_drift_min_fraction": drift.take("min_fraction_threshold"),
        "num_examples_drift_max_fraction": drift.take("max_fraction_threshold"),
    }
    drift.done()
    dataset.done()
    mallard = r.child("mallard")
    values["max_duplicate_fraction"] = mallard.take("max_duplicate_fraction")
    baseline = mallard.take("baseline")
    mallard.done()
    r.done()
    checked = {k: _checked(SCHEMA_PROPERTIES, k, v, "dataset") for k, v in values.items()}
    schema = Schema(columns=columns, baseline=baseline if isinstance(baseline, dict) else None)
    return replace(schema, **{k: v for k, v in checked.items() if v is not None})


def column_field_names() -> list[str]:
    return [f.name for f in fields(ColumnSchema)]
