"""Training in the database: models from queries (``CREATE MODEL ... WITH (...) AS <query>``).

A query's rows are materialized once into Arrow IPC partitions (:mod:`.materialize`) and
streamed back in batches (:mod:`.batches`); networks without batch norm
(:mod:`.architectures`) train in a seeded loop (:mod:`.trainer`) with a noise-aware loss
(:mod:`.objective`); a grid of configurations trains one after another or hopping between
worker processes (:mod:`.grid`, :mod:`.hopper`, Cerebro), optionally with successive
halving; one configuration can be pipelined (:mod:`.pipeline`, GPipe), spilled shard by
shard under a device-memory budget (:mod:`.spilling`, Hydra) or trained data-parallel
(:mod:`.distributed`, DDP).  :mod:`.lineage` records versions in the catalog,
:mod:`.evaluation`, :mod:`.export` and :mod:`.loading` use them.

The executor of the statement calls, in order::

    options = parse_options(with_options)                        # DataError / ProgrammingError
    check_target(duck, name, replace)                           # before the long part
    outcome = train(duck, query_sql, options, progress=..., cancel=...)   # no catalog writes
    record(duck, name, outcome, replace)                        # inside the statement's transaction

Importing this package does not import torch (the names below load on first use).

>>> import engine.training
>>> engine.training.parse_options({"architecture": "mlp", "lr": [0.1, 0.01]}).is_grid
True
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from engine.training.options import Configuration, TrainingOptions, parse_options
from engine.training.progress import Cancelled, TrainingProgress

_LAZY = {
    "train": "api", "TrainingOutcome": "api", "ParentModel": "api", "load_parent": "api",
    "record": "lineage", "check_target": "lineage", "RecordedModel": "lineage", "training_history": "lineage",
    "prune_versions": "lineage",
    "evaluate": "evaluation", "Evaluation": "evaluation",
    "export_model": "export", "load_export": "export", "ExportedModel": "export",
    "load_model": "loading", "model_signature": "loading", "ModelSignature": "loading",
    "BUILT_INS": "architectures",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.training' has no attribute {name!r}")
    return getattr(import_module(f"engine.training.{module}"), name)


__all__ = ["parse_options", "TrainingOptions", "Configuration", "TrainingProgress", "Cancelled", *_LAZY]
