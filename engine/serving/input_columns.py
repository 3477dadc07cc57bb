"""Reading a model's inputs out of the Arrow batches of a query (the offline ``predict``).

Three shapes of rows, chosen from the query's columns and the model:

- a *numeric* model reads its input columns (numbers; matched by name, case-insensitively);
- an *image* model reads frames when the query has integer ``height`` and ``width`` columns
  (the BLOB holds ``height*width*3`` RGB bytes, as frames tables store them);
- otherwise it reads encoded PNG/JPEG images from the BLOB column.

The BLOB column is the ``input`` option's, else ``frame``, else the query's only BLOB column.
Each batch decodes to groups of rows of one input shape; a row whose input is NULL gets no
prediction (NULL), as SQL functions give NULL for NULL.

>>> import pyarrow as pa
>>> from engine.serving.model_inputs import ModelInput
>>> batch = pa.record_batch({"id": [1, 2, 3], "x": [0.5, None, 2.0], "y": [1, 2, 3]})
>>> reader = input_reader(batch.schema, ModelInput("numeric", columns=("x", "y")), None)
>>> [(rows.tolist(), values.tolist()) for rows, values in reader.decode(batch)]
[([0, 2], [[0.5, 1.0], [2.0, 3.0]])]
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import DataError, ProgrammingError
from engine.serving.model_inputs import ModelInput

#: Rows of one input shape: their positions in the batch, and their inputs stacked.
Group = tuple[np.ndarray, np.ndarray]


class InputReader(Protocol):
    """Decodes a record batch into groups of model inputs of one shape each."""

    def decode(self, batch: pa.RecordBatch) -> list[Group]: ...

    def describe(self) -> str: ...


def input_reader(schema: pa.Schema, model: ModelInput, column: str | None,
                 numeric_dtype: type[np.floating] = np.float64) -> InputReader:
    """The reader of ``model``'s inputs from rows of ``schema``; ProgrammingError when the rows
    lack what the model needs.  Numeric inputs are stacked as ``numeric_dtype`` (float32 when the
    network takes them as they are: one pass instead of stacking float64 and converting)."""
    names = {name.lower(): name for name in schema.names}
    if model.is_numeric:
        return NumericInputs(tuple(_numeric_column(schema, names, c) for c in model.columns), numeric_dtype)
    blob = _blob_column(schema, names, column)
    height, width = names.get("height"), names.get("width")
    if height is not None and width is not None and all(pa.types.is_integer(schema.field(c).type) for c in (height, width)):
        return FrameInputs(blob, height, width)
    return EncodedImageInputs(blob)


def _numeric_column(schema: pa.Schema, names: dict[str, str], column: str) -> str:
    found = names.get(column.lower())
    if found is None:
        raise ProgrammingError(f"predict: the model reads column {column}, which the query lacks; its columns are "
                               f"{', '.join(schema.names)}")
    kind = schema.field(found).type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
            or pa.types.is_boolean(kind)):
        raise ProgrammingError(f"predict: the model reads column {column} as a number; the query gives it as {kind}")
    return found


def _blob_column(schema: pa.Schema, names: dict[str, str], column: str | None) -> str:
    blobs = [n for n in schema.names if pa.types.is_binary(schema.field(n).type) or pa.types.is_large_binary(schema.field(n).type)]
    if column is not None:
        found = names.get(column.lower())
        if found is None or found not in blobs:
            raise ProgrammingError(f"predict option input: expected a BLOB column of the query, found {column!r} "
                                   f"(BLOB columns: {', '.join(blobs) or 'none'})")
        return found
    if "frame" in names and names["frame"] in blobs:
        return names["frame"]
    if len(blobs) == 1:
        return blobs[0]
    if not blobs:
        raise ProgrammingError(f"predict: an image model needs a BLOB column of images or frames; the query's columns "
                               f"are {', '.join(schema.names)}")
    raise ProgrammingError(f"predict: the query has several BLOB columns ({', '.join(blobs)}); name the image column "
                           "with input => '<column>'")


def _present(array: pa.Array) -> np.ndarray:
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


@dataclass(frozen=True)
class NumericInputs:
    """Numeric columns, in the model's order, as one vector per row (float64 unless ``dtype`` says).

    The ``(rows, columns)`` matrix is the transpose of a C-ordered ``(columns, rows)`` array
    (Fortran order): each column is one contiguous converting copy, where writing it into
    C-ordered rows is a strided one (2.6x slower over 16,384 rows x 8 columns); torch's matrix
    product reads either order without a copy.
    """

    columns: tuple[str, ...]
    dtype: type[np.floating] = np.float64

    def decode(self, batch: pa.RecordBatch) -> list[Group]:
        arrays = [batch.column(c) for c in self.columns]
        present = np.ones(batch.num_rows, dtype=bool)
        for array in arrays:
            if array.null_count:
                present &= _present(array)
        rows = np.flatnonzero(present)
        if len(rows) == 0:
            return []
        values = np.empty((len(arrays), len(rows)), dtype=self.dtype)
        for j, array in enumerate(arrays):
            if not pa.types.is_floating(array.type) or array.null_count:
                array = pc.cast(array, pa.float64())
            column = array.to_numpy(zero_copy_only=False)
            values[j] = column[rows] if len(rows) != batch.num_rows else column
        return [(rows, values.T)]

    def describe(self) -> str:
        return f"numeric columns {', '.join(self.columns)}"


@dataclass(frozen=True)
class FrameInputs:
    """Frames: a BLOB of ``height*width*3`` RGB bytes per row, with its height and width."""

    column: str
    height: str
    width: str

    def decode(self, batch: pa.RecordBatch) -> list[Group]:
        blobs = batch.column(self.column)
        heights = batch.column(self.height).to_numpy(zero_copy_only=False)
        widths = batch.column(self.width).to_numpy(zero_copy_only=False)
        present = _present(blobs) & _present(batch.column(self.height)) & _present(batch.column(self.width))
        groups: list[Group] = []
        for h, w in sorted({(int(h), int(w)) for h, w in zip(heights[present], widths[present])}):
            rows = np.flatnonzero(present & (heights == h) & (widths == w))
            chosen = blobs if len(rows) == len(blobs) else blobs.take(pa.array(rows))  # usually: all of them
            groups.append((rows, _pixels(chosen, h, w)))
        return groups

    def describe(self) -> str:
        return f"frames in column {self.column} ({self.height} x {self.width} RGB bytes)"


def _pixels(blobs: pa.Array, height: int, width: int) -> np.ndarray:
    """(n, H, W, 3) uint8 from n BLOBs that must each hold height*width*3 bytes."""
    size = height * width * 3
    lengths = pc.binary_length(blobs).to_numpy(zero_copy_only=False)
    wrong = np.flatnonzero(lengths != size)
    if len(wrong):
        raise DataError(f"predict: a frame of {height}x{width} needs {size} bytes (height*width*3 RGB), found "
                        f"{lengths[wrong[0]]} bytes ({len(wrong)} of {len(blobs)} frames in the batch differ)")
    if height < 1 or width < 1:
        raise DataError(f"predict: expected a positive frame height and width, found {height}x{width}")
    dtype = np.int64 if pa.types.is_large_binary(blobs.type) else np.int32
    offsets = np.frombuffer(blobs.buffers()[1], dtype=dtype)[blobs.offset: blobs.offset + len(blobs) + 1]
    data = np.frombuffer(blobs.buffers()[2], dtype=np.uint8)
    if int(offsets[-1] - offsets[0]) == len(blobs) * size:  # contiguous, as DuckDB hands them over
        return data[offsets[0]: offsets[0] + len(blobs) * size].reshape(len(blobs), height, width, 3).copy()
    return np.stack([data[a:a + size].reshape(height, width, 3) for a in offsets[:-1]])


@dataclass(frozen=True)
class EncodedImageInputs:
    """PNG or JPEG images, one BLOB per row, decoded to RGB pixels."""

    column: str

    def decode(self, batch: pa.RecordBatch) -> list[Group]:
        from engine.serving.images import decode_image

        values: Sequence[bytes | None] = batch.column(self.column).to_pylist()
        by_size: dict[tuple[int, int], tuple[list[int], list[np.ndarray]]] = {}
        for i, data in enumerate(values):
            if data is None:
                continue
            try:
                pixels = decode_image(data).pixels
            except DataError as e:
                raise DataError(f"predict: row {i + 1} of a batch of column {self.column}: {e}") from None
            rows, images = by_size.setdefault((pixels.shape[0], pixels.shape[1]), ([], []))
            rows.append(i)
            images.append(pixels)
        return [(np.array(rows, dtype=np.int64), np.stack(images)) for _, (rows, images) in sorted(by_size.items())]

    def describe(self) -> str:
        return f"PNG/JPEG images in column {self.column}"
