"""Reading the materialized partitions back: the data order of an epoch, and batches of
rows turned into tensors.

A partition file is memory-mapped; a batch copies only its own rows out of it (the table is
never whole in Python memory).  The order of an epoch is seeded: a permutation of the
partitions (rotated by the configuration's place in a grid, as Cerebro's model hopper
gives each model its own order), and within each partition a permutation of its rows.
Batches do not cross partitions: a partition is the unit a model visits.

>>> partition_order(seed=0, epoch=0, partitions=4), partition_order(seed=0, epoch=0, partitions=4, rotation=1)
([3, 2, 1, 0], [2, 1, 0, 3])
>>> [len(b) for b in batch_slices(row_order(0, 0, 0, rows=10), batch_size=4)]
[4, 4, 2]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import DataError
from engine.training.materialize import TrainingData, fixed_width_view

if TYPE_CHECKING:
    import torch


def partition_order(seed: int, epoch: int, partitions: int, rotation: int = 0) -> list[int]:
    """The order in which a model visits the partitions in ``epoch``."""
    base = np.random.default_rng([seed, epoch, 0x5EED]).permutation(partitions).tolist()
    shift = rotation % partitions
    return base[shift:] + base[:shift]


def row_order(seed: int, epoch: int, partition: int, rows: int) -> np.ndarray:
    """The order of a partition's rows in ``epoch``."""
    return np.random.default_rng([seed, epoch, partition]).permutation(rows)


def batch_slices(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Consecutive batches of ``order``; the last may be smaller."""
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@dataclass
class RawBatch:
    """Rows of a partition as numpy arrays."""

    x: np.ndarray                    # uint8 (n, H, W, 3) or float32 (n, F)
    labels: np.ndarray | None        # int64 class ids
    probs: np.ndarray | None         # float32 (n, classes)
    weight: np.ndarray | None        # float32 (n,)

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Batch:
    """A batch as tensors: the normalized input, the target and the per-row weights."""

    x: torch.Tensor
    target: torch.Tensor            # class ids (int64), or probabilities (float32, n x classes)
    labels: torch.Tensor            # class ids, to count accuracy (argmax of probs without labels)
    weight: torch.Tensor | None

    def __len__(self) -> int:
        return int(self.x.shape[0])


class PartitionReader:
    """One partition (or the held-out rows), memory-mapped, read a batch at a time."""

    def __init__(self, data: TrainingData, name: str) -> None:
        self.data = data
        self.name = name
        self._source = pa.memory_map(data.path(name))
        table = pa.ipc.open_file(self._source).read_all()
        self.rows = table.num_rows
        self._views = [fixed_width_view(chunk, data.input_shape, data.kind) for chunk in table.column("__x").chunks]
        self._starts = np.cumsum([0] + [len(v) for v in self._views])[:-1]
        self.probs = _probabilities(table, data) if data.has_probs else None
        self.labels = _class_ids(table, data, self.probs) if data.has_label else None
        self.weight = table.column("__weight").to_numpy().astype(np.float32) if data.has_weight else None
        if self.labels is None and self.probs is not None:
            self.labels = self.probs.argmax(1).astype(np.int64)
        self.bytes_read = 0

    def take(self, index: np.ndarray) -> RawBatch:
        """The rows at ``index`` (positions in this partition)."""
        self.bytes_read += len(index) * self.data.row_bytes
        return RawBatch(
            x=self._gather(index),
            labels=self.labels[index] if self.labels is not None else None,
            probs=self.probs[index] if self.probs is not None else None,
            weight=self.weight[index] if self.weight is not None else None,
        )

    def _gather(self, index: np.ndarray) -> np.ndarray:
        if len(self._views) == 1:
            return self._views[0][index]
        chunk = np.searchsorted(self._starts, index, side="right") - 1
        out = np.empty((len(index), *self._views[0].shape[1:]), dtype=self._views[0].dtype)
        for c in np.unique(chunk):
            where = chunk == c
            out[where] = self._views[c][index[where] - self._starts[c]]
        return out

    def close(self) -> None:
        """Release the memory map."""
        self._views = []
        self._source.close()

    def __enter__(self) -> PartitionReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _class_ids(table: pa.Table, data: TrainingData, probs: np.ndarray | None) -> np.ndarray:
    """Class ids of the labels; with probabilities as the target, a missing label (a LABEL tie)
    counts as their most likely class."""
    column = table.column("__label")
    ids = pc.index_in(column, value_set=pa.array(list(data.classes)))
    if ids.null_count > column.null_count or (column.null_count and probs is None):
        raise DataError(f"a label of this partition is not one of the classes {list(data.classes)!r}")
    values = ids.to_numpy(zero_copy_only=False)
    if column.null_count:
        missing = np.asarray(pc.is_null(ids).to_numpy(zero_copy_only=False))
        values = np.where(missing, probs.argmax(1), np.nan_to_num(values.astype(np.float64), nan=0))  # type: ignore[union-attr]
    return values.astype(np.int64)


def _probabilities(table: pa.Table, data: TrainingData) -> np.ndarray:
    column = table.column("__probs").combine_chunks()
    lengths = pc.min_max(pc.list_value_length(column))
    k = len(data.classes)
    if lengths["min"].as_py() != k or lengths["max"].as_py() != k:
        raise DataError(f"probs: expected {k} probabilities per row (one per class {list(data.classes)!r}), "
                        f"found {lengths['min'].as_py()}..{lengths['max'].as_py()}")
    values = pc.list_flatten(column)
    if values.null_count:
        raise DataError("probs: a probability is NULL in some row")
    return values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, k)


def frames_to_input(frames: np.ndarray, mean: Any, std: Any) -> torch.Tensor:
    """(n, H, W, 3) uint8 frames -> contiguous (n, 3, H, W) float32, scaled to [0, 1] and
    normalized per channel: the values of :func:`engine.inference.networks.normalize_frames`, bit for bit,
    but laid out NCHW before the arithmetic (element-wise arithmetic on the permuted view is
    5 to 10 times slower, and far slower still with two threads on a busy machine).

    >>> import numpy as np
    >>> from engine.inference.networks import normalize_frames
    >>> frames = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    >>> bool((frames_to_input(frames, (0.5, 0.4, 0.3), (0.2, 0.3, 0.4))
    ...       == normalize_frames(frames, (0.5, 0.4, 0.3), (0.2, 0.3, 0.4))).all())
    True
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous().to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(m).div_(s)


def to_tensors(raw: RawBatch, data: TrainingData, device: str = "cpu") -> Batch:
    """Normalize the input (as model functions over frames do) and move the batch to ``device``."""
    import torch

    if data.kind == "image":
        x = frames_to_input(raw.x, data.mean, data.std)
    else:
        mean = torch.tensor(data.mean, dtype=torch.float32)
        std = torch.tensor(data.std, dtype=torch.float32)
        x = torch.from_numpy(np.ascontiguousarray(raw.x)).sub(mean).div_(std)
    labels = torch.from_numpy(raw.labels) if raw.labels is not None else torch.zeros(len(raw), dtype=torch.int64)
    target = torch.from_numpy(raw.probs) if raw.probs is not None else labels
    weight = torch.from_numpy(raw.weight) if raw.weight is not None else None
    if device != "cpu":
        x, target, labels = x.to(device), target.to(device), labels.to(device)
        weight = weight.to(device) if weight is not None else None
    return Batch(x=x, target=target, labels=labels, weight=weight)
