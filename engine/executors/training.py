"""Executors of the training statements: CREATE MODEL ... AS, EXPORT MODEL, EVALUATE MODEL.

Training is atomic: the query's rows are read and every configuration trained *outside* any
transaction, writing nothing; only then are the versions recorded, inside the statement's
transaction.  A failure, ``Connection.interrupt()`` or Ctrl-C before that leaves the catalog
as it was.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from engine.dialect.training import EvaluateModel, ExportModel, TrainModel, source_query
from engine.errors import OperationalError, ProgrammingError
from engine.options import read_options
from engine.statement_result import StatementResult

if TYPE_CHECKING:
    from engine.session import Session
    from engine.training.progress import TrainingProgress


def train_model(session: Session, node: TrainModel) -> StatementResult:
    """``CREATE [OR REPLACE] MODEL <name> [WITH (architecture = '...', label = '...', ...)] AS <query>``"""
    from engine.training import check_target, parse_options, record, train
    from engine.training.lineage import prune_versions
    from engine.training.progress import Cancelled

    session.require_writable("CREATE MODEL")
    given = read_options(node)
    if "device" not in given and session.settings["training_device"] != "cpu":
        given["device"] = session.settings["training_device"]
    options = parse_options(given)
    replace = bool(node.args.get("replace"))
    name = check_target(session.duck, node.this.name, replace)
    query = node.args["query"]
    written = query.meta.get("text")
    query_sql = written if isinstance(written, str) and "?" not in written else query.sql("duckdb")
    rows = _query_rows(session, query, "CREATE MODEL ... AS")
    from engine.cluster.training import cluster_data_parallel

    progress = _TrainingBar(session, name)
    try:
        outcome = train(session.duck, query_sql, options, progress=progress.report, cancel=session.cancel.is_set,
                        rows=rows, data_parallel=cluster_data_parallel(session))
    except Cancelled:
        session.cancel.clear()
        raise OperationalError(f"CREATE MODEL {name} was interrupted; no model and no version was kept") from None
    finally:
        progress.close()
    with session.atomic():
        recorded = record(session.duck, name, outcome, replace)
        kept = int(session.settings["model_versions_kept"])
        pruned = prune_versions(session.duck, name, kept) if kept else 0
    best = outcome.best_result
    accuracy = best.metrics().get("val_accuracy")
    grid = f", best of {len(recorded.versions)} configurations" if len(recorded.versions) > 1 else ""
    return StatementResult(rowcount=len(recorded.versions), message=(
        f"CREATE MODEL: {name} version {recorded.best_version} ({outcome.architecture(best)}, "
        f"{len(outcome.data.classes)} classes, {outcome.strategy}{grid}"
        f"{f', held-out accuracy {accuracy:.4f}' if isinstance(accuracy, float) else ''})"
        f"{f'; pruned {pruned} old versions' if pruned else ''}"
    ))


def _query_rows(session: Session, query: exp.Query, statement: str) -> duckdb.DuckDBPyRelation:
    """The query's rows as a lazy relation, planned like any statement (it may call models)."""
    from engine.executors.planned import run_planned_statement

    result = run_planned_statement(session, query, query.sql("duckdb"), None)
    if not isinstance(result.rows, duckdb.DuckDBPyRelation):
        raise ProgrammingError(f"{statement} expects a query that returns rows, found {query.sql('duckdb')}")
    return result.rows


class _TrainingBar:
    """The session's progress bar over every configuration's rows, with loss and throughput."""

    def __init__(self, session: Session, name: str) -> None:
        self.session, self.name = session, name
        self.bar: Any = None
        self.done: dict[int, int] = {}

    def report(self, p: TrainingProgress) -> None:
        if self.bar is None:
            self.bar = self.session.progress(p.rows_total * p.configurations, f"CREATE MODEL {self.name}", unit="row")
        self.done[p.configuration] = p.rows_done
        self.bar.n = sum(self.done.values())
        self.bar.set_postfix(config=f"{p.configuration + 1}/{p.configurations}", epoch=f"{p.epoch}/{p.epochs}",
                             loss=f"{p.loss:.4f}", rows_s=f"{p.rows_per_second:,.0f}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def export_model_statement(session: Session, node: ExportModel) -> StatementResult:
    """``EXPORT MODEL <name> TO '<file>.safetensors' [WITH (version = N)]``"""
    from engine.training.export import export_model

    path = node.args["path"]
    if not isinstance(path, exp.Literal) or not path.is_string:
        raise ProgrammingError(f"EXPORT MODEL expects the file path as a string, found {path.sql()}")
    version = read_options(node).get("version")
    target = os.path.abspath(os.path.expanduser(path.name))
    try:
        exported = export_model(session.duck, node.this.name, target, version=version)
    except OSError as e:
        raise OperationalError(f"EXPORT MODEL could not write {target}: {e.strerror or e}") from e
    return StatementResult(rowcount=1, message=(
        f"EXPORT MODEL: {exported.model} version {exported.version} to {exported.weights_path} "
        f"(sidecar {exported.sidecar_path})"
    ))


EVALUATION_SCHEMA = pa.schema([
    ("model", pa.string()), ("version", pa.int32()), ("class", pa.string()), ("support", pa.int64()),
    ("precision", pa.float64()), ("recall", pa.float64()), ("predicted_as", pa.map_(pa.string(), pa.int64())),
    ("accuracy", pa.float64()), ("loss", pa.float64()), ("rows", pa.int64()),
])


def evaluate_model(session: Session, node: EvaluateModel) -> StatementResult:
    """``EVALUATE MODEL <name> ON <table> | (<query>) [WITH (version = N, label = '<column>')]``:
    one row per true class with its support, precision, recall and the row of the confusion
    matrix (``predicted_as``: predicted class -> rows), and the model's accuracy and mean
    cross-entropy loss over all rows (the same on every row).  ``SELECT * FROM
    evaluate(<model>, (<query>))`` gives the same rows."""
    options = read_options(node)
    query = source_query(node.args["source"])
    rows = _query_rows(session, query, "EVALUATE MODEL")
    table = evaluation_table(session, node.this.name, query, rows, options.get("version"), options.get("label"))
    model, version, accuracy, count = (table.column(c)[0].as_py() for c in ("model", "version", "accuracy", "rows"))
    return StatementResult(rows=table, message=f"EVALUATE MODEL: {model} version {version}, "
                                               f"accuracy {accuracy:.4f} on {count} rows")


def evaluation_table(session: Session, model: str, query: exp.Query, rows: duckdb.DuckDBPyRelation,
                     version: int | None, label: str | None) -> pa.Table:
    """The evaluation of ``model`` over ``rows`` (the planned ``query``) as EVALUATION_SCHEMA's
    rows: one per true class (the model's classes, in order)."""
    from engine.training.evaluation import evaluate

    with session.progress(None, f"evaluate {model}", unit="row") as bar:
        def advance(done: int) -> None:
            bar.n = done
            bar.refresh()
            session.check_cancelled("evaluate")

        result = evaluate(session.duck, model, query.sql("duckdb"), version=version, label=label, rows=rows,
                          progress=advance)
    k = len(result.classes)
    return pa.table({
        "model": [result.model] * k, "version": [result.version] * k, "class": list(result.classes),
        "support": list(result.support), "precision": list(result.precision), "recall": list(result.recall),
        "predicted_as": [list(zip(result.classes, row)) for row in result.confusion],
        "accuracy": [result.accuracy] * k, "loss": [result.loss] * k, "rows": [result.rows] * k,
    }, schema=EVALUATION_SCHEMA)
