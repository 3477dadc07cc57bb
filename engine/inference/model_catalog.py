"""The model catalog: ``mallard.models`` (one row per name) and ``mallard.model_versions``
(every version, with its weights as safetensors bytes, normalization, labels, lineage and
metrics).  Training and serving add versions through :func:`add_version` too.

>>> import engine, torch
>>> from udfs.architectures import build
>>> con = engine.connect()
>>> net = build("plain_cnn", num_classes=3)
>>> spec = ModelSpec("plain_cnn", num_classes=3, input_size=None, mean=(0.5, 0.5, 0.5),
...                  std=(0.25, 0.25, 0.25), labels=("cat", "dog", "owl"))
>>> add_version(con.session, "pets", spec, net.state_dict(), source=None, created_by="CREATE MODEL")
1
>>> current_version(con.session, "pets").labels
('cat', 'dog', 'owl')
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import DataError, ProgrammingError
from engine.inference.weights import from_safetensors, sha256_hex, to_safetensors

if TYPE_CHECKING:
    from engine.session import Session

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """What a model version is, apart from its weights.

    An *image* model (``inputs`` None) takes RGB frames: ``mean``/``std`` have one value per
    channel.  A *numeric* model takes the columns named by ``inputs``, in order, as one
    float vector per row: ``mean``/``std`` have one value per column (stored with the version's
    options as ``inputs``).
    """

    architecture: str
    num_classes: int
    input_size: tuple[int, int] | None      # (height, width); None: any frame size
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...] | None
    inputs: tuple[str, ...] | None = None   # numeric models: the input columns, in order

    def label(self, class_id: int) -> str:
        """The class name of ``class_id`` ('class_<id>' when the model has no labels)."""
        if self.labels is not None and 0 <= class_id < len(self.labels):
            return self.labels[class_id]
        return f"class_{class_id}"


@dataclass(frozen=True)
class ModelVersion:
    """One row of mallard.model_versions (without the weights bytes)."""

    model: str
    version: int
    spec: ModelSpec
    weights_sha256: str
    parent_version: int | None

    @property
    def labels(self) -> tuple[str, ...] | None:
        return self.spec.labels


#: Networks kept built per session.
MAX_NETWORKS = 4

_VERSION_COLUMNS = (
    "model, version, architecture, num_classes, input_height, input_width, mean, std, labels, "
    "weights_sha256, parent_version, options"
)


def model_names(session: Session) -> list[str]:
    """The names of every model in the catalog."""
    return [r[0] for r in session.sql("SELECT name FROM mallard.models ORDER BY name").fetchall()]


def current_version(session: Session, name: str) -> ModelVersion | None:
    """The version of ``name`` that SQL calls use, or None if there is no such model."""
    row = session.sql(
        f"SELECT {_VERSION_COLUMNS} FROM mallard.model_versions v JOIN mallard.models m"
        " ON v.model = m.name AND v.version = m.current_version WHERE m.name = ?",
        [name.lower()],
    ).fetchone()
    return None if row is None else _version_of(row)


def find_version(session: Session, name: str, version: int) -> ModelVersion | None:
    """Version ``version`` of model ``name`` (current or not), or None if there is no such version."""
    row = session.sql(f"SELECT {_VERSION_COLUMNS} FROM mallard.model_versions WHERE model = ? AND version = ?",
                      [name.lower(), int(version)]).fetchone()
    return None if row is None else _version_of(row)


def require_version(session: Session, name: str, version: int | None) -> ModelVersion:
    """Version ``version`` of ``name`` (None: the current one); ProgrammingError naming what exists."""
    if version is None:
        return require_model(session, name)
    found = find_version(session, name, version)
    if found is None:
        require_model(session, name)  # an unknown model is named as such
        known = [r[0] for r in session.sql("SELECT version FROM mallard.model_versions WHERE model = ? ORDER BY 1",
                                           [name.lower()]).fetchall()]
        raise ProgrammingError(f"model {name.lower()} has no version {version}; its versions: "
                               f"{', '.join(map(str, known))}")
    return found


def require_image_model(version: ModelVersion, use: str) -> ModelVersion:
    """``version`` when it takes images; ProgrammingError saying how a numeric model is used."""
    if version.spec.inputs is not None:
        raise ProgrammingError(
            f"model {version.model} takes numeric columns ({', '.join(version.spec.inputs)}), not frames, so "
            f"{use} cannot use it; predict with SELECT * FROM predict({version.model}, (<query of those columns>))"
        )
    return version


def require_model(session: Session, name: str) -> ModelVersion:
    """The current version of ``name``; ProgrammingError naming the known models if absent."""
    found = current_version(session, name)
    if found is None:
        known = ", ".join(model_names(session)) or "none (CREATE MODEL registers one)"
        raise ProgrammingError(f"unknown model {name!r}; models in this database: {known}")
    return found


def _version_of(row: tuple[Any, ...]) -> ModelVersion:
    (model, version, architecture, num_classes, height, width, mean, std, labels, sha, parent, options) = row
    inputs = _recorded_inputs(options)
    spec = ModelSpec(
        architecture=architecture, num_classes=int(num_classes),
        input_size=(int(height), int(width)) if height is not None else None,
        mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),
        labels=tuple(labels) if labels is not None else None, inputs=inputs,
    )
    return ModelVersion(model, int(version), spec, sha, parent)


def _recorded_inputs(options: Any) -> tuple[str, ...] | None:
    """The input columns a version's options record (numeric models), else None."""
    try:
        recorded = json.loads(options).get("inputs") if isinstance(options, str) else None
    except (ValueError, AttributeError):
        return None
    if isinstance(recorded, list) and recorded and all(isinstance(c, str) for c in recorded):
        return tuple(recorded)
    return None


