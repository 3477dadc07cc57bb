"""The ``WITH (...)`` options of LABEL and ANALYZE LABELING FUNCTIONS, validated.

| option | default | meaning |
| --- | --- | --- |
| ``classes`` | the distinct votes | the classes, e.g. ``['ham', 'spam']`` or ``[0, 1]``; their order is the order of ``probs`` |
| ``model`` | ``'label_model'`` | ``'label_model'`` (Dawid-Skene EM) or ``'majority'`` |
| ``seed`` | 0 | breaks ties in the label model's majority-vote start |
| ``key`` | ``id`` if present, else ``rowid`` | the column identifying rows |
| ``max_iter`` | 100 | EM iterations at most |
| ``tol`` | 1e-5 | EM stops when no parameter moves more than this |
| ``fault_tolerant`` | false | Python functions: a row where one raises counts as a failure and abstains |
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from sqlglot import exp

from engine.dialect.base import literal_value, option_dict
from engine.errors import DataError, ProgrammingError
from engine.labeling.classes import LabelClasses

MODELS = ("label_model", "majority")
LABEL_OPTIONS = ("classes", "model", "seed", "key", "max_iter", "tol", "fault_tolerant")
ANALYZE_OPTIONS = ("classes", "key", "fault_tolerant")


@dataclass(frozen=True)
class LabelOptions:
    classes: LabelClasses | None = None
    model: str = "label_model"
    seed: int = 0
    key: str | None = None
    max_iter: int = 100
    tol: float = 1e-5
    fault_tolerant: bool = False

    def to_json(self, classes: LabelClasses, key: str) -> str:
        """Every option in force (the inferred classes and key included), for the catalog."""
        values = asdict(self)
        values.update(classes=list(classes.values), key=key)
        return json.dumps(values, sort_keys=True)


def label_options(node: exp.Expression, statement: str, allowed: tuple[str, ...] = LABEL_OPTIONS) -> LabelOptions:
    """Parse and check the options of ``node``; unknown names and bad values are errors."""
    raw = option_dict(node)
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ProgrammingError(f"unknown {statement} option {unknown[0]!r}; expected one of {', '.join(allowed)}")
    values: dict[str, Any] = {}
    for name, value_node in raw.items():
        values[name] = _value(statement, name, value_node)
    return LabelOptions(**{name: _checked(statement, name, value) for name, value in values.items()})


def _value(statement: str, name: str, node: exp.Expression) -> Any:
    if name == "key" and isinstance(node, (exp.Column, exp.Identifier)):
        return node.name
    try:
        return literal_value(node)
    except ValueError as e:
        raise DataError(f"{statement} option {name}: {e}") from None


def _checked(statement: str, name: str, value: Any) -> Any:
    where = f"{statement} option {name}"
    if name == "classes":
        if not isinstance(value, list):
            raise DataError(f"{where}: expected a list such as ['ham', 'spam'], found {value!r}")
        return LabelClasses.from_values(value, where=where)
    if name == "model":
        if value not in MODELS:
            raise DataError(f"{where}: expected one of {', '.join(repr(m) for m in MODELS)}, found {value!r}")
        return value
    if name in ("seed", "max_iter"):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 1):
            raise DataError(f"{where}: expected a {'non-negative' if name == 'seed' else 'positive'} whole number, found {value!r}")
        return value
    if name == "tol":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise DataError(f"{where}: expected a number between 0 and 1, found {value!r}")
        return float(value)
    if name == "fault_tolerant":
        if not isinstance(value, bool):
            raise DataError(f"{where}: expected true or false, found {value!r}")
        return value
    if name == "key":
        if not isinstance(value, str) or not value:
            raise DataError(f"{where}: expected a column name, found {value!r}")
        return value
    raise AssertionError(name)
