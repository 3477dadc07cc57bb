"""Occlusion maps in SQL: ``SELECT * FROM occlusion_map(<model>, (<frame query>), patch =>
16, stride => 4)``, computed by the incremental engine's :func:`occlusion_map` (Krypton's
occlusion-based explanation: the drop in the target class probability when a grey patch
hides each position, as batched incremental inference).

The relation has one row per patch position: ``row``, ``col`` (heatmap indices), ``y``,
``x`` (top-left pixel of the patch), ``value`` (probability drop), and ``class_id``,
``label`` of the target class.  Options: ``patch``, ``stride``, ``target`` (class id or
label; default the frame's top-1), ``method`` ('incremental' or 'naive') and ``tau`` (Krypton's
projective-field threshold for approximate maps; 1 = exact).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from engine.errors import DataError, ProgrammingError

#: Options of occlusion_map and their defaults.
OCCLUSION_OPTIONS = {"patch": 16, "stride": 4, "target": None, "method": "incremental", "tau": 1.0}
METHODS = ("incremental", "naive")


@dataclass
class OcclusionMap:
    """The plan step of one occlusion_map(...) call."""

    model: str
    frame_query: exp.Select
    options: dict[str, Any]
    relation: str

    def describe(self) -> str:
        options = ", ".join(f"{k} => {v!r}" if isinstance(v, str) else f"{k} => {v}"
                            for k, v in {**{"patch": 16, "stride": 4}, **self.options}.items())
        return f"{self.relation}: occlusion_map({self.model}, {self.frame_query.sql('duckdb')}, {options})"

    def run(self, session: Any) -> None:
        session.register(self.relation, compute_occlusion_map(session, self))


def compute_occlusion_map(session: Any, step: OcclusionMap) -> pa.Table:
    """Validate the call, fetch its frame, compute the heatmap; its rows as an Arrow table."""
    from engine.inference.catalog import load_network, require_model
    from engine.inference.incremental import occlusion_map

    version = require_model(session, step.model)
    options = _options(step.options)
    image = _frame(session, step)
    spec = version.spec
    if spec.input_size is not None and image.shape[:2] != spec.input_size:
        raise DataError(f"model {version.model} takes {spec.input_size[0]}x{spec.input_size[1]} frames; the frame "
                        f"given to occlusion_map is {image.shape[0]}x{image.shape[1]}")
    if options["patch"] > min(image.shape[:2]):
        raise DataError(f"occlusion_map patch {options['patch']} is larger than the {image.shape[0]}x{image.shape[1]} frame")
    target = _target(options["target"], spec)
    network = load_network(session, version)
    if target is None:  # the frame's top-1 class
        from udfs.models import forward_frames

        target = int(forward_frames(network, image[None], spec.mean, spec.std)[0].argmax())
    heatmap = np.asarray(occlusion_map(network, spec.mean, spec.std, image, patch=options["patch"],
                                       stride=options["stride"], target=target, method=options["method"],
                                       tau=float(options["tau"])))
    rows, cols = np.indices(heatmap.shape)
    stride = options["stride"]
    n = heatmap.size
    return pa.table({
        "row": pa.array(rows.ravel().astype(np.int32)), "col": pa.array(cols.ravel().astype(np.int32)),
        "y": pa.array((rows.ravel() * stride).astype(np.int32)), "x": pa.array((cols.ravel() * stride).astype(np.int32)),
        "value": pa.array(heatmap.ravel().astype(np.float64)),
        "class_id": pa.array(np.full(n, target, np.int32)), "label": pa.array([spec.label(target)] * n, pa.string()),
    })


def _options(given: dict[str, Any]) -> dict[str, Any]:
    options = {**OCCLUSION_OPTIONS, **given}
    for name in ("patch", "stride"):
        value = options[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"occlusion_map option {name}: expected a positive whole number, found {value!r}")
    tau = options["tau"]
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 < tau <= 1:
        raise DataError(f"occlusion_map option tau: expected a number in (0, 1], found {tau!r}")
    if options["method"] not in METHODS:
        raise DataError(f"occlusion_map option method: expected one of {', '.join(METHODS)}, found {options['method']!r}")
    return options


def _target(value: Any, spec: Any) -> int | None:
    """The target class: None (the frame's top-1), a class id, or a label."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < spec.num_classes:
        return value
    if isinstance(value, str) and spec.labels is not None and value in spec.labels:
        return spec.labels.index(value)
    raise DataError(f"occlusion_map option target: expected a class id in [0, {spec.num_classes}) or a label of "
                    f"the model, found {value!r}")


def _frame(session: Any, step: OcclusionMap) -> np.ndarray:
    from engine.video import frame_to_numpy

    try:
        rows = session.sql(step.frame_query).fetchall()
    except ProgrammingError as e:
        raise ProgrammingError(f"occlusion_map: the frame query {step.frame_query.sql('duckdb')} failed "
                               f"(it must read a frames table with height and width): {e}") from e
    if len(rows) != 1:
        raise DataError(f"occlusion_map expects its frame query to return one frame, found {len(rows)} rows")
    blob, height, width = rows[0]
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ProgrammingError(f"occlusion_map expects its frame query to select a frame (BLOB), found a "
                               f"{type(blob).__name__} value")
    return frame_to_numpy(bytes(blob), int(height), int(width)).copy()