def add_version(session: Session, name: str, spec: ModelSpec, state: Mapping[str, torch.Tensor], *,
                source: str | None, created_by: str, description: str | None = None,
                options: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                parent_version: int | None = None, make_current: bool = True) -> int:
    """Store a new version of model ``name`` (creating the model) and make it current.

    Results cached for older versions are invalidated (deleted); the older versions stay,
    with ``parent_version`` linking each to the one it replaced (or to ``parent_version``
    when given: the version a model was trained from).  ``make_current=False`` adds a version
    of an existing model without making it current (a grid's other configurations).  Call
    inside ``session.atomic()`` when other writes must go with it.  Returns the new version number.
    """
    weights = to_safetensors(state)
    if spec.inputs is not None:  # the input columns travel with the options (numeric models)
        options = {**(options or {}), "inputs": list(spec.inputs)}
    previous = session.sql("SELECT current_version FROM mallard.models WHERE name = ?", [name]).fetchone()
    parent = parent_version if parent_version is not None else (int(previous[0]) if previous else None)
    latest = session.scalar("SELECT max(version) FROM mallard.model_versions WHERE model = ?", [name])
    version = int(latest or 0) + 1
    parameters = sum(int(t.numel()) for k, t in state.items() if not _is_buffer_key(k))
    session.sql(
        "INSERT INTO mallard.model_versions (model, version, architecture, num_classes, input_height,"
        " input_width, mean, std, labels, weights, weights_sha256, weights_bytes, parameters, source,"
        " parent_version, created_by, options, metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [name, version, spec.architecture, spec.num_classes,
         spec.input_size[0] if spec.input_size else None, spec.input_size[1] if spec.input_size else None,
         list(spec.mean), list(spec.std), list(spec.labels) if spec.labels is not None else None,
         weights, sha256_hex(weights), len(weights), parameters, source, parent, created_by,
         json.dumps(options or {}), json.dumps(metrics) if metrics is not None else None],
    )
    if previous and not make_current:
        return version
    if previous:
        session.sql(
            "UPDATE mallard.models SET current_version = ?, updated_at = current_timestamp,"
            " description = coalesce(?, description) WHERE name = ?", [version, description, name],
        )
    else:
        session.sql("INSERT INTO mallard.models (name, current_version, description) VALUES (?, ?, ?)",
                    [name, version, description])
    invalidate_results(session, name, keep_version=version)
    return version


def _is_buffer_key(key: str) -> bool:
    return key.endswith(("running_mean", "running_var", "num_batches_tracked"))


def drop_model(session: Session, name: str) -> int:
    """Delete model ``name``, all its versions, cached results and engine state; return versions dropped."""
    count = session.scalar("SELECT count(*) FROM mallard.model_versions WHERE model = ?", [name])
    for table in ("inference_cache", "inference_state", "training_history", "model_training", "training_runs",
                  "model_versions"):
        session.sql(f"DELETE FROM mallard.{table} WHERE model = ?", [name])
    session.sql("DELETE FROM mallard.models WHERE name = ?", [name])
    return int(count)


def invalidate_results(session: Session, name: str, keep_version: int) -> None:
    """Forget cached results and engine state of every version of ``name`` but ``keep_version``."""
    for table in ("inference_cache", "inference_state"):
        session.sql(f"DELETE FROM mallard.{table} WHERE model = ? AND version <> ?", [name, keep_version])


def load_network(session: Session, version: ModelVersion) -> nn.Module:
    """The torch network of a model version, in eval mode (built once per session and version)."""
    from engine.extensions import architectures, build_network

    networks: dict[tuple[str, int, str], Any] = session.state.setdefault("inference.networks", {})
    key = (version.model, version.version, version.weights_sha256)
    if key not in networks:
        known = architectures()
        if version.spec.architecture not in known:
            raise ProgrammingError(
                f"model {version.model} needs architecture {version.spec.architecture!r}, which is not "
                f"registered in this process (registered: {', '.join(sorted(known))}); import the "
                "module that defines it with @architecture first"
            )
        blob = session.scalar(
            "SELECT weights FROM mallard.model_versions WHERE model = ? AND version = ?",
            [version.model, version.version],
        )
        network = build_network(version.spec.architecture, num_classes=version.spec.num_classes)
        try:
            network.load_state_dict(from_safetensors(blob), strict=True)
        except RuntimeError as e:  # the catalog's spec (classes, say) and its weights disagree
            detail = " ".join(str(e).split())[:300]
            raise DataError(f"model {version.model} version {version.version}: its stored weights do not fit "
                            f"architecture {version.spec.architecture} with {version.spec.num_classes} classes as "
                            f"the catalog describes it ({detail})") from e
        while len(networks) >= MAX_NETWORKS:  # keep memory bounded: forget the oldest
            networks.pop(next(iter(networks)))
        networks[key] = network.eval()
    return networks[key]
