"""Built-in frame functions (vectorized over Arrow batches).

``frame_mean(frame)`` is a frame's mean pixel value (0-255); ``frame_diff(a, b)`` is the
mean absolute difference of two frames' pixels, NoScope's cheapest difference detector:

    SELECT frame_id, frame_diff(frame, lag(frame) OVER (ORDER BY frame_id)) AS motion FROM traffic
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.extensions import ScalarFunction


def _pixels(value: pa.Scalar) -> np.ndarray | None:
    buffer = value.as_buffer() if value.is_valid else None
    return None if buffer is None else np.frombuffer(buffer, dtype=np.uint8)


def frame_mean(frames: pa.Array) -> pa.Array:
    """Mean pixel value of each frame (NULL for NULL)."""
    out = [None if (p := _pixels(v)) is None or p.size == 0 else float(p.mean(dtype=np.float64)) for v in frames]
    return pa.array(out, pa.float64())


def frame_diff(a: pa.Array, b: pa.Array) -> pa.Array:
    """Mean absolute pixel difference of two equally sized frames (NULL if either is NULL)."""
    out: list[float | None] = []
    for x, y in zip(a, b):
        pa_, pb = _pixels(x), _pixels(y)
        if pa_ is None or pb is None:
            out.append(None)
            continue
        if pa_.size != pb.size:
            raise ValueError(f"frame_diff: expected frames of equal size, found {pa_.size} and {pb.size} bytes")
        out.append(float(np.abs(pa_.astype(np.int16) - pb.astype(np.int16)).mean()) if pa_.size else 0.0)
    return pa.array(out, pa.float64())


#: The frame functions, as SQL declares them.
FRAME_FUNCTIONS: tuple[ScalarFunction, ...] = (
    ScalarFunction("frame_mean", frame_mean, ("BLOB",), "DOUBLE", vectorized=True),
    ScalarFunction("frame_diff", frame_diff, ("BLOB", "BLOB"), "DOUBLE", vectorized=True),
)
