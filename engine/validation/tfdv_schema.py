"""Schemas to and from TFDV's ``schema.pbtxt`` (TensorFlow Metadata's ``Schema`` proto, as text).

``EXPORT SCHEMA s TO 'schema.pbtxt'`` and ``IMPORT SCHEMA s FROM 'schema.pbtxt'`` read and
write TFDV's own format through the ``tensorflow-metadata`` protos, so a team moving
between TFDV and Mallard keeps its schemas.  Every property the two share is mapped (types,
presence, string domains, int and float ranges, NaN and infinity, distinct-value bounds,
environments, drift and skew comparators with their histogram choice, deprecation, dataset
row counts and the row-count drift comparator); what has no counterpart is listed, one
:class:`Unmapped` per property, and the statement returns that list.

Types: TFDV's BYTES is Mallard's STRING; INT with a ``bool_domain`` is BOOLEAN; INT or
FLOAT with an integer ``time_domain`` is TIMESTAMP (written as microseconds since the epoch).
Mallard's soft (inferred, unconfirmed) ranges are not exported: TFDV has only hard ranges.

>>> from engine.validation.schema import ColumnSchema, Schema
>>> schema = Schema(columns=[ColumnSchema(name="carrier", type="STRING", min_fraction=1.0, min_count=1,
...                                       domain=["AA", "UA"], patterns=["AA"])])
>>> exported = schema_to_tfdv(schema)
>>> print(exported.text)
feature {
  name: "carrier"
  type: BYTES
  string_domain {
    value: "AA"
    value: "UA"
  }
  presence {
    min_fraction: 1.0
    min_count: 1
  }
}
<BLANKLINE>
>>> [(u.column_name, u.property) for u in exported.unmapped]
[('carrier', 'patterns')]
>>> schema_from_tfdv(exported.text, "example").schema.column("carrier").domain
['AA', 'UA']
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engine.errors import DataError, OperationalError
from engine.validation.properties import COLUMN_PROPERTIES, DISTRIBUTIONS, NUMBERS
from engine.validation.schema import ColumnSchema, Schema

#: The columns of IMPORT / EXPORT SCHEMA's result in the TFDV format.
UNMAPPED_COLUMNS = ("column_name", "property", "value", "reason")

#: Mallard's column properties that TFDV's schema has no place for, and why it matters.
MALLARD_ONLY: dict[str, str] = {
    "patterns": "TFDV has no value-shape check (MALLARD_FORMAT_CHANGE)",
    "max_off_pattern_fraction": "TFDV has no value-shape check (MALLARD_FORMAT_CHANGE)",
    "shift_threshold": "TFDV has no baseline shift check (MALLARD_NUMERIC_SHIFT)",
    "missing_rise_threshold": "TFDV has no missing-value rise check (MALLARD_MISSING_RISE)",
}
#: Mallard's column properties that map onto a field of TFDV's Feature.
SHARED = frozenset(COLUMN_PROPERTIES) - frozenset(MALLARD_ONLY)

#: TFDV's lifecycle stages whose features TFDV does not validate (checked against TFDV 1.16).
_SKIPPED_STAGES = ("PLANNED", "ALPHA", "DEPRECATED", "DEBUG_ONLY", "DISABLED")
_COMPARATORS = (("l_infinity", "infinity_norm"), ("normalized_abs_difference", "normalized_abs_difference"),
                ("jensen_shannon_divergence", "jensen_shannon_divergence"))
_CATEGORICAL = frozenset({"STRING", "BOOLEAN"})


@dataclass(frozen=True)
class Unmapped:
    """A property one format has and the other cannot hold (``column_name`` None: the dataset)."""

    column_name: str | None
    property: str
    value: str
    reason: str


@dataclass
class TfdvExport:
    """A schema as TFDV's text proto, and what it could not carry."""

    text: str
    unmapped: list[Unmapped] = field(default_factory=list)


@dataclass
class TfdvImport:
    """A schema read from TFDV's text proto, and what Mallard could not take from it."""

    schema: Schema
    unmapped: list[Unmapped] = field(default_factory=list)


def _protos() -> Any:
    try:
        from tensorflow_metadata.proto.v0 import schema_pb2
    except ImportError as e:  # a broken or partial install
        raise OperationalError("TFDV schemas need the tensorflow-metadata package, which could not be imported "
                               f"({e}); install it with pip install 'tensorflow-metadata>=1.17,<2'") from None
    return schema_pb2


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(sorted(value)) + "}"
    return repr(value) if isinstance(value, str) else str(value)


