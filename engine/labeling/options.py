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
| ``fit_on`` | ``'auto'`` | the label model's input: ``'patterns'`` (distinct vote patterns), ``'rows'`` (each row), ``'auto'`` (see :mod:`engine.labeling.fit_path`) |
| ``storage`` | ``'auto'`` | the label table: a view over the rows' stored votes and the label model, or ``'table'`` (see :mod:`engine.labeling.storage`) |
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from sqlglot import exp

from engine.labeling.classes import LabelClasses
from engine.options import read_options

MODELS = ("label_model", "majority")


@dataclass(frozen=True)
class LabelOptions:
    classes: LabelClasses | None = None
    model: str = "label_model"
    seed: int = 0
    key: str | None = None
    max_iter: int = 100
    tol: float = 1e-5
    fault_tolerant: bool = False
    fit_on: str = "auto"
    storage: str = "auto"

    def to_json(self, classes: LabelClasses, key: str, fit_on: str | None = None, storage: str | None = None) -> str:
        """Every option in force (the inferred classes and key, and the path and storage
        ``'auto'`` chose, included), for the catalog."""
        values = asdict(self)
        values.update(classes=list(classes.values), key=key, fit_on=fit_on or self.fit_on,
                      storage=storage or self.storage)
        return json.dumps(values, sort_keys=True)


def label_options(node: exp.Expr) -> LabelOptions:
    """The statement's options (its class's ``OPTIONS`` table), as LabelOptions."""
    values: dict[str, Any] = read_options(node)
    statement = getattr(type(node), "NAME", "LABEL")
    if "classes" in values:
        values["classes"] = LabelClasses.from_values(values["classes"], where=f"{statement} option classes")
    return LabelOptions(**values)
