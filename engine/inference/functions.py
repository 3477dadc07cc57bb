"""The SQL functions of models, announced to the router and the planner.

Every model in the catalog is a function: ``<model>(frame)`` for an image model,
``<model>(x1, x2, ...)`` for a numeric one (its input columns' values, in order), a STRUCT of
label, class_id, score; ``features(<model>, ...)`` and ``logits(<model>, ...)`` give its
penultimate vector and pre-softmax scores; ``occlusion_map(<model>, (<frame query>), ...)``,
``predict(<model>, (<query>), ...)`` and ``evaluate(<model>, (<query>), ...)`` are table
functions.  None of them is a DuckDB function: the planner lifts their calls into inference
scans, relations computed first, or vectorized functions registered for the statement (see
``engine/planner``).

>>> import engine
>>> con = engine.connect()
>>> sorted(planned_functions(con.session))
['evaluate', 'features', 'logits', 'occlusion_map', 'predict']
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.session import Session

#: Kinds of planned functions: a model itself, or one of the functions taking a model.
MODEL, FEATURES, LOGITS, OCCLUSION_MAP, PREDICT, EVALUATE = (
    "model", "features", "logits", "occlusion_map", "predict", "evaluate")

#: Functions taking a model as their first argument, by name.
MODEL_ARGUMENT_FUNCTIONS = (FEATURES, LOGITS, OCCLUSION_MAP, PREDICT, EVALUATE)

#: The table functions among them (called in FROM; never per row).
TABLE_FUNCTIONS = (OCCLUSION_MAP, PREDICT, EVALUATE)


@dataclass(frozen=True)
class PlannedFunction:
    """What a planned function name stands for: ``kind`` is one of MODEL, FEATURES, LOGITS,
    OCCLUSION_MAP, PREDICT, EVALUATE.  A numeric model's ``inputs`` are the columns its current
    version reads, in order (None: an image model, called on frames)."""

    name: str
    kind: str
    inputs: tuple[str, ...] | None = None

    @property
    def is_numeric(self) -> bool:
        return self.kind == MODEL and self.inputs is not None


def planned_functions(session: Session) -> dict[str, PlannedFunction]:
    """Every model of the catalog (with a numeric model's inputs), plus features, logits,
    occlusion_map, predict and evaluate."""
    from engine.inference.model_catalog import current_version, model_names

    found = {name: PlannedFunction(name, name) for name in MODEL_ARGUMENT_FUNCTIONS}
    for name in model_names(session):
        version = current_version(session, name)
        inputs = version.spec.inputs if version is not None else None
        found[name] = PlannedFunction(name, MODEL, tuple(inputs) if inputs is not None else None)
    return found
