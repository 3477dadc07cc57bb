"""Per-frame results of an inference scan, column by column, and their Arrow forms: the
relation a rewritten query joins by ``frame_id`` and the rows of the result cache.

>>> import numpy as np
>>> r = FrameResults.from_arrays(np.array([3, 1]), np.array([[0.0, 2.0], [1.0, 0.0]], np.float32),
...                              np.ones((2, 4), np.float32), ["full", "full"], [10, 10], [10, 10])
>>> r.class_ids.tolist(), [round(s, 3) for s in r.scores.tolist()]
([1, 0], [0.881, 0.731])
>>> r.take(np.array([1])).frame_ids.tolist()
[1]
>>> relation(r, {"prediction"}, lambda i: ["cat", "dog"][i]).to_pylist()[0]["prediction"]["label"]
'dog'
"""
from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class FrameResults:
    """Results of n frames, sorted by frame_id."""

    frame_ids: np.ndarray      # int64 (n,)
    class_ids: np.ndarray      # int32 (n,)
    scores: np.ndarray         # float64 (n,)
    logits: np.ndarray         # float32 (n, C)
    features: np.ndarray       # float32 (n, F)
    kinds: np.ndarray          # object (n,): 'full' | 'incremental' | 'skipped'
    macs: np.ndarray           # int64 (n,)
    macs_full: np.ndarray      # int64 (n,)

    @classmethod
    def from_arrays(cls, frame_ids: Sequence[int] | np.ndarray, logits: np.ndarray, features: np.ndarray, kinds: Sequence[str],
                    macs: Sequence[int], macs_full: Sequence[int]) -> FrameResults:
        """Results from logits and features; the prediction is the top-1 class and its probability."""
        logits = np.asarray(logits, dtype=np.float32)
        shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
        probabilities = np.exp(shifted)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        class_ids = probabilities.argmax(axis=1).astype(np.int32)
        scores = probabilities[np.arange(len(logits)), class_ids]
        return cls(np.asarray(frame_ids, dtype=np.int64), class_ids, scores, logits,
                   np.asarray(features, dtype=np.float32), np.asarray(kinds, dtype=object),
                   np.asarray(macs, dtype=np.int64), np.asarray(macs_full, dtype=np.int64))

    @classmethod
    def empty(cls, classes: int = 0, width: int = 0) -> FrameResults:
        return cls(np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.float64),
                   np.empty((0, classes), np.float32), np.empty((0, width), np.float32),
                   np.empty(0, object), np.empty(0, np.int64), np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self.frame_ids)

    def take(self, positions: np.ndarray) -> FrameResults:
        return FrameResults(*(getattr(self, f)[positions] for f in _FIELDS))

    def select(self, frame_ids: np.ndarray) -> FrameResults:
        """The results of those of ``frame_ids`` present here, in frame_id order."""
        mask = np.isin(self.frame_ids, frame_ids)
        return self.take(np.flatnonzero(mask))

    @staticmethod
    def concat(parts: Sequence[FrameResults]) -> FrameResults:
        """Results of several parts, sorted by frame_id."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return FrameResults.empty()
        columns = []
        for name in _FIELDS:
            arrays = [getattr(p, name) for p in parts]
            if arrays[0].ndim == 2 and len({a.shape[1] for a in arrays}) > 1:
                arrays = [a[:, :0] for a in arrays]  # some parts lack this output: the query does not read it
            columns.append(np.concatenate(arrays))
        joined = FrameResults(*columns)
        return joined.take(np.argsort(joined.frame_ids, kind="stable"))


_FIELDS = ("frame_ids", "class_ids", "scores", "logits", "features", "kinds", "macs", "macs_full")

PREDICTION_TYPE = pa.struct([("label", pa.string()), ("class_id", pa.int32()), ("score", pa.float64())])


def float_lists(matrix: np.ndarray) -> pa.Array:
    """An Arrow list<float32> array, one list per row of a 2-D float32 matrix."""
    n, width = matrix.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * width)
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1)))


def matrix(lists: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """The float32 (n, width) matrix of an Arrow array of equally long float lists."""
    array = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    if len(array) == 0:
        return np.empty((0, width), np.float32)
    values = array.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values.reshape(len(array), -1)


def relation(results: FrameResults, outputs: Set[str], label: Callable[[int], str]) -> pa.Table:
    """The scan relation: frame_id plus the outputs the query reads (prediction, features, logits)."""
    columns: dict[str, pa.Array] = {"frame_id": pa.array(results.frame_ids, pa.int64())}
    if "prediction" in outputs:
        columns["prediction"] = pa.StructArray.from_arrays(
            [pa.array([label(int(c)) for c in results.class_ids], pa.string()),
             pa.array(results.class_ids, pa.int32()), pa.array(results.scores, pa.float64())],
            fields=list(PREDICTION_TYPE),
        )
    if "features" in outputs:
        columns["features"] = float_lists(results.features)
    if "logits" in outputs:
        columns["logits"] = float_lists(results.logits)
    return pa.table(columns)
