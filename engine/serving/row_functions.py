"""A numeric model as a vectorized SQL function: ``m(a, b)``, ``logits(m, a, b)``, ``features(m, a, b)``.

The planner turns each (model, output) a statement uses into a function it registers for
the statement (:mod:`engine.planner.lift_row_model_calls`); this module makes that function.
DuckDB calls it on vectors of rows as Arrow arrays (about two thousand rows a call, on
DuckDB's threads); each call is one network call of the model's current version through
:class:`~engine.serving.predictor.Predictor`, the computation behind ``predict(...)`` and the
server, so ``m(a, b)`` and ``predict(m, ...)`` agree exactly.  Arguments are read as DOUBLE
(DuckDB casts integers and decimals); a NULL argument gives NULL.

>>> import engine
>>> con = engine.connect(progress="off")
>>> _ = con.execute("CREATE TABLE t AS SELECT range AS id, range % 10 AS x, "
...                 "CASE WHEN range % 10 < 5 THEN 'small' ELSE 'large' END AS label FROM range(400)")
>>> _ = con.execute("CREATE MODEL sizes WITH (architecture = 'mlp', epochs = 30, lr = 0.1, workers = 1) "
...                 "AS SELECT x, label FROM t")
>>> con.execute("SELECT x, sizes(x).label FROM t WHERE id IN (1, 8) ORDER BY x").fetchall()
[(1, 'small'), (8, 'large')]
>>> con.execute("SELECT len(logits(sizes, 3.5)), sizes(NULL).label").fetchall()
[(2, None)]
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from engine.planner.annotations import RowFunctionRequest
    from engine.serving.predictor import Predictor
    from engine.session import Session

#: The SQL type each output of a numeric model's function returns.
RETURN_TYPES = {
    "prediction": "STRUCT(label VARCHAR, class_id INTEGER, score DOUBLE)",
    "logits": "FLOAT[]",
    "features": "FLOAT[]",
}


def row_function(session: Session, request: RowFunctionRequest) -> tuple[Callable[..., pa.Array], list[str], str]:
    """The function, its parameter types and its return type (SQL type names) for ``request``,
    with the model's current version loaded; ProgrammingError when the model is gone or is no
    longer numeric with that many inputs."""
    from engine.errors import ProgrammingError
    from engine.inference.model_catalog import require_version
    from engine.serving.predictor import Predictor

    version = require_version(session, request.model, None)
    predictor = Predictor.load(session, version)
    if not predictor.input.is_numeric or len(predictor.input.columns) != request.arity:
        raise ProgrammingError(f"model {request.model} version {version.version} does not take {request.arity} "
                               f"numbers (it takes {predictor.input.describe()}); plan the statement again")
    compute = _OUTPUTS[request.output]

    def call(*columns: pa.Array | pa.ChunkedArray) -> pa.Array:
        return compute(predictor, _matrix(columns))

    # DuckDB counts a function's parameters from its signature: say there are `arity` of them
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(request.arity)])
    return call, ["DOUBLE"] * request.arity, RETURN_TYPES[request.output]


def explain_row_function(session: Session, request: RowFunctionRequest) -> str:
    """What a numeric model's function does (EXPLAIN shows it): version, inputs, output, how it is called."""
    from engine.inference.model_catalog import require_version
    from engine.serving.model_inputs import model_input

    version = require_version(session, request.model, None)
    inputs = model_input(version)
    return "\n".join([
        f"{request.relation}: {version.model} (version {version.version}, {version.spec.architecture}) "
        f"OUTPUTS {request.output} {RETURN_TYPES[request.output]}",
        f"  inputs       {', '.join(inputs.columns) if inputs.is_numeric else inputs.describe()} (as DOUBLE, in this order)",
        "  runs         once per vector of rows DuckDB passes (about 2,048): one network call each; NULL in, NULL out",
    ])


def _matrix(columns: tuple[pa.Array | pa.ChunkedArray, ...]) -> np.ndarray:
    """The (rows, inputs) float64 matrix of DuckDB's argument vectors (NULL reads as NaN; DuckDB
    gives NULL for those rows whatever is computed)."""
    arrays = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]
    values = np.empty((len(arrays[0]) if arrays else 0, len(arrays)), dtype=np.float64)
    for j, array in enumerate(arrays):
        values[:, j] = array.to_numpy(zero_copy_only=False)
    return values


def _prediction(predictor: Predictor, values: np.ndarray) -> pa.Array:
    from engine.inference.frame_results import PREDICTION_TYPE

    found = predictor.predict(values)
    ids = pa.array(found.class_ids, pa.int32())
    labels = pa.array(predictor.label_names, pa.string()).take(ids)
    return pa.StructArray.from_arrays([labels, ids, pa.array(found.scores, pa.float64())], fields=list(PREDICTION_TYPE))


def _logits(predictor: Predictor, values: np.ndarray) -> pa.Array:
    from engine.inference.frame_results import float_lists

    return float_lists(predictor.numeric_outputs(values)[0])


def _features(predictor: Predictor, values: np.ndarray) -> pa.Array:
    from engine.inference.frame_results import float_lists

    return float_lists(predictor.numeric_outputs(values)[1])


_OUTPUTS: dict[str, Callable[[Any, np.ndarray], pa.Array]] = {
    "prediction": _prediction, "logits": _logits, "features": _features,
}
