"""``evaluate(<model>, (<query>))``: a model version's accuracy, loss, per-class precision and
recall, and confusion matrix over a query's rows, streamed in Arrow batches.

The query gives the model's input columns (a trained model's, or ``frame`` with ``height``
and ``width`` for other models) and the true class in the label column (the one the model
was trained on, else ``label``), as class names or ids.

>>> import engine
>>> from engine.training.api import train
>>> from engine.training.lineage import record
>>> from engine.training.options import parse_options
>>> con = engine.connect()
>>> _ = con.execute("CREATE TABLE t AS SELECT range AS id, range % 10 AS x, "
...                 "CASE WHEN range % 10 < 5 THEN 'small' ELSE 'large' END AS label FROM range(300)")
>>> _ = record(con.duckdb_connection, "sizes", train(con.duckdb_connection, "SELECT * FROM t",
...            parse_options({"architecture": "mlp", "epochs": 4, "lr": 0.1})))
>>> result = evaluate(con.duckdb_connection, "sizes", "SELECT x, label FROM t WHERE id < 100")
>>> result.rows, result.accuracy > 0.9, result.classes
(100, True, ('large', 'small'))
>>> [row[0] for row in result.class_rows()], sum(r[2] for r in result.confusion_rows())
(['large', 'small'], 100)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import DataError, translate
from engine.training.loading import ModelSignature, build_for, model_signature
from engine.training.materialize import check_batch_inputs, data_columns, fixed_width_view
from engine.training.options import parse_options
from engine.training.source import resolve_data, settle, source_relation

BATCH_ROWS = {"image": 256, "numeric": 8192}


@dataclass(frozen=True)
class Evaluation:
    """A model's quality on a query's rows."""

    model: str
    version: int
    rows: int
    accuracy: float
    loss: float                                  # mean cross-entropy against the true class
    classes: tuple[str, ...]
    precision: tuple[float | None, ...]          # per class; None when the model never predicted it
    recall: tuple[float | None, ...]             # per class; None when no row has it
    support: tuple[int, ...]                     # rows of each true class
    confusion: tuple[tuple[int, ...], ...]       # confusion[true][predicted]

    def class_rows(self) -> list[tuple[str, float | None, float | None, int]]:
        """(class, precision, recall, support) per class."""
        return list(zip(self.classes, self.precision, self.recall, self.support))

    def confusion_rows(self) -> list[tuple[str, str, int]]:
        """(actual, predicted, rows) for every pair of classes."""
        return [(a, p, self.confusion[i][j]) for i, a in enumerate(self.classes) for j, p in enumerate(self.classes)]


def evaluate(duck: duckdb.DuckDBPyConnection, model: str, query_sql: str, *, version: int | None = None,
             label: str | None = None, rows: Any = None,
             progress: Callable[[int], None] | None = None) -> Evaluation:
    """Evaluate ``model`` (its current version, or ``version``) on the rows of ``query_sql``
    (or the Arrow stream ``rows`` made from it); ``progress`` gets the rows done so far."""
    import torch

    signature = model_signature(duck, model, version)
    network = build_for(signature)
    from engine.inference.weights import from_safetensors

    blob = duck.execute("SELECT weights FROM mallard.model_versions WHERE model = ? AND version = ?",
                        [signature.model, signature.version]).fetchall()[0][0]
    network.load_state_dict(from_safetensors(blob), strict=True)
    network.eval()
    relation = source_relation(duck, query_sql, rows)
    spec = resolve_data(relation, parse_options({"architecture": "mlp", "label": label or signature.label or "label",
                                                 "inputs": list(signature.inputs)}))
    classes = signature.spec.labels or tuple(f"class_{i}" for i in range(signature.spec.num_classes))
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    total_loss, done = 0.0, 0
    columns = ", ".join(c.sql("duckdb") for c in data_columns(spec))
    try:
        settle(duck)
        reader = relation.project(columns).to_arrow_reader(BATCH_ROWS[spec.kind])
        for batch in reader:
            batch = batch.filter(pc.is_valid(batch.column("__label"))) if batch.num_rows else batch
            if batch.num_rows == 0:
                continue
            x = _inputs(batch, spec, signature)
            truth = _class_ids(batch.column("__label"), signature, classes)
            with torch.no_grad():
                logits = network(x)
            total_loss += float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(truth), reduction="sum"))
            np.add.at(confusion, (truth, logits.argmax(1).numpy()), 1)
            done += batch.num_rows
            if progress is not None:
                progress(done)
    except duckdb.Error as e:
        raise translate(e) from e
    if done == 0:
        raise DataError("evaluate: the query gave no rows with a label")
    return _summary(signature, classes, confusion, total_loss, done)


def _inputs(batch: pa.RecordBatch, spec: Any, signature: ModelSignature) -> Any:
    import torch

    shape = check_batch_inputs(batch, spec)
    model_spec = signature.spec
    view = fixed_width_view(batch.column("__x"), shape, spec.kind)
    if spec.kind == "image":
        if model_spec.input_size is not None and tuple(model_spec.input_size) != tuple(shape[:2]):
            raise DataError(f"model {signature.model} takes {model_spec.input_size[0]}x{model_spec.input_size[1]} "
                            f"images, the query gives {shape[0]}x{shape[1]}")
        from engine.training.batches import frames_to_input

        return frames_to_input(view, model_spec.mean, model_spec.std)
    if len(model_spec.mean) != shape[0]:
        raise DataError(f"model {signature.model} takes {len(model_spec.mean)} features "
                        f"({', '.join(signature.inputs)}), the query gives {shape[0]}")
    mean = torch.tensor(model_spec.mean, dtype=torch.float32)
    std = torch.tensor(model_spec.std, dtype=torch.float32)
    return torch.from_numpy(np.array(view, dtype=np.float32)).sub(mean).div_(std)


def _class_ids(column: pa.Array, signature: ModelSignature, classes: tuple[str, ...]) -> np.ndarray:
    values = column.to_pylist()
    if signature.spec.labels is None:
        ids = np.asarray(values, dtype=np.int64) if pa.types.is_integer(column.type) else None
        if ids is None or ids.min() < 0 or ids.max() >= len(classes):
            raise DataError(f"model {signature.model} has no class names: expected class ids 0..{len(classes) - 1} "
                            f"in the label column, found {values[:3]!r}...")
        return ids
    position = {name: i for i, name in enumerate(classes)}
    try:
        return np.fromiter((position[str(v)] for v in values), dtype=np.int64, count=len(values))
    except KeyError as e:
        raise DataError(f"label {e.args[0]!r} is not one of model {signature.model}'s classes {list(classes)!r}") from None


def _summary(signature: ModelSignature, classes: tuple[str, ...], confusion: np.ndarray, loss: float,
             rows: int) -> Evaluation:
    predicted = confusion.sum(0)
    actual = confusion.sum(1)
    hits = np.diag(confusion)
    precision = tuple(float(hits[i] / predicted[i]) if predicted[i] else None for i in range(len(classes)))
    recall = tuple(float(hits[i] / actual[i]) if actual[i] else None for i in range(len(classes)))
    return Evaluation(signature.model, signature.version, rows, float(hits.sum() / rows), loss / rows, tuple(classes),
                      precision, recall, tuple(int(a) for a in actual),
                      tuple(tuple(int(v) for v in row) for row in confusion))
