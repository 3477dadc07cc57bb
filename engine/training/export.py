"""``EXPORT MODEL m TO 'file.safetensors'``: the weights as stored (safetensors) and a JSON
sidecar beside them (``file.json``) saying how to use them: architecture and what rebuilds
it, class labels, the input (columns, kind, size) and its normalization, metrics and lineage.
:func:`load_export` reads both back into a torch module without the database, and
``CREATE MODEL ... FROM 'file.safetensors'`` takes its options from the sidecar
(:func:`sidecar_options`).

>>> import engine, os, tempfile, torch
>>> from engine.training.api import train
>>> from engine.training.lineage import record
>>> from engine.training.options import parse_options
>>> con = engine.connect()
>>> _ = con.execute("CREATE TABLE t AS SELECT range AS id, range % 10 AS x, "
...                 "CASE WHEN range % 10 < 5 THEN 'small' ELSE 'large' END AS label FROM range(200)")
>>> _ = record(con.duckdb_connection, "sizes", train(con.duckdb_connection, "SELECT * FROM t",
...            parse_options({"architecture": "mlp", "epochs": 1})))
>>> path = os.path.join(tempfile.mkdtemp(), "sizes.safetensors")
>>> exported = export_model(con.duckdb_connection, "sizes", path)
>>> network, sidecar = load_export(path)
>>> sidecar["architecture"], sidecar["labels"], sidecar["input"]["columns"]
('mlp', ['large', 'small'], ['x'])
>>> sorted(sidecar_options(path))                  # what CREATE MODEL ... FROM reads of the sidecar
['architecture', 'inputs', 'labels', 'mean', 'num_classes', 'std']
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from engine.errors import DataError
from engine.inference.model_catalog import ModelSpec
from engine.training.lineage import catalog_session
from engine.training.loading import ModelSignature, build_for, model_signature

if TYPE_CHECKING:
    from torch import nn

SUFFIX = ".safetensors"
FORMAT = "mallard-model/1"


@dataclass(frozen=True)
class ExportedModel:
    """The files :func:`export_model` wrote."""

    model: str
    version: int
    weights_path: str
    sidecar_path: str
    weights_sha256: str


def sidecar_path(weights_path: str) -> str:
    """``model.safetensors`` -> ``model.json``."""
    return weights_path[: -len(SUFFIX)] + ".json"


def export_model(duck: duckdb.DuckDBPyConnection, name: str, path: str, *, version: int | None = None) -> ExportedModel:
    """Write model ``name``'s current version (or ``version``) to ``path`` and its sidecar."""
    if not path.endswith(SUFFIX):
        raise DataError(f"EXPORT MODEL writes safetensors: expected a path ending in {SUFFIX}, found {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DataError(f"EXPORT MODEL: the folder {folder} does not exist")
    signature = model_signature(duck, name, version)
    session = catalog_session(duck)
    weights, metrics = session.row(
        "SELECT weights, metrics FROM mallard.model_versions WHERE model = ? AND version = ?",
        [signature.model, signature.version])
    lineage = session.row(
        "SELECT query, data_rows, data_hash, seed, configuration, label_run_id, parent_model, parent_version, created_by"
        " FROM mallard.model_lineage WHERE model = ? AND version = ?", [signature.model, signature.version])
    with open(path, "wb") as f:
        f.write(bytes(weights))
    with open(sidecar_path(path), "w", encoding="utf-8") as f:
        json.dump(_sidecar(signature, json.loads(metrics) if metrics else None, lineage), f, indent=2)
    return ExportedModel(signature.model, signature.version, os.path.abspath(path),
                         os.path.abspath(sidecar_path(path)), signature.weights_sha256)


def _sidecar(signature: ModelSignature, metrics: Any, lineage: tuple[Any, ...]) -> dict[str, Any]:
    spec = signature.spec
    keys = ("query", "data_rows", "data_hash", "seed", "configuration", "label_run_id", "parent_model",
            "parent_version", "created_by")
    lineage_values = dict(zip(keys, lineage))
    if lineage_values.get("configuration"):
        lineage_values["configuration"] = json.loads(lineage_values["configuration"])
    return {
        "format": FORMAT,
        "model": signature.model, "version": signature.version,
        "architecture": spec.architecture, "architecture_options": signature.architecture_options,
        "num_classes": spec.num_classes, "labels": list(spec.labels) if spec.labels is not None else None,
        "input": {"kind": signature.kind, "columns": list(signature.inputs),
                  "size": list(spec.input_size) if spec.input_size else None,
                  "layout": "HWC uint8 RGB, as frames tables store frames" if signature.kind == "image"
                  else "float32 features in column order (list columns flattened)"},
        "normalization": {"mean": list(spec.mean), "std": list(spec.std),
                          "formula": "(pixel / 255 - mean) / std per channel" if signature.kind == "image"
                          else "(x - mean) / std per feature"},
        "weights_sha256": signature.weights_sha256,
        "metrics": metrics,
        "lineage": lineage_values,
    }


def sidecar_options(path: str) -> dict[str, Any]:
    """The ``CREATE MODEL ... FROM '<path>'`` options an exported model's sidecar gives
    (architecture, labels, inputs, normalization); empty when ``path`` has no sidecar of
    this format.  Options written in the statement take precedence over these."""
    if not path.endswith(SUFFIX) or not os.path.isfile(sidecar_path(path)):
        return {}
    try:
        with open(sidecar_path(path), encoding="utf-8") as f:
            sidecar = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        return {}
    options: dict[str, Any] = {"architecture": sidecar["architecture"], "num_classes": sidecar["num_classes"]}
    if sidecar.get("labels"):
        options["labels"] = list(sidecar["labels"])
    mean, std = sidecar["normalization"]["mean"], sidecar["normalization"]["std"]
    columns = sidecar["input"]["columns"]
    if sidecar["input"]["kind"] == "numeric" and len(mean) == len(columns):  # one value per column
        options["inputs"] = list(columns)
    if sidecar["input"]["kind"] == "numeric" and "inputs" not in options:
        return {}  # list columns: no catalog form serves them
    if sidecar["input"].get("size"):
        options["input_size"] = list(sidecar["input"]["size"])
    options["mean"], options["std"] = list(mean), list(std)
    return options


def load_export(path: str) -> tuple[nn.Module, dict[str, Any]]:
    """The exported model as a torch module (eval mode) and its sidecar."""
    from engine.inference.weights import read_weights_file

    sidecar_file = sidecar_path(path)
    if not os.path.isfile(sidecar_file):
        raise DataError(f"no sidecar {sidecar_file} beside {path}: EXPORT MODEL writes both")
    with open(sidecar_file, encoding="utf-8") as f:
        sidecar = json.load(f)
    if sidecar.get("format") != FORMAT:
        raise DataError(f"{sidecar_file}: expected format {FORMAT}, found {sidecar.get('format')!r}")
    spec = ModelSpec(sidecar["architecture"], sidecar["num_classes"],
                     tuple(sidecar["input"]["size"]) if sidecar["input"]["size"] else None,
                     tuple(sidecar["normalization"]["mean"]), tuple(sidecar["normalization"]["std"]),
                     tuple(sidecar["labels"]) if sidecar["labels"] else None)
    signature = ModelSignature(sidecar["model"], sidecar["version"], spec, sidecar["input"]["kind"],
                               tuple(sidecar["input"]["columns"]), None, sidecar["architecture_options"])
    network = build_for(signature)
    network.load_state_dict(read_weights_file(path), strict=True)
    return network.eval(), sidecar
