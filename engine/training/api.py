"""The entry points a ``CREATE MODEL ... AS <query>`` executor calls: :func:`train` (reads
the query, trains, writes nothing) and :func:`engine.training.lineage.record` (writes the
versions into the catalog, inside the caller's transaction).

``train`` checks everything it can before reading a row (options, columns, architectures,
the model fine-tuned from), materializes the query once into partitions in a temporary
folder, trains the configurations with the strategy the options ask for, and deletes the
folder, whether it succeeds, fails or is cancelled.

| options | strategy |
| --- | --- |
| one configuration | plain training (``pipeline`` with ``pipeline_stages``/``micro_batches``, ``spilling`` with ``device_memory``) |
| one configuration, ``workers = N > 1`` | ``data parallel``: N processes, torch.distributed |
| a grid, one worker | the configurations one after another (their shards alternating with ``device_memory``) |
| a grid, several workers (the default: one per core) | ``model hopping``: Cerebro's model hopper |

>>> import duckdb
>>> duck = duckdb.connect()
>>> _ = duck.execute("CREATE TABLE t AS SELECT range AS id, range % 10 AS x, "
...                  "CASE WHEN range % 10 < 5 THEN 'small' ELSE 'large' END AS label FROM range(400)")
>>> outcome = train(duck, "SELECT id, x, label FROM t", parse_options({"architecture": "mlp", "lr": 0.1, "epochs": 4}))
>>> outcome.strategy, outcome.best_result.final.val_accuracy > 0.9, outcome.data.fingerprint.rows
('plain', True, 400)
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb

from engine.errors import DataError, OperationalError, ProgrammingError
from engine.inference.model_catalog import ModelSpec
from engine.training.architectures import architecture_kind
from engine.training.materialize import TrainingData, materialize
from engine.training.options import TrainingOptions, parse_options
from engine.training.progress import CancelCheck, ProgressCallback
from engine.training.source import DataSpec, find_label_run, resolve_data, settle, source_relation

__all__ = ["ParentModel", "TrainingOutcome", "parse_options", "train"]


@dataclass(frozen=True)
class ParentModel:
    """The catalog model a run fine-tunes from."""

    name: str
    version: int
    spec: ModelSpec
    weights: bytes = field(repr=False)


@dataclass(frozen=True)
class TrainingOutcome:
    """What :func:`train` made: every configuration's weights and history, the best one, and
    what lineage needs.  Nothing of it is in the catalog until it is recorded."""

    query: str
    options: TrainingOptions
    data: TrainingData                    # its folder no longer exists
    results: tuple[Any, ...]              # TrainedConfiguration, one per configuration, in grid order
    best: int                             # position of the best configuration in results
    strategy: str                         # 'plain', 'pipeline', 'spilling', 'model hopping', 'data parallel'
    schedule: dict[str, Any]
    wall_seconds: float
    parent: ParentModel | None = None
    materialize_seconds: float = 0.0     # of wall_seconds: reading the query into partitions

    @property
    def best_result(self) -> Any:
        """The best configuration's result."""
        return self.results[self.best]

    def architecture(self, result: Any) -> str:
        """The architecture a configuration was built with."""
        name = result.configuration.architecture or (self.parent.spec.architecture if self.parent else None)
        assert name is not None
        return name

    def architecture_options(self, result: Any) -> dict[str, Any]:
        """What rebuilds the network besides its name and class count."""
        if self.architecture(result) == "mlp":
            return {"in_features": self.data.input_shape[0], "hidden": list(self.options.hidden)}
        return {}

    def model_spec(self, result: Any) -> ModelSpec:
        """The catalog's description of a trained configuration's model."""
        image = self.data.kind == "image"
        return ModelSpec(
            architecture=self.architecture(result), num_classes=len(self.data.classes),
            input_size=(self.data.input_shape[0], self.data.input_shape[1]) if image else None,
            mean=self.data.mean, std=self.data.std, labels=self.data.labels,
            inputs=None if image else tuple(c.lower() for c in self.data.inputs),
        )