# Mallard -> TFDV -------------------------------------------------------------------------
def schema_to_tfdv(schema: Schema) -> TfdvExport:
    """``schema`` as TFDV's ``schema.pbtxt`` text, with what could not be mapped."""
    from google.protobuf import text_format

    pb = _protos()
    proto = pb.Schema()
    unmapped: list[Unmapped] = []
    for column in schema.columns:
        unmapped += _feature_to_tfdv(column, proto.feature.add(), pb)
    proto.default_environment.extend(schema.environments)
    _dataset_to_tfdv(schema, proto)
    if schema.max_duplicate_fraction is not None:
        unmapped.append(Unmapped(None, "max_duplicate_fraction", _shown(schema.max_duplicate_fraction),
                                 "TFDV has no duplicate-row check (MALLARD_DUPLICATE_ROWS)"))
    if schema.baseline:
        unmapped.append(Unmapped(None, "baseline", _shown(schema.baseline),
                                 "the statistics the schema was inferred from: TFDV keeps none"))
    return TfdvExport(text_format.MessageToString(proto), unmapped)


def _dataset_to_tfdv(schema: Schema, proto: Any) -> None:
    constraints = proto.dataset_constraints
    if schema.min_examples_count is not None:
        constraints.min_examples_count = schema.min_examples_count
    if schema.max_examples_count is not None:
        constraints.max_examples_count = schema.max_examples_count
    if schema.num_examples_drift_min_fraction is not None:
        constraints.num_examples_drift_comparator.min_fraction_threshold = schema.num_examples_drift_min_fraction
    if schema.num_examples_drift_max_fraction is not None:
        constraints.num_examples_drift_comparator.max_fraction_threshold = schema.num_examples_drift_max_fraction
    if not constraints.ListFields():
        proto.ClearField("dataset_constraints")


def _float32_outward(value: float, up: bool) -> float:
    """The nearest float32 on the permissive side (TFDV's float_domain holds float32)."""
    narrowed = np.float32(value)
    if (up and float(narrowed) < value) or (not up and float(narrowed) > value):
        narrowed = np.nextafter(narrowed, np.float32(np.inf if up else -np.inf))
    return float(narrowed)


def _feature_to_tfdv(c: ColumnSchema, f: Any, pb: Any) -> list[Unmapped]:
    unmapped: list[Unmapped] = []
    f.name = c.name
    f.type = {"INT": pb.INT, "FLOAT": pb.FLOAT, "BOOLEAN": pb.INT, "TIMESTAMP": pb.INT}.get(c.type, pb.BYTES)
    if c.type == "BYTES":
        unmapped.append(Unmapped(c.name, "type", "BYTES", "written as TFDV's BYTES, which IMPORT reads back as STRING"))
    if c.min_fraction:  # TFDV writes only what is not the default 0
        f.presence.min_fraction = c.min_fraction
    if c.min_count:
        f.presence.min_count = c.min_count
    if c.type == "BOOLEAN":
        f.bool_domain.SetInParent()
    elif c.type == "TIMESTAMP":
        f.time_domain.integer_format = pb.TimeDomain.UNIX_MICROSECONDS
    if c.domain is not None:
        if c.type == "STRING":
            f.string_domain.value.extend(c.domain)
            if c.min_domain_mass < 1.0:
                f.distribution_constraints.min_domain_mass = c.min_domain_mass
        else:
            unmapped.append(Unmapped(c.name, "domain", _shown(c.domain), "TFDV's bool_domain holds no value list"))
    unmapped += _range_to_tfdv(c, f)
    if c.unique_min is not None:
        f.unique_constraints.min = c.unique_min
    if c.unique_max is not None:
        f.unique_constraints.max = c.unique_max
    f.in_environment.extend(c.in_environment)
    f.not_in_environment.extend(c.not_in_environment)
    unmapped += _comparators_to_tfdv(c, f, pb)
    if c.deprecated:
        f.lifecycle_stage = pb.DEPRECATED
    unmapped += [Unmapped(c.name, name, _shown(getattr(c, name)), reason)
                 for name, reason in MALLARD_ONLY.items() if getattr(c, name) is not None]
    if c.baseline:
        unmapped.append(Unmapped(c.name, "baseline", _shown(c.baseline),
                                 "the statistics the column was inferred from: TFDV keeps none"))
    return unmapped


