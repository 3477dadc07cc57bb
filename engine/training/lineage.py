"""The catalog side of training: recording trained versions with their lineage (inside the
caller's transaction), and reading it back (history per epoch, pruning old versions).

A training statement writes one row of ``mallard.training_runs`` (query, data fingerprint,
options, LABEL run, parent model, strategy, wall time), one model version per configuration
through :func:`engine.inference.model_catalog.add_version` (the best made current, its parent the
model fine-tuned from or the version it replaces), one row per version of
``mallard.model_training`` and one per epoch of ``mallard.training_history``.
``mallard.model_lineage`` joins them.

>>> import engine
>>> from engine.training.api import train
>>> from engine.training.options import parse_options
>>> con = engine.connect()
>>> _ = con.execute("CREATE TABLE t AS SELECT range AS id, range % 10 AS x, "
...                 "CASE WHEN range % 10 < 5 THEN 'small' ELSE 'large' END AS label FROM range(300)")
>>> outcome = train(con.duckdb_connection, "SELECT * FROM t", parse_options({"architecture": "mlp", "lr": [0.1, 0.05], "epochs": 2, "workers": 1}))
>>> recorded = record(con.duckdb_connection, "sizes", outcome)
>>> recorded.versions, recorded.best_version in recorded.versions
((1, 2), True)
>>> [r[1] for r in training_history(con.duckdb_connection, "sizes")]
[1, 2, 1, 2]
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import duckdb

from engine.errors import DataError, OperationalError, ProgrammingError, translate

if TYPE_CHECKING:
    from engine.session import Session
    from engine.training.api import TrainingOutcome


class CatalogSession:
    """What the catalog functions of :mod:`engine.inference.model_catalog` use of a session:
    ``sql(query, params)`` on a DuckDB connection, with errors translated."""

    def __init__(self, duck: duckdb.DuckDBPyConnection) -> None:
        self.duck = duck

    def sql(self, query: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Run one statement; DuckDB's errors become engine errors."""
        try:
            return self.duck.execute(query, params) if params else self.duck.execute(query)
        except duckdb.Error as e:
            raise translate(e) from e

    def scalar(self, query: str, params: Sequence[Any] | None = None) -> Any:
        """The first value of the first row of a query (None when it has no row)."""
        row = self.sql(query, params).fetchone()
        return None if row is None else row[0]

    def row(self, query: str, params: Sequence[Any] | None = None) -> tuple[Any, ...]:
        """The one row of a query that returns one; OperationalError when it returns none."""
        found = self.sql(query, params).fetchone()
        if found is None:
            raise OperationalError(f"expected a row from {query}")
        return found


def catalog_session(duck: duckdb.DuckDBPyConnection) -> Session:
    """A :class:`CatalogSession` on ``duck``, typed as the Session the catalog functions take
    (they use only ``sql``, ``scalar`` and ``row`` of it)."""
    return cast("Session", CatalogSession(duck))


@dataclass(frozen=True)
class RecordedModel:
    """What :func:`record` wrote."""

    model: str
    run_id: int
    versions: tuple[int, ...]        # one per configuration, in grid order
    best_version: int


def check_target(duck: duckdb.DuckDBPyConnection, name: str, replace: bool) -> str:
    """The model's catalog name; ProgrammingError if it is taken (without OR REPLACE) or unusable.
    Call it before training, so a long run does not end in a name clash."""
    from engine.inference.create_model import check_model_name

    return check_model_name(catalog_session(duck), name, replace)


def record(duck: duckdb.DuckDBPyConnection, model_name: str, outcome: TrainingOutcome,
           replace: bool = False) -> RecordedModel:
    """Store every configuration of ``outcome`` as a version of ``model_name`` (the best one
    current) with its lineage.  Runs in the caller's transaction: it neither begins nor commits."""
    from engine.inference.model_catalog import add_version

    session = catalog_session(duck)
    name = check_target(duck, model_name, replace)
    run_id = int(session.scalar("SELECT coalesce(max(run_id), 0) + 1 FROM mallard.training_runs"))
    parent = outcome.parent
    order = [outcome.best] + [i for i in range(len(outcome.results)) if i != outcome.best]
    versions: dict[int, int] = {}
    for position in order:
        result = outcome.results[position]
        options = {**outcome.options.given, **result.configuration.as_dict(),
                   "architecture": outcome.architecture(result)}
        options.pop("inputs", None)  # the catalog reads "inputs" as a numeric model's columns: add_version sets it
        versions[position] = add_version(
            session, name, outcome.model_spec(result), result.state, source=None, created_by="TRAIN",
            description=outcome.options.description, options=options, metrics=result.metrics(),
            parent_version=parent.version if parent is not None else None, make_current=position == outcome.best,
        )
    _insert_run(session, run_id, name, outcome, versions[outcome.best])
    for position, version in versions.items():
        _insert_version(session, name, version, run_id, outcome, outcome.results[position], position == outcome.best)
    return RecordedModel(name, run_id, tuple(versions[i] for i in range(len(outcome.results))), versions[outcome.best])


