"""A catalog model version as a torch module, and what its input is (:class:`ModelSignature`).

Trained versions carry their input columns and what rebuilds their network (``mlp``'s
input width and hidden layers) in ``mallard.model_training``; other models (``CREATE MODEL
... FROM 'file'``) take frames.

>>> import engine, torch
>>> from engine.training.api import train
>>> from engine.training.lineage import record
>>> from engine.training.options import parse_options
>>> con = engine.connect()
>>> _ = con.execute("CREATE TABLE t AS SELECT range AS id, range % 10 AS x, range % 3 AS y, "
...                 "CASE WHEN range % 10 < 5 THEN 'small' ELSE 'large' END AS label FROM range(300)")
>>> _ = record(con.duckdb_connection, "sizes", train(con.duckdb_connection, "SELECT * FROM t",
...            parse_options({"architecture": "mlp", "epochs": 1, "hidden": [16]})))
>>> signature = model_signature(con.duckdb_connection, "sizes")
>>> signature.kind, signature.inputs, signature.spec.labels
('numeric', ('x', 'y'), ('large', 'small'))
>>> load_model(con.duckdb_connection, "sizes")(torch.zeros(1, 2)).shape
torch.Size([1, 2])
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from engine.errors import ProgrammingError
from engine.inference.model_catalog import ModelSpec
from engine.training.lineage import catalog_session, version_of

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelSignature:
    """A model version and what it takes."""

    model: str
    version: int
    spec: ModelSpec
    kind: str                              # 'image' or 'numeric'
    inputs: tuple[str, ...]                # input columns (frames: ('frame',))
    label: str | None                      # the label column it was trained on
    architecture_options: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""


def model_signature(duck: duckdb.DuckDBPyConnection, name: str, version: int | None = None) -> ModelSignature:
    """The signature of ``name``'s current version (or ``version``)."""
    from engine.inference.model_catalog import require_model

    session = catalog_session(duck)
    found = require_model(session, name) if version is None else version_of(session, name, version)
    row = session.sql(
        "SELECT t.architecture_options, r.input_kind, r.inputs, r.label_column FROM mallard.model_training t"
        " JOIN mallard.training_runs r ON r.run_id = t.run_id WHERE t.model = ? AND t.version = ?",
        [found.model, found.version],
    ).fetchone()
    if row is None:
        return ModelSignature(found.model, found.version, found.spec, "image", ("frame",), None, {},
                              found.weights_sha256)
    return ModelSignature(found.model, found.version, found.spec, row[1], tuple(row[2]), row[3], json.loads(row[0]),
                          found.weights_sha256)


def build_for(signature: ModelSignature) -> nn.Module:
    """An untrained network of the signature's architecture and shape."""
    from engine.training.architectures import BUILT_INS, build_network

    name, options = signature.spec.architecture, signature.architecture_options
    if name in BUILT_INS:
        return build_network(name, signature.spec.num_classes, in_features=options.get("in_features"),
                             hidden=tuple(options.get("hidden", (128, 64))))
    from engine.extensions import architectures
    from engine.extensions import build_network as build

    if name not in architectures():
        raise ProgrammingError(f"model {signature.model} needs architecture {name!r}, which is not registered in "
                               "this process; import the module that defines it with @architecture first")
    return build(name, num_classes=signature.spec.num_classes)


def load_model(duck: duckdb.DuckDBPyConnection, name: str, version: int | None = None) -> nn.Module:
    """Model ``name``'s current version (or ``version``) as a torch module, in eval mode."""
    from engine.inference.weights import from_safetensors

    signature = model_signature(duck, name, version)
    network = build_for(signature)
    blob = catalog_session(duck).scalar("SELECT weights FROM mallard.model_versions WHERE model = ? AND version = ?",
                                        [signature.model, signature.version])
    network.load_state_dict(from_safetensors(blob), strict=True)
    return network.eval()