def _range_to_tfdv(c: ColumnSchema, f: Any) -> list[Unmapped]:
    if c.type not in NUMBERS:
        return []
    if (c.min is not None or c.max is not None) and "range" in c.inferred:
        value = f"[{_shown(c.min)}, {_shown(c.max)}]"
        c = replace(c, min=None, max=None)
        unmapped = [Unmapped(c.name, "min, max", value, "an inferred (soft) range: TFDV has only hard ranges; "
                                                          "confirm it with ALTER SCHEMA ... SET (min = ..., max = ...)")]
    else:
        unmapped = []
    if c.type == "INT":
        if c.min is not None:
            f.int_domain.min = math.ceil(c.min)
        if c.max is not None:
            f.int_domain.max = math.floor(c.max)
        return unmapped
    if c.min is not None:
        f.float_domain.min = _float32_outward(c.min, up=False)
    if c.max is not None:
        f.float_domain.max = _float32_outward(c.max, up=True)
    if c.disallow_nan:
        f.float_domain.disallow_nan = True
    if c.disallow_inf:
        f.float_domain.disallow_inf = True
    return unmapped


def _comparators_to_tfdv(c: ColumnSchema, f: Any, pb: Any) -> list[Unmapped]:
    histogram = c.jensen_shannon_histogram
    for prefix in ("drift", "skew"):
        comparator = getattr(f, f"{prefix}_comparator")
        for ours, theirs in _COMPARATORS:
            threshold = getattr(c, f"{prefix}_{ours}")
            if threshold is not None:
                getattr(comparator, theirs).threshold = threshold
                if theirs == "jensen_shannon_divergence" and histogram:
                    comparator.jensen_shannon_divergence.source.type = getattr(pb.HistogramSelection, histogram)
    used = c.drift_jensen_shannon_divergence is not None or c.skew_jensen_shannon_divergence is not None
    if histogram and not used:
        return [Unmapped(c.name, "jensen_shannon_histogram", _shown(histogram),
                         "TFDV keeps the histogram choice inside a Jensen-Shannon comparator, and the column has none")]
    return []


# TFDV -> Mallard -------------------------------------------------------------------------
def schema_from_tfdv(text: str, origin: str) -> TfdvImport:
    """A schema from TFDV's ``schema.pbtxt`` text, with what Mallard could not take from it
    (DataError when the text is not a TFDV schema or holds a value Mallard rejects)."""
    from google.protobuf import text_format

    pb = _protos()
    proto = pb.Schema()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as e:
        raise DataError(f"{origin}: expected a TFDV schema (a Schema text proto), found text it cannot read: {e}") \
            from None
    reader = _TfdvReader(proto, pb)
    document: dict[str, Any] = {
        "feature": [d for d in (reader.feature(f) for f in proto.feature) if d is not None],
        "default_environment": list(proto.default_environment) or None,
        "dataset_constraints": reader.dataset(proto),
    }
    reader.leftovers(proto)
    try:
        schema = Schema.from_dict({k: v for k, v in document.items() if v is not None})
    except DataError as e:
        raise DataError(f"{origin}: {e}".replace("schema JSON: ", "")) from None
    return TfdvImport(schema, reader.unmapped)


