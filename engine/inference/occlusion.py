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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine.errors import DataError, ProgrammingError
from engine.options import Option, choice, either, integer, number, text, whole

if TYPE_CHECKING:
    from engine.planner.annotations import OcclusionRequest
    from engine.session import Session

METHODS = ("incremental", "naive")

#: The named arguments of occlusion_map(...) (``patch => 16``), checked like statement options.
OCCLUSION_OPTIONS: Mapping[str, Option] = {
    "patch": Option(whole(1, 10**9), 16, "side of the grey patch, in pixels"),
    "stride": Option(whole(1, 10**9), 4, "step between patch positions, in pixels"),
    "target": Option(either(integer, text), None, "class id or label (default: the frame's top-1)"),
    "method": Option(choice(*METHODS), "incremental", "'incremental' (Krypton) or 'naive' re-inference"),
    "tau": Option(number(0, 1, open_low=True), 1.0, "projective-field threshold (1 = exact)"),
}


def compute_occlusion_map(session: Session, request: OcclusionRequest) -> pa.Table:
    """Validate the call, fetch its frame, compute the heatmap; its rows as an Arrow table."""
    from engine.inference.incremental import occlusion_map
    from engine.inference.model_catalog import load_network, require_image_model, require_model

    version = require_image_model(require_model(session, request.model), "occlusion_map")
    options = {**{name: option.default for name, option in OCCLUSION_OPTIONS.items()}, **dict(request.options)}
    image = _frame(session, request)
    spec = version.spec
    if spec.input_size is not None and image.shape[:2] != spec.input_size:
        raise DataError(f"model {version.model} takes {spec.input_size[0]}x{spec.input_size[1]} frames; the frame "
                        f"given to occlusion_map is {image.shape[0]}x{image.shape[1]}")
    if options["patch"] > min(image.shape[:2]):
        raise DataError(f"occlusion_map patch {options['patch']} is larger than the {image.shape[0]}x{image.shape[1]} frame")
    target = _target(options["target"], spec)
    network = load_network(session, version)
    if target is None:  # the frame's top-1 class
        from engine.inference.networks import forward_frames

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


def _frame(session: Session, step: OcclusionRequest) -> np.ndarray:
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