def train(duck: duckdb.DuckDBPyConnection, query_sql: str, options: TrainingOptions, *,
          progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
          rows: Any = None, data_parallel: Any = None) -> TrainingOutcome:
    """Train a model (a grid of them) on the rows of ``query_sql``; writes nothing.

    ``rows``: the query's rows as an Arrow stream when the caller already ran it (a query
    with model calls goes through Mallard's planner); ``query_sql`` is still the lineage's
    query and tells which LABEL run's table it reads.  ``progress`` is called now and then
    with a :class:`~engine.training.progress.TrainingProgress`; ``cancel`` is polled between
    batches and stops training with :class:`~engine.training.progress.Cancelled`.
    """
    from engine.training.trainer import Reporter, Setup

    started = time.perf_counter()
    relation = source_relation(duck, query_sql, rows)
    spec = resolve_data(relation, options)
    parent = load_parent(duck, options.from_model) if options.from_model else None
    if parent is not None and parent.spec.architecture == "mlp" and "hidden" not in options.given:
        options = dataclasses.replace(options, hidden=parent_hidden(parent))  # the parent's layer widths
    _check_architectures(options, spec, parent)
    label_run = find_label_run(duck, query_sql)
    folder = tempfile.mkdtemp(prefix="mallard_training_")
    try:
        settle(duck)
        reading = time.perf_counter()
        data = materialize(relation, spec, options, folder, label_run, cancel)
        reading = time.perf_counter() - reading
        parent_weights = None
        if parent is not None:
            data = dataclasses.replace(data, mean=parent.spec.mean, std=parent.spec.std)
            parent_weights = os.path.join(folder, "parent.safetensors")
            with open(parent_weights, "wb") as f:
                f.write(parent.weights)
        setup = Setup.of(data, options, parent.spec.architecture if parent else None, parent_weights)
        reporter = Reporter(progress, cancel)
        results, strategy, schedule = _run(options, setup, reporter, data_parallel)
        from engine.training.grid import best_configuration

        return TrainingOutcome(query_sql, options, data, tuple(results), best_configuration(results), strategy,
                               schedule, time.perf_counter() - started, parent, reading)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(options: TrainingOptions, setup: Any, reporter: Any,
         data_parallel: Any = None) -> tuple[list[Any], str, dict[str, Any]]:
    from engine.training.grid import rung_survivors, train_in_process

    configurations = options.configurations
    workers = options.worker_count()
    survivors = rung_survivors(configurations[0].epochs, len(configurations), options.successive_halving)
    if options.is_grid and workers > 1:
        from engine.training.hopper import train_hopper

        results, schedule = train_hopper(configurations, setup, workers, survivors, reporter)
        return results, "model hopping", schedule
    if workers > 1 and data_parallel is not None:
        result = data_parallel(configurations[0], setup, workers, reporter)
        return [result], "data parallel on the cluster", dict(result.extra)
    if workers > 1:
        from engine.training.distributed import train_data_parallel

        return [train_data_parallel(configurations[0], setup, workers, reporter)], "data parallel", {"workers": workers}
    try:
        results = train_in_process(configurations, setup, survivors, reporter)
    except (RuntimeError, MemoryError) as e:  # torch cannot allocate the network or its device memory
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OperationalError(f"training failed: {first} (a smaller network, batch_size or device_memory "
                               "may fit)") from e
    strategy = ("spilling" if options.device_memory is not None
                else "pipeline" if options.pipeline_stages > 1 or options.micro_batches > 1 else "plain")
    schedule = dict(results[0].extra.items()) if strategy != "plain" else {}
    if strategy == "spilling":
        schedule["peak_resident_bytes"] = max(r.extra["peak_resident_bytes"] for r in results)
    return results, strategy, schedule


def _check_architectures(options: TrainingOptions, spec: DataSpec, parent: ParentModel | None) -> None:
    for configuration in options.configurations:
        name = configuration.architecture or (parent.spec.architecture if parent else None)
        if name is None:
            raise ProgrammingError("training needs WITH (architecture = '<name>') or from_model")
        kind = architecture_kind(name)
        if kind != spec.kind:
            given = f"an image column ({spec.inputs[0]})" if spec.kind == "image" else \
                f"numeric columns ({', '.join(spec.inputs)})"
            hint = "mlp" if spec.kind == "numeric" else "small_cnn or tiny_cnn"
            raise DataError(f"architecture {name} takes {'images' if kind == 'image' else 'numeric columns'}, "
                            f"but the training query gives {given}; use {hint}")
        if parent is not None and name != parent.spec.architecture:
            raise DataError(f"from_model = '{parent.name}' is a {parent.spec.architecture}; "
                            f"architecture = '{name}' cannot start from its weights")
    built = {c.architecture or (parent.spec.architecture if parent is not None else "") for c in options.configurations}
    if "hidden" in options.given and "mlp" not in built:
        raise DataError("option hidden sets mlp's layer widths; the architecture is not mlp")


def parent_hidden(parent: ParentModel) -> tuple[int, ...]:
    """The hidden layer widths of an ``mlp`` parent, read from its weights."""
    from engine.inference.weights import from_safetensors

    state = from_safetensors(parent.weights)
    widths = sorted((int(key.split(".")[1]), int(value.shape[0])) for key, value in state.items()
                    if key.startswith("features.") and key.endswith(".weight") and key.split(".")[1].isdigit())
    return tuple(width for _, width in widths)


def load_parent(duck: duckdb.DuckDBPyConnection, name: str, version: int | None = None) -> ParentModel:
    """The catalog model ``name`` (its current version, or ``version``), to fine-tune from."""
    from engine.inference.model_catalog import require_model
    from engine.training.lineage import catalog_session, version_of

    session = catalog_session(duck)
    found = require_model(session, name) if version is None else version_of(session, name, version)
    blob = session.scalar("SELECT weights FROM mallard.model_versions WHERE model = ? AND version = ?",
                          [found.model, found.version])
    return ParentModel(found.model, found.version, found.spec, bytes(blob))
