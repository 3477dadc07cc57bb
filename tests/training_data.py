"""Seeded training data with known truth for the training tests and benchmarks: image tables
in the frames tables' layout (raw HWC uint8 RGB BLOBs with height and width), numeric
tables, and Fashion-MNIST (data/fashion-mnist, from Debian's dataset-fashion-mnist) loaded
into a table."""
from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
SHAPES = ("left", "right", "red")


def create_table(duck: Any, name: str, table: pa.Table) -> None:
    """``CREATE OR REPLACE TABLE name`` from an Arrow table."""
    duck.register("__training_source", table)
    try:
        duck.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM __training_source')
    finally:
        duck.unregister("__training_source")


def image_table(rows: int = 240, size: int = 12, seed: int = 0, noise: int = 90, contrast: int = 60) -> pa.Table:
    """Images whose class is where a brighter patch is (top-left, bottom-right, or red in the
    top-right), under uniform noise: (id, frame, height, width, label)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, noise, size=(rows, size, size, 3)).astype(np.uint8)
    labels = rng.integers(0, 3, size=rows)
    h = size // 2
    for i, c in enumerate(labels):
        if c == 0:
            x[i, :h, :h] += contrast
        elif c == 1:
            x[i, h:, h:] += contrast
        else:
            x[i, :h, h:, 0] += contrast
    return pa.table({"id": np.arange(rows), "frame": pa.array([r.tobytes() for r in x], pa.binary()),
                     "height": np.full(rows, size, dtype=np.int32), "width": np.full(rows, size, dtype=np.int32),
                     "label": np.array(SHAPES)[labels]})


def points_table(rows: int = 600, seed: int = 0, flip: float = 0.05) -> pa.Table:
    """(id, a, b, v FLOAT[2], label): 'yes' when a + b > 1, with a share ``flip`` of labels flipped."""
    rng = np.random.default_rng(seed)
    a, b = rng.random(rows), rng.random(rows)
    truth = a + b > 1
    flipped = rng.random(rows) < flip
    v = rng.normal(size=(rows, 2)).astype(np.float32)
    return pa.table({"id": np.arange(rows), "a": a, "b": b,
                     "v": pa.array(list(v), pa.list_(pa.float32())),
                     "label": np.where(truth ^ flipped, "yes", "no")})


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip): the array it holds."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_arrays(folder: Path, split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images (n, 28, 28) and labels (n,) of ``split`` ('train' or 't10k')."""
    images = read_idx(folder / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{split}-labels-idx1-ubyte.gz")
    return (images[:limit], labels[:limit]) if limit else (images, labels)


def fashion_table(folder: Path, split: str = "train", limit: int | None = None, offset: int = 0) -> pa.Table:
    """Fashion-MNIST as a frames-like table: (id, frame (28x28x3 RGB, the grey value thrice),
    height, width, label (the class name))."""
    images, labels = fashion_arrays(folder, split)
    end = offset + limit if limit else None
    images, labels = images[offset:end], labels[offset:end]
    rgb = np.repeat(images[..., None], 3, axis=-1)
    n = len(images)
    frames = pa.FixedSizeBinaryArray.from_buffers(pa.binary(28 * 28 * 3), n, [None, pa.py_buffer(rgb.tobytes())])
    return pa.table({"id": np.arange(offset, offset + n), "frame": frames.cast(pa.binary()),
                     "height": np.full(n, 28, dtype=np.int32), "width": np.full(n, 28, dtype=np.int32),
                     "label": np.array(FASHION_CLASSES)[labels]})


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Training tests run torch on one thread: their models are tiny, and on a busy machine
    two spinning intra-op threads make tiny models ten times slower, not faster."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
