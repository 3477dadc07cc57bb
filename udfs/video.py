"""Built-in frame functions.

``frame_mean(frame)`` is a frame's mean pixel value (0-255); ``frame_diff(a, b)`` is the
mean absolute difference of two frames' pixels, NoScope's cheapest difference detector:

    SELECT frame_id, frame_diff(frame, lag(frame) OVER (ORDER BY frame_id)) AS motion FROM traffic
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import pyarrow as pa

from engine.errors import OperationalError
from udfs import PREPARERS, scalar_function


def _pixel_sum(pixels: np.ndarray) -> int:
    """The exact sum of uint8 pixels (32-bit accumulation when it cannot overflow: twice as fast)."""
    wide = np.uint32 if pixels.size <= np.iinfo(np.uint32).max // 255 else np.uint64
    return int(np.add.reduce(pixels, dtype=wide))


@scalar_function(parameters=["BLOB"], returns="DOUBLE")
def frame_mean(frame: bytes) -> float | None:
    """Mean pixel value of a frame (NULL for NULL or an empty frame)."""
    pixels = np.frombuffer(frame, dtype=np.uint8)
    return _pixel_sum(pixels) / pixels.size if pixels.size else None


@scalar_function(parameters=["BLOB", "BLOB"], returns="DOUBLE")
def frame_diff(a: bytes, b: bytes) -> float:
    """Mean absolute pixel difference of two equally sized frames (NULL if either is NULL)."""
    x, y = np.frombuffer(a, dtype=np.uint8), np.frombuffer(b, dtype=np.uint8)
    if x.size != y.size:
        raise ValueError(f"frame_diff: expected frames of equal size, found {x.size} and {y.size} bytes")
    return _pixel_sum(np.maximum(x, y) - np.minimum(x, y)) / x.size if x.size else 0.0


def prepare_video(session: Any) -> None:
    """Register ``video_frame(stream_id, frame_id, height, width)``, which the ``frame`` column of
    a frames table stored as a stream calls, on this session's connection (bound to its decoders)."""
    import duckdb

    from engine.video_stream.reading import stream_reader
    from engine.video_stream.store import FRAME_FUNCTION

    reader = weakref.ref(stream_reader(session))

    def video_frame(stream_ids: pa.Array, frame_ids: pa.Array, heights: pa.Array, widths: pa.Array) -> pa.Array:
        """The frames of a vector of rows, decoded by the database's reader."""
        live = reader()
        if live is None:
            raise OperationalError("video_frame: the database was closed")
        return live.sql_frames(stream_ids, frame_ids, heights, widths)

    types = [duckdb.sqltype(t) for t in ("BIGINT", "BIGINT", "INTEGER", "INTEGER")]
    try:
        session.duck.create_function(FRAME_FUNCTION, video_frame, types, duckdb.sqltype("BLOB"), type="arrow",
                                     side_effects=False, exception_handling="default")
    except duckdb.CatalogException as e:
        if "already exists" not in str(e):
            raise
        # another connection of this process to the same database registered it, bound to
        # the same reader (stream_reader is per database)


PREPARERS.append(prepare_video)
