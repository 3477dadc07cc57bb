"""The SQL functions of models, announced to the router and the planner.

Every model in the catalog is a function ``<model>(frame)`` (a STRUCT of label, class_id,
score); ``features(<model>, frame)`` and ``logits(<model>, frame)`` give its penultimate
vector and pre-softmax scores; ``occlusion_map(<model>, (<frame query>), ...)`` and
``predict(<model>, (<query>), ...)`` are table functions.  None of them is a DuckDB function: the planner lifts their calls into inference
scans (see ``engine/planner``).

>>> import engine
>>> con = engine.connect()
>>> sorted(planned_functions(con.session))
['features', 'logits', 'occlusion_map', 'predict']
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.session import Session

#: Kinds of planned functions: a model itself, or one of the functions taking a model.
MODEL, FEATURES, LOGITS, OCCLUSION_MAP, PREDICT = "model", "features", "logits", "occlusion_map", "predict"

#: Functions taking a model as their first argument, by name.
MODEL_ARGUMENT_FUNCTIONS = (FEATURES, LOGITS, OCCLUSION_MAP, PREDICT)

#: The table functions among them (called in FROM; never per row).
TABLE_FUNCTIONS = (OCCLUSION_MAP, PREDICT)


@dataclass(frozen=True)
class PlannedFunction:
    """What a planned function name stands for: ``kind`` is one of MODEL, FEATURES, LOGITS, OCCLUSION_MAP, PREDICT."""

    name: str
    kind: str


def planned_functions(session: Session) -> dict[str, PlannedFunction]:
    """Every model of the catalog, plus features, logits, occlusion_map and predict."""
    from engine.inference.model_catalog import model_names

    found = {name: PlannedFunction(name, name) for name in MODEL_ARGUMENT_FUNCTIONS}
    for name in model_names(session):
        found[name] = PlannedFunction(name, MODEL)
    return found
