"""UPDATE SCHEMA: relax a schema so that new data conforms, one rule per anomaly kind.

The data is validated first (the same checks as VALIDATE); each anomaly found is then fixed
by the rule for its kind, and every fix becomes a row of the result (column, anomaly, change,
before, after).  Unlike TFDV, which "fixes" a changed type by deprecating the column so that
validation passes silently from then on, a type change is NOT applied unless asked
(``accept_type_changes = true``): the column keeps being checked and reported.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import ProgrammingError
from engine.validation.inference import MAX_PATTERNS, PATTERN_COVERAGE, InferenceOptions, infer_column, statistics_rows
from engine.validation.schema import ColumnSchema, Schema
from engine.validation.validation_run import References, SchemaVersion, find_anomalies

if TYPE_CHECKING:
    from engine.session import Session

#: The columns of UPDATE SCHEMA's result.
CHANGE_COLUMNS = (("column_name", "VARCHAR"), ("anomaly", "VARCHAR"), ("change", "VARCHAR"),
                  ("before", "VARCHAR"), ("after", "VARCHAR"))


@dataclass
class Change:
    column_name: str | None
    anomaly: str
    change: str
    before: str | None
    after: str | None


def _column(schema: Schema, name: str | None) -> ColumnSchema:
    """The schema's column an anomaly names (anomalies name columns the schema has)."""
    column = schema.column(name or "")
    if column is None:
        raise ProgrammingError(f"the schema has no column {name!r}")
    return column


@dataclass
class DataFacts:
    """What the new data looks like: per-column statistics, values and shapes, row counts."""

    columns: dict[str, dict[str, Any]]
    values: dict[str, list[str]]
    shapes: dict[str, list[tuple[str, int]]]
    row_count: int
    duplicate_rows: int

    def column(self, name: str) -> dict[str, Any]:
        return self.columns[name.lower()]


def read_facts(session: Session, key: str) -> DataFacts:
    columns = {row["column_name"].lower(): row for row in statistics_rows(session, key)}
    values = dict(session.sql("SELECT lower(column_name), list(value ORDER BY value) FROM validation_values(?)"
                              " WHERE kind = 'value' GROUP BY ALL", [key]).fetchall())
    shapes = {name: [(s["value"], s["count"]) for s in found] for name, found in session.sql(
        "SELECT lower(column_name), list({'value': value, 'count': count} ORDER BY rank) FROM validation_values(?)"
        " WHERE kind = 'pattern' GROUP BY ALL", [key]).fetchall()}
    rows, duplicates = session.row("SELECT sum(row_count)::BIGINT, sum(duplicate_rows)::BIGINT FROM validation_spans(?)",
                                   [key])
    return DataFacts(columns, values, shapes, rows or 0, duplicates or 0)


def update_schema(session: Session, target: SchemaVersion, key: str, environment: str | None,
                  accept_type_changes: bool) -> tuple[Schema, list[Change]]:
    """A relaxed copy of the schema that the statistics ``key`` conform to, and the changes made."""
    anomalies = find_anomalies(session, target, References(key), environment)
    facts = read_facts(session, key)
    updated = target.schema.copy()
    changes: list[Change] = []
    for anomaly in anomalies.to_pylist():
        rule = _RULES.get(anomaly["anomaly"])
        if rule is not None:
            change = rule(updated, anomaly["column_name"], facts, accept_type_changes)
            if change is not None:
                changes.append(Change(anomaly["column_name"], anomaly["anomaly"], *change))
    return updated, changes