def _insert_run(session: Session, run_id: int, name: str, outcome: Any, best_version: int) -> None:
    data = outcome.data
    session.sql(
        "INSERT INTO mallard.training_runs (run_id, model, query, data_rows, data_hash, train_rows, holdout_rows,"
        " dropped_rows, input_kind, inputs, input_shape, label_column, options, label_run_id, parent_model,"
        " parent_version, configurations, best_version, strategy, schedule, wall_seconds)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, name, outcome.query, data.fingerprint.rows, data.fingerprint.hash, sum(data.partition_rows),
         data.holdout_rows, data.dropped_rows, data.kind, list(data.inputs), list(data.input_shape),
         outcome.options.label if data.has_label else None, json.dumps(outcome.options.given), data.label_run,
         outcome.parent.name if outcome.parent else None, outcome.parent.version if outcome.parent else None,
         len(outcome.results), best_version, outcome.strategy, json.dumps(outcome.schedule), outcome.wall_seconds],
    )


def _insert_version(session: Session, name: str, version: int, run_id: int, outcome: Any, result: Any,
                    best: bool) -> None:
    configuration = result.configuration
    session.sql(
        "INSERT INTO mallard.model_training (model, version, run_id, configuration, architecture_options, seed,"
        " epochs_run, stopped_early, best, train_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [name, version, run_id, json.dumps(configuration.as_dict()), json.dumps(outcome.architecture_options(result)),
         configuration.seed, len(result.history), result.stopped_early, best, result.seconds],
    )
    session.duck.executemany(
        "INSERT INTO mallard.training_history (model, version, epoch, train_loss, val_loss, val_accuracy, train_rows,"
        " seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [[name, version, m.epoch, m.train_loss, m.val_loss, m.val_accuracy, m.rows, m.seconds] for m in result.history],
    )


def training_history(duck: duckdb.DuckDBPyConnection, model: str, version: int | None = None) -> list[tuple[Any, ...]]:
    """(version, epoch, train_loss, val_loss, val_accuracy, train_rows, seconds) of every
    trained version of ``model`` (or one), by version and epoch."""
    session = catalog_session(duck)
    _require(session, model)
    return session.sql(
        "SELECT version, epoch, train_loss, val_loss, val_accuracy, train_rows, seconds FROM mallard.training_history"
        " WHERE model = ? AND (? IS NULL OR version = ?) ORDER BY version, epoch", [model.lower(), version, version],
    ).fetchall()


def prune_versions(duck: duckdb.DuckDBPyConnection, model: str, keep: int) -> int:
    """Delete all but the newest ``keep`` versions of ``model`` (never the current one), with
    their training rows and cached results; returns how many were deleted."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise DataError(f"keep: expected a positive whole number of versions, found {keep!r}")
    session = catalog_session(duck)
    current = _require(session, model)
    name = model.lower()
    doomed = [r[0] for r in session.sql(
        "SELECT version FROM mallard.model_versions WHERE model = ? AND version <> ? ORDER BY version DESC OFFSET ?",
        [name, current, keep - 1]).fetchall()]
    for table in ("inference_cache", "inference_state", "training_history", "model_training", "model_versions"):
        session.sql(f"DELETE FROM mallard.{table} WHERE model = ? AND list_contains(?, version)", [name, doomed])
    return len(doomed)


def _require(session: Session, model: str) -> int:
    from engine.inference.model_catalog import require_model

    return require_model(session, model).version


def version_of(session: Any, name: str, version: int) -> Any:
    """The ModelVersion ``version`` of model ``name``; ProgrammingError if there is none."""
    from engine.inference.model_catalog import _VERSION_COLUMNS, _version_of, require_model

    require_model(session, name)
    row = session.sql(f"SELECT {_VERSION_COLUMNS} FROM mallard.model_versions WHERE model = ? AND version = ?",
                      [name.lower(), version]).fetchone()
    if row is None:
        known = [r[0] for r in session.sql("SELECT version FROM mallard.model_versions WHERE model = ? ORDER BY 1",
                                           [name.lower()]).fetchall()]
        raise ProgrammingError(f"model {name.lower()} has no version {version}; its versions are {known}")
    return _version_of(row)
