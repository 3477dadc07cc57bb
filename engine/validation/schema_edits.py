"""ALTER SCHEMA: edits of a data schema, checked before anything is written.

>>> from engine.validation.schema import ColumnSchema, Schema
>>> schema = Schema(columns=[ColumnSchema(name="carrier", type="STRING")])
>>> set_column_properties(schema, "carrier", {"drift_l_infinity": 0.1, "not_in_environment": ["serving"]})
[]
>>> schema.columns[0].drift_l_infinity, schema.environments
(0.1, ['SERVING'])
>>> set_column_properties(schema, "carrier", {"drift_jensen_shannon_divergence": 0.1})
Traceback (most recent call last):
...
engine.errors.ProgrammingError: drift_jensen_shannon_divergence applies to INT, FLOAT, TIMESTAMP columns; column carrier is STRING (for it use drift_l_infinity or drift_normalized_abs_difference)
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from engine.errors import DataError, ProgrammingError
from engine.validation.properties import COLUMN_PROPERTIES, SCHEMA_PROPERTIES, Property
from engine.validation.schema import ColumnSchema, Schema

_DEFAULTS = {f.name: f for f in fields(ColumnSchema)}
_SCHEMA_DEFAULTS = {f.name: f for f in fields(Schema)}


def _default(field: Any) -> Any:
    return field.default_factory() if callable(field.default_factory) else field.default


def _property(table: dict[str, Property], name: str, where: str) -> Property:
    if name not in table:
        raise ProgrammingError(f"unknown {where} property {name!r}; expected one of {', '.join(sorted(table))}")
    return table[name]


def _parsed(prop: Property, value: Any) -> Any:
    if value is None:
        return None
    try:
        return prop.parse(value)
    except ValueError as e:
        raise DataError(f"property {prop.name}: {e}") from None


def _require_column(schema: Schema, name: str) -> ColumnSchema:
    column = schema.column(name)
    if column is None:
        raise ProgrammingError(f"schema has no column {name!r}; its columns are "
                               f"{', '.join(c.name for c in schema.columns)}")
    return column


def _check_applies(prop: Property, column: ColumnSchema) -> None:
    if prop.kinds is None or column.type in prop.kinds:
        return
    hint = ""
    if prop.name.startswith(("drift_", "skew_")):
        prefix = prop.name.split("_", 1)[0]
        fitting = [p for p in COLUMN_PROPERTIES.values()
                   if p.name.startswith(prefix + "_") and p.kinds is not None and column.type in p.kinds]
        if fitting:
            hint = f" (for it use {' or '.join(p.name for p in fitting)})"
    raise ProgrammingError(f"{prop.name} applies to {', '.join(sorted(prop.kinds, key=_kind_order))} columns; "
                           f"column {column.name} is {column.type}{hint}")


def _kind_order(kind: str) -> int:
    from engine.validation.column_kinds import KINDS

    return KINDS.index(kind)


def set_column_properties(schema: Schema, name: str, values: dict[str, Any]) -> list[str]:
    """Set properties of a column (None resets one); returns the properties a type change cleared."""
    column = _require_column(schema, name)
    parsed = {key: _parsed(_property(COLUMN_PROPERTIES, key, "column"), value) for key, value in values.items()}
    cleared: list[str] = []
    if parsed.get("type") and parsed["type"] != column.type:
        column.type = parsed["type"]
        column.baseline = None
        for prop in COLUMN_PROPERTIES.values():
            if prop.kinds is not None and column.type not in prop.kinds and prop.name not in parsed \
                    and getattr(column, prop.name) != _default(_DEFAULTS[prop.name]):
                setattr(column, prop.name, _default(_DEFAULTS[prop.name]))
                cleared.append(prop.name)
    for key, value in parsed.items():
        if key == "type":
            continue
        if value is not None:
            _check_applies(COLUMN_PROPERTIES[key], column)
        setattr(column, key, _default(_DEFAULTS[key]) if value is None else value)
        _confirm(column, key)
    _check_column(column)
    _declare_environments(schema, column.in_environment + column.not_in_environment)
    return cleared


def _confirm(column: ColumnSchema, key: str) -> None:
    """A property set by hand is no longer a guess: data outside it becomes an ERROR."""
    confirmed = {"min": "range", "max": "range"}.get(key)
    if confirmed in column.inferred:
        column.inferred.remove(confirmed)


def reset_column_properties(schema: Schema, name: str, keys: list[str]) -> None:
    column = _require_column(schema, name)
    for key in keys:
        _property(COLUMN_PROPERTIES, key, "column")
        if key == "type":
            raise ProgrammingError("a column's type cannot be reset; SET (type = '...') changes it")
        setattr(column, key, _default(_DEFAULTS[key]))


def set_schema_properties(schema: Schema, values: dict[str, Any]) -> None:
    for key, value in values.items():
        parsed = _parsed(_property(SCHEMA_PROPERTIES, key, "schema"), value)
        setattr(schema, key, _default(_SCHEMA_DEFAULTS[key]) if parsed is None else parsed)
    _check_examples(schema)
    used = {e for c in schema.columns for e in c.in_environment + c.not_in_environment}
    undeclared = sorted(used - set(schema.environments))
    if undeclared:
        raise DataError(f"environments must include {', '.join(undeclared)}, which columns name "
                        f"(in_environment / not_in_environment)")


def reset_schema_properties(schema: Schema, keys: list[str]) -> None:
    set_schema_properties(schema, dict.fromkeys(keys))


def add_column(schema: Schema, name: str, kind: str) -> None:
    if schema.column(name) is not None:
        raise ProgrammingError(f"schema already has a column {name!r}")
    parsed = _parsed(COLUMN_PROPERTIES["type"], kind)
    schema.columns.append(ColumnSchema(name=name, type=parsed, min_count=1))


def drop_column(schema: Schema, name: str) -> None:
    column = _require_column(schema, name)
    schema.columns.remove(column)


def check_schema(schema: Schema, origin: str) -> None:
    """DataError naming ``origin`` when a column's bounds contradict each other (as ALTER SCHEMA refuses)."""
    try:
        for column in schema.columns:
            _check_column(column)
        _check_examples(schema)
    except DataError as e:
        raise DataError(f"{origin}: {e}") from None


def _check_examples(schema: Schema) -> None:
    if schema.min_examples_count is not None and schema.max_examples_count is not None \
            and schema.min_examples_count > schema.max_examples_count:
        raise DataError(f"min_examples_count {schema.min_examples_count} is above max_examples_count "
                        f"{schema.max_examples_count}")


def _check_column(column: ColumnSchema) -> None:
    if column.min is not None and column.max is not None and column.min > column.max:
        raise DataError(f"column {column.name}: min {column.min:g} is above max {column.max:g}")
    if column.unique_min is not None and column.unique_max is not None and column.unique_min > column.unique_max:
        raise DataError(f"column {column.name}: unique_min {column.unique_min} is above unique_max {column.unique_max}")


def _declare_environments(schema: Schema, names: list[str]) -> None:
    for name in names:
        if name not in schema.environments:
            schema.environments.append(name)