# The rules: (schema, column name, facts, accept_type_changes) -> (change, before, after) ---------
Rule = Callable[[Schema, str | None, DataFacts, bool], "tuple[str, str | None, str | None] | None"]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _new_column(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
    inferred = infer_column(facts.column(name or ""), facts.values.get((name or "").lower()),
                             facts.shapes.get((name or "").lower(), []), InferenceOptions())
    schema.columns.append(inferred)
    return "column added", None, f"{inferred.type}"


def _missing_column(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
    column = _column(schema, name)
    before = f"min_count {column.min_count}, min_fraction {column.min_fraction:g}"
    column.min_count, column.min_fraction = 0, 0.0
    return "presence relaxed: the column may be absent", before, "min_count 0, min_fraction 0"


def _data_type(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
    column = _column(schema, name)
    found = facts.column(column.name)
    if not accept:
        return ("type change NOT applied (the column stays checked); accept it with "
                "WITH (accept_type_changes = true) or ALTER SCHEMA ... SET (type = ...)", column.type, found["type"])
    inferred = infer_column(found, facts.values.get(column.name.lower()), facts.shapes.get(column.name.lower(), []),
                             InferenceOptions())
    inferred.in_environment, inferred.not_in_environment = column.in_environment, column.not_in_environment
    schema.columns[schema.columns.index(column)] = inferred
    return "type changed; constraints re-inferred from the data", column.type, inferred.type


def _fraction_present(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
    column, found = _column(schema, name), facts.column(name or "")
    before = column.min_fraction
    column.min_fraction = found["present"] / found["count"]
    return "min_fraction lowered", _text(before), _text(column.min_fraction)


def _number_present(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
    column, found = _column(schema, name), facts.column(name or "")
    before, column.min_count = column.min_count, int(found["present"])
    return "min_count lowered", _text(before), _text(column.min_count)


def _domain(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
    column, found = _column(schema, name), facts.column(name or "")
    before = len(column.domain or [])
    if found["unstored_count"]:
        column.domain = None
        return "domain removed: the data has more values than statistics keep", f"{before} values", None
    added = [v for v in facts.values.get(column.name.lower(), []) if v not in (column.domain or [])]
    column.domain = sorted((column.domain or []) + added)
    return f"domain extended with {', '.join(repr(v) for v in added[:10])}", f"{before} values", f"{len(column.domain)} values"


def _bound(which: str) -> Rule:
    def rule(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
        column, found = _column(schema, name), facts.column(name or "")
        before = getattr(column, which)
        setattr(column, which, float(found[which]))
        return f"{which} widened", _text(before), _text(getattr(column, which))
    return rule


def _allow(flag: str) -> Rule:
    def rule(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
        setattr(_column(schema, name), flag, False)
        return f"{flag} turned off", "true", "false"
    return rule


def _unique(which: str) -> Rule:
    def rule(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
        column, found = _column(schema, name), facts.column(name or "")
        before = getattr(column, which)
        setattr(column, which, int(found["distinct_count"]))
        return f"{which} widened", _text(before), _text(getattr(column, which))
    return rule


def _examples(which: str) -> Rule:
    def rule(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
        before = getattr(schema, which)
        setattr(schema, which, facts.row_count)
        return f"{which} widened", _text(before), _text(facts.row_count)
    return rule


def _baseline(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
    column, found = _column(schema, name), facts.column(name or "")
    before = (column.baseline or {}).get("mean")
    column.baseline = infer_column(found, None, [], InferenceOptions()).baseline
    return "baseline moved to the new data", f"mean {_text(before)}", f"mean {_text(found['mean'])}"


def _missing_baseline(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
    column, found = _column(schema, name), facts.column(name or "")
    baseline = dict(column.baseline or {})
    before = baseline.get("missing_fraction")
    baseline["missing_fraction"] = found["missing_fraction"]
    column.baseline = baseline
    return "baseline missing fraction raised", _text(before), _text(found["missing_fraction"])


def _patterns(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
    column, found = _column(schema, name), facts.column(name or "")
    before = list(column.patterns or [])
    patterns, covered = list(before), 0
    shapes = facts.shapes.get(column.name.lower(), [])
    covered = sum(count for shape, count in shapes if shape in patterns)
    for shape, count in shapes:
        if covered >= PATTERN_COVERAGE * found["present"]:
            break
        if shape not in patterns:
            patterns.append(shape)
            covered += count
    if len(patterns) > MAX_PATTERNS:
        column.patterns = None
        return "patterns removed: too many value shapes", _text(before), None
    column.patterns = patterns
    return "patterns extended", _text(before), _text(patterns)


def _duplicates(schema: Schema, name: str | None, facts: DataFacts, accept: bool) -> Any:
    before = schema.max_duplicate_fraction
    schema.max_duplicate_fraction = facts.duplicate_rows / facts.row_count
    return "max_duplicate_fraction raised", _text(before), _text(schema.max_duplicate_fraction)


_RULES: dict[str, Rule] = {
    "SCHEMA_NEW_COLUMN": _new_column,
    "SCHEMA_MISSING_COLUMN": _missing_column,
    "UNEXPECTED_DATA_TYPE": _data_type,
    "FEATURE_TYPE_LOW_FRACTION_PRESENT": _fraction_present,
    "FEATURE_TYPE_LOW_NUMBER_PRESENT": _number_present,
    "ENUM_TYPE_UNEXPECTED_STRING_VALUES": _domain,
    "INT_TYPE_BIG_INT": _bound("max"), "FLOAT_TYPE_BIG_FLOAT": _bound("max"),
    "INT_TYPE_SMALL_INT": _bound("min"), "FLOAT_TYPE_SMALL_FLOAT": _bound("min"),
    "FLOAT_TYPE_HAS_NAN": _allow("disallow_nan"), "FLOAT_TYPE_HAS_INF": _allow("disallow_inf"),
    "FEATURE_TYPE_HIGH_UNIQUE": _unique("unique_max"), "FEATURE_TYPE_LOW_UNIQUE": _unique("unique_min"),
    "DATASET_LOW_NUM_EXAMPLES": _examples("min_examples_count"),
    "DATASET_HIGH_NUM_EXAMPLES": _examples("max_examples_count"),
    "MALLARD_NUMERIC_SHIFT": _baseline,
    "MALLARD_MISSING_RISE": _missing_baseline,
    "MALLARD_FORMAT_CHANGE": _patterns,
    "MALLARD_DUPLICATE_ROWS": _duplicates,
}