class _TfdvReader:
    """Reads a TFDV Schema proto into Mallard's schema document, noting what it leaves out."""

    def __init__(self, proto: Any, pb: Any) -> None:
        self.pb = pb
        self.unmapped: list[Unmapped] = []
        self.shared = {kind: {d.name: d for d in getattr(proto, kind)}
                       for kind in ("string_domain", "int_domain", "float_domain")}

    def note(self, column: str | None, prop: str, value: Any, reason: str) -> None:
        self.unmapped.append(Unmapped(column, prop, _text(value), reason))

    def dataset(self, proto: Any) -> dict[str, Any] | None:
        if not proto.HasField("dataset_constraints"):
            return None
        c = proto.dataset_constraints
        found: dict[str, Any] = {k: getattr(c, k) for k in ("min_examples_count", "max_examples_count") if c.HasField(k)}
        if c.HasField("num_examples_drift_comparator"):
            drift = c.num_examples_drift_comparator
            found["num_examples_drift_comparator"] = {k: getattr(drift, k) for k in (
                "min_fraction_threshold", "max_fraction_threshold") if drift.HasField(k)}
        if c.HasField("num_examples_version_comparator"):
            self.note(None, "dataset_constraints.num_examples_version_comparator", c.num_examples_version_comparator,
                      "Mallard compares row counts with the previous span only (num_examples_drift_comparator)")
        return found

    def leftovers(self, proto: Any) -> None:
        for name in ("sparse_feature", "weighted_feature"):
            for item in getattr(proto, name):
                self.note(item.name, name, item, "Mallard's columns are plain columns of a table")
        for name in ("annotation", "tensor_representation_group", "represent_variable_length_as_ragged"):
            if _present(proto, name):
                self.note(None, name, getattr(proto, name), "Mallard has no counterpart")

    def feature(self, f: Any) -> dict[str, Any] | None:
        kind = self._type(f)
        if kind is None:
            return None
        d: dict[str, Any] = {"name": f.name, "type": kind}
        if f.HasField("presence"):
            d["presence"] = {k: getattr(f.presence, k) for k in ("min_fraction", "min_count") if f.presence.HasField(k)}
        self._shape(f)
        self._domain(f, kind, d)
        self._comparators(f, kind, d)
        if f.in_environment:
            d["in_environment"] = list(f.in_environment)
        if f.not_in_environment:
            d["not_in_environment"] = list(f.not_in_environment)
        self._lifecycle(f, d)
        if f.HasField("unique_constraints"):
            self._categorical_only(f, kind, d, "unique_constraints", {
                k: getattr(f.unique_constraints, k) for k in ("min", "max") if f.unique_constraints.HasField(k)})
        for name in ("group_presence", "annotation", "validation_derived_source", "sequence_metadata"):
            if f.HasField(name):
                self.note(f.name, name, getattr(f, name), "Mallard has no counterpart")
        return d

    def _type(self, f: Any) -> str | None:
        pb, domain = self.pb, f.WhichOneof("domain_info")
        if domain == "time_domain" and f.time_domain.WhichOneof("format") == "integer_format" \
                and f.type in (pb.INT, pb.FLOAT):
            return "TIMESTAMP"
        if domain == "bool_domain" and f.type in (pb.INT, pb.BYTES):
            return "BOOLEAN"
        kind = {pb.INT: "INT", pb.FLOAT: "FLOAT", pb.BYTES: "STRING"}.get(f.type)
        if kind is None:
            self.note(f.name, "type", pb.FeatureType.Name(f.type),
                      "Mallard's columns are INT, FLOAT, STRING, BOOLEAN or TIMESTAMP: the feature was left out")
        return kind

    def _shape(self, f: Any) -> None:
        """A scalar column is what Mallard validates: one value per row is implied, more is not."""
        shape = f.WhichOneof("shape_type")
        if shape == "shape" and [d.size for d in f.shape.dim] in ([], [1]):
            return
        if shape == "value_count" and (not f.value_count.HasField("min") or f.value_count.min <= 1) \
                and (not f.value_count.HasField("max") or f.value_count.max >= 1):
            return
        if shape is not None:
            self.note(f.name, shape, getattr(f, shape), "Mallard's columns hold one value per row")

    def _domain(self, f: Any, kind: str, d: dict[str, Any]) -> None:
        name = f.WhichOneof("domain_info")
        domain: Any = getattr(f, name) if name else None
        if name == "domain":  # a reference to a domain declared at the top level
            name, domain = next(((k, shared[f.domain]) for k, shared in self.shared.items() if f.domain in shared),
                                (None, None))
            if domain is None:
                raise DataError(f"TFDV schema: feature {f.name!r} names domain {f.domain!r}, which is not declared")
        if name == "string_domain":
            self._categorical_only(f, kind, d, "string_domain", {"value": list(domain.value)})
            if domain.is_categorical:
                self.note(f.name, "string_domain.is_categorical", domain.is_categorical, "Mallard has no counterpart")
        elif name in ("int_domain", "float_domain"):
            self._numeric_domain(f, kind, d, name, domain)
        elif name == "bool_domain":
            for side in ("true_value", "false_value"):
                if domain.HasField(side):
                    self.note(f.name, f"bool_domain.{side}", getattr(domain, side),
                              "Mallard's BOOLEAN columns hold true and false, not strings standing for them")
        elif name == "time_domain" and kind != "TIMESTAMP":
            self.note(f.name, "time_domain", domain, "a time written as text: Mallard reads the column as STRING and "
                                                     "checks no time format (its value patterns can check shapes)")
        elif name not in (None, "time_domain"):
            self.note(f.name, name, domain, "Mallard has no counterpart")
        if f.HasField("distribution_constraints"):
            if "string_domain" in d:
                d["distribution_constraints"] = {"min_domain_mass": f.distribution_constraints.min_domain_mass}
            else:
                self.note(f.name, "distribution_constraints", f.distribution_constraints,
                          "Mallard's min_domain_mass applies to string domains")

    def _numeric_domain(self, f: Any, kind: str, d: dict[str, Any], name: str, domain: Any) -> None:
        values = {k: getattr(domain, k) for k in ("min", "max") if domain.HasField(k)}
        if name == "float_domain":
            values.update({k: True for k in ("disallow_nan", "disallow_inf") if getattr(domain, k)})
            for extra in ("is_embedding", "embedding_dim", "embedding_type", "is_categorical"):
                if domain.HasField(extra):
                    self.note(f.name, f"float_domain.{extra}", getattr(domain, extra), "Mallard has no counterpart")
        elif domain.HasField("is_categorical"):
            self.note(f.name, "int_domain.is_categorical", domain.is_categorical, "Mallard has no counterpart")
        ranged = {k: v for k, v in values.items() if k in ("min", "max")}
        if ranged and kind not in NUMBERS:
            self.note(f.name, f"{name} range", ranged, f"Mallard's ranges apply to INT and FLOAT columns, not {kind}")
            values = {k: v for k, v in values.items() if k not in ranged}
        if values and (kind == "FLOAT" or set(values) <= {"min", "max"}):
            d["float_domain" if kind == "FLOAT" else "int_domain"] = values
        elif values:
            self.note(f.name, name, values, f"NaN and infinity checks apply to FLOAT columns, not {kind}")

    def _categorical_only(self, f: Any, kind: str, d: dict[str, Any], key: str, value: Any) -> None:
        if kind in _CATEGORICAL:
            d[key] = value
        else:
            self.note(f.name, key, value, f"Mallard applies it to STRING and BOOLEAN columns, not {kind}")

    def _comparators(self, f: Any, kind: str, d: dict[str, Any]) -> None:
        for prefix in ("drift", "skew"):
            name = f"{prefix}_comparator"
            if not f.HasField(name):
                continue
            found: dict[str, Any] = {}
            for ours, theirs in _COMPARATORS:
                comparator = getattr(getattr(f, name), theirs)
                if not getattr(f, name).HasField(theirs):
                    continue
                fits = DISTRIBUTIONS if ours == "jensen_shannon_divergence" else _CATEGORICAL
                if kind not in fits:
                    self.note(f.name, f"{name}.{theirs}", comparator,
                              f"Mallard applies it to {', '.join(sorted(fits))} columns, not {kind}")
                    continue
                found[theirs] = {"threshold": comparator.threshold}
                if ours == "jensen_shannon_divergence" and comparator.source.type:
                    found[theirs]["source"] = {"type": self.pb.HistogramSelection.Type.Name(comparator.source.type)}
            if found:
                d[name] = found

    def _lifecycle(self, f: Any, d: dict[str, Any]) -> None:
        stage = self.pb.LifecycleStage.Name(f.lifecycle_stage)
        if f.deprecated or stage in _SKIPPED_STAGES:
            d["lifecycle_stage"] = "DEPRECATED"
        if stage in _SKIPPED_STAGES and stage != "DEPRECATED":
            self.note(f.name, "lifecycle_stage", stage,
                      "imported as deprecated: TFDV does not validate features in this stage either")


def _present(proto: Any, name: str) -> bool:
    value = getattr(proto, name)
    return bool(value) if not hasattr(value, "ListFields") else bool(value.ListFields())


def _text(value: Any) -> str:
    if hasattr(value, "ListFields"):
        from google.protobuf import text_format

        return text_format.MessageToString(value, as_one_line=True) or "{}"
    return _shown(value)
