"""Materialize a training query once: its rows stream out of DuckDB in Arrow batches into
``partitions`` Arrow IPC files of training rows and one of held-out rows, in a temporary
folder that worker processes read (they cannot open the DuckDB file the statement holds).

DuckDB computes, per row, a hash of the columns read (the data fingerprint sums them), the
held-out flag (a hash of the key and the seed below ``holdout``) and a seeded order, so the
same data and seed always give the same partitions: training row ``i`` of that order goes
to partition ``i % partitions``.  Python sees one Arrow batch at a time; it checks the
values, counts the classes and the normalization statistics, and appends the rows to the
partition files.

>>> import duckdb, tempfile
>>> from engine.training.options import parse_options
>>> from engine.training.source import resolve_data, source_relation
>>> duck = duckdb.connect()
>>> rel = source_relation(duck, "SELECT range AS id, range % 3 AS x, CASE WHEN range % 3 = 0 THEN 'a' ELSE 'b' END AS label FROM range(100)")
>>> options = parse_options({"architecture": "mlp", "partitions": 2})
>>> data = materialize(rel, resolve_data(rel, options), options, tempfile.mkdtemp())
>>> data.classes, sum(data.partition_rows) + data.holdout_rows, data.fingerprint.rows, data.input_shape
(('a', 'b'), 100, 100, (1,))
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from engine.errors import DataError, translate
from engine.training.options import TrainingOptions
from engine.training.source import DataSpec, LabelRun

#: Arrow batch sizes read from DuckDB, by kind of input.
BATCH_ROWS = {"image": 256, "numeric": 8192}
#: Rows are buffered per partition and written in record batches of about this many bytes.
CHUNK_BYTES = 16 << 20
_HOLDOUT_SCALE = 1_000_000


@dataclass(frozen=True)
class Fingerprint:
    """What the data was: its row count and an order-independent hash of the columns read."""

    rows: int
    hash: str


@dataclass(frozen=True)
class TrainingData:
    """The materialized rows, as worker processes need them (round-trips through JSON)."""

    folder: str
    kind: str                              # 'image' or 'numeric'
    input_shape: tuple[int, ...]           # (height, width, 3) or (features,)
    classes: tuple[Any, ...]               # class values in class-id order (str or int)
    partitions: tuple[str, ...]            # file names in folder
    partition_rows: tuple[int, ...]
    holdout: str | None
    holdout_rows: int
    has_label: bool
    has_probs: bool
    has_weight: bool
    mean: tuple[float, ...]                # per channel (image) or per feature (numeric)
    std: tuple[float, ...]
    fingerprint: Fingerprint
    dropped_rows: int                      # rows without a label (or probabilities)
    label_run: int | None = None
    inputs: tuple[str, ...] = field(default_factory=tuple)

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names, as the model catalog stores them."""
        return tuple(str(c) for c in self.classes)

    @property
    def row_bytes(self) -> int:
        """Bytes of one row's input."""
        return int(np.prod(self.input_shape)) * (1 if self.kind == "image" else 4)

    def path(self, name: str) -> str:
        """The path of file ``name`` of the materialized data."""
        return os.path.join(self.folder, name)

    def to_json(self) -> str:
        """JSON for worker processes."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TrainingData:
        """The inverse of :meth:`to_json`."""
        values = json.loads(text)
        values["fingerprint"] = Fingerprint(**values["fingerprint"])
        for key in ("input_shape", "classes", "partitions", "partition_rows", "mean", "std", "inputs"):
            values[key] = tuple(values[key])
        return cls(**values)


def materialize(relation: duckdb.DuckDBPyRelation, spec: DataSpec, options: TrainingOptions, folder: str,
                label_run: LabelRun | None = None,
                cancel: Callable[[], bool] | None = None) -> TrainingData:
    """Stream the query's rows into partition files under ``folder``; check every value.
    The relation's connection must have no unfinished result (:func:`engine.training.source.settle`)."""
    os.makedirs(folder, exist_ok=True)
    ordered = _ordered_relation(relation, spec, options)
    classes = _known_classes(spec, options, label_run)
    writer = _PartitionWriter(folder, options.partitions, spec)
    try:
        reader = ordered.to_arrow_reader(BATCH_ROWS[spec.kind])
        for batch in reader:
            if cancel is not None and cancel():
                from engine.training.progress import Cancelled

                raise Cancelled("training was cancelled while its rows were read")
            writer.add(batch)
    except duckdb.Error as e:
        raise translate(e) from e
    finally:
        writer.close()
    return writer.finish(classes, spec, label_run)


def _col(name: str) -> exp.Expr:
    return exp.column(name, quoted=True)


def data_columns(spec: DataSpec) -> list[exp.Expr]:
    """The columns read, under Mallard's names: ``__x`` (the image BLOB, or the features as
    one FLOAT[]), ``__h``/``__w`` (images), ``__label`` (VARCHAR or BIGINT), ``__probs``,
    ``__weight``."""
    columns: list[exp.Expr] = [_input_expression(spec, _col)]
    if spec.kind == "image":
        columns += [exp.alias_(_col("height"), "__h"), exp.alias_(_col("width"), "__w")]
    if spec.label is not None:
        kind = "VARCHAR" if spec.label_type == "text" else "BIGINT"
        columns.append(exp.alias_(exp.cast(_col(spec.label), kind), "__label"))
    if spec.probs is not None:
        columns.append(exp.alias_(exp.cast(_col(spec.probs), "DOUBLE[]"), "__probs"))
    if spec.weight is not None:
        columns.append(exp.alias_(exp.cast(_col(spec.weight), "FLOAT"), "__weight"))
    return columns


def _ordered_relation(relation: duckdb.DuckDBPyRelation, spec: DataSpec, options: TrainingOptions) -> Any:
    col = _col
    used = [col(c) for c in spec.inputs + tuple(c for c in (spec.label, spec.probs, spec.weight) if c)]
    columns = data_columns(spec)
    columns.append(exp.alias_(exp.func("hash", *used), "__hash"))
    columns.append(exp.alias_(col(spec.key) if spec.key else exp.func("hash", *used), "__k"))
    first = relation.project(", ".join(c.sql("duckdb") for c in columns))
    seed = exp.Literal.number(options.split_seed)
    threshold = exp.Literal.number(round(options.holdout * _HOLDOUT_SCALE))
    holdout = exp.LT(this=exp.Mod(this=exp.func("hash", col("__k"), seed),
                                  expression=exp.Literal.number(_HOLDOUT_SCALE)), expression=threshold)
    order = exp.func("hash", col("__k"), seed, exp.Literal.string("order"))
    second = first.project("*, " + exp.alias_(holdout, "__holdout").sql("duckdb") + ", "
                           + exp.alias_(order, "__order").sql("duckdb"))
    return second.order("__order, __k, __hash")


def _input_expression(spec: DataSpec, col: Callable[[str], exp.Expr]) -> exp.Expr:
    if spec.kind == "image":
        return exp.alias_(col(spec.inputs[0]), "__x")
    # Scalars become one-element lists, lists are cast; all concatenated in the order given.
    parts = [exp.cast(col(name), "FLOAT[]") if name in spec.list_inputs
             else exp.Array(expressions=[exp.cast(col(name), "FLOAT")]) for name in spec.inputs]
    combined = parts[0] if len(parts) == 1 else exp.func("flatten", exp.Array(expressions=parts))
    return exp.alias_(combined, "__x")


def _known_classes(spec: DataSpec, options: TrainingOptions, label_run: LabelRun | None) -> tuple[Any, ...] | None:
    integer = spec.label_type == "integer" or (spec.label is None and label_run is not None
                                               and label_run.label_type != "VARCHAR")
    if options.classes is not None:
        values = options.classes
        if spec.label_type == "text" and not all(isinstance(v, str) for v in values):
            raise DataError(f"classes {list(values)!r} are numbers but label column {spec.label} holds class names")
        if spec.label_type == "integer" and not all(isinstance(v, int) for v in values):
            raise DataError(f"classes {list(values)!r} are names but label column {spec.label} holds class ids")
        return tuple(values)
    if spec.probs is not None and label_run is not None:
        return tuple(int(c) for c in label_run.classes) if integer else tuple(label_run.classes)
    if spec.probs is not None:
        raise DataError(
            f"probs column {spec.probs}: its order of classes is unknown (the query reads no LABEL output table); "
            "give classes = [...] in the order of the probabilities"
        )
    return None


def check_batch_inputs(batch: pa.RecordBatch, spec: DataSpec) -> tuple[int, ...]:
    """The input shape of a batch of :func:`data_columns`; DataError for NULLs or uneven sizes."""
    x = batch.column("__x")
    if x.null_count:
        raise DataError(f"the input column{'s' if len(spec.inputs) > 1 else ''} "
                        f"{', '.join(spec.inputs)} hold NULL in some row: filter or coalesce it")
    return _image_shape(batch, spec.inputs[0]) if spec.kind == "image" else _feature_shape(x, spec.inputs)


class _PartitionWriter:
    """Appends checked rows to the partition files and gathers classes and statistics."""

    def __init__(self, folder: str, partitions: int, spec: DataSpec) -> None:
        self.folder = folder
        self.spec = spec
        self.count = partitions
        self.writers: list[Any] = []
        self.pending: list[list[pa.RecordBatch]] = [[] for _ in range(partitions)]
        self.holdout_writer: Any = None
        self.rows = [0] * partitions
        self.holdout_rows = 0
        self.train_seen = 0
        self.dropped = 0
        self.fingerprint_rows = 0
        self.hash_sum = 0
        self.labels: set[Any] = set()
        self.shape: tuple[int, ...] | None = None
        self.stats: Any = None

    def add(self, batch: pa.RecordBatch) -> None:
        """Check a batch of rows and append it to the held-out file or the partitions."""
        batch = self._keep_labeled(batch)
        if batch.num_rows == 0:
            return
        self._check_inputs(batch)
        self.fingerprint_rows += batch.num_rows
        hashes = batch.column("__hash").to_numpy(zero_copy_only=False).astype(np.uint64)
        self.hash_sum = (self.hash_sum + int(np.sum(hashes, dtype=np.uint64))) % (1 << 64)  # wraps around
        if "__label" in batch.schema.names:
            self.labels.update(v for v in pc.unique(batch.column("__label")).to_pylist() if v is not None)
        held = batch.column("__holdout").to_numpy(zero_copy_only=False)
        stored = batch.select([n for n in batch.schema.names if n in ("__x", "__label", "__probs", "__weight")])
        if held.any():
            self._holdout(stored.filter(pa.array(held)))
        if (~held).any():
            self._train(stored.filter(pa.array(~held)))

    def _keep_labeled(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        target = "__probs" if "__probs" in batch.schema.names else "__label"
        column = batch.column(target)
        if column.null_count:
            self.dropped += column.null_count
            batch = batch.filter(pc.is_valid(column))
        return batch

    def _check_inputs(self, batch: pa.RecordBatch) -> None:
        shape = check_batch_inputs(batch, self.spec)
        if self.shape is None:
            self.shape = shape
        elif shape != self.shape:
            what = "images of" if self.spec.kind == "image" else "feature vectors of"
            raise DataError(f"the training rows hold {what} different sizes: {self.shape} and {shape}; "
                            "every row must have the same size")
        if "__weight" in batch.schema.names and batch.column("__weight").null_count:
            raise DataError(f"weight column {self.spec.weight} holds NULL in some row")

    def _holdout(self, batch: pa.RecordBatch) -> None:
        if self.holdout_writer is None:
            self.holdout_writer = pa.ipc.new_file(os.path.join(self.folder, "holdout.arrow"), batch.schema)
        self.holdout_writer.write_batch(batch)
        self.holdout_rows += batch.num_rows

    def _train(self, batch: pa.RecordBatch) -> None:
        if not self.writers:
            self.writers = [pa.ipc.new_file(os.path.join(self.folder, f"partition_{p}.arrow"), batch.schema)
                            for p in range(self.count)]
        self._accumulate_statistics(batch)
        ids = (self.train_seen + np.arange(batch.num_rows)) % self.count
        self.train_seen += batch.num_rows
        for p in range(self.count):
            mask = ids == p
            if mask.any():
                self.pending[p].append(batch.filter(pa.array(mask)))
                self.rows[p] += int(mask.sum())
                if sum(b.nbytes for b in self.pending[p]) >= CHUNK_BYTES:
                    self._flush(p)

    def _flush(self, p: int) -> None:
        if self.pending[p]:
            table = pa.Table.from_batches(self.pending[p]).combine_chunks()
            for chunk in table.to_batches():
                self.writers[p].write_batch(chunk)
            self.pending[p] = []

    def _accumulate_statistics(self, batch: pa.RecordBatch) -> None:
        x = fixed_width_view(batch.column("__x"), self.shape, self.spec.kind)  # type: ignore[arg-type]
        if self.spec.kind == "image":
            counts = np.stack([np.bincount(x[..., c].ravel(), minlength=256) for c in range(3)])
            self.stats = counts if self.stats is None else self.stats + counts
        else:
            values = x.astype(np.float64)
            sums = np.stack([values.sum(0), (values * values).sum(0), np.full(values.shape[1], len(values))])
            self.stats = sums if self.stats is None else self.stats + sums

    def close(self) -> None:
        """Write what is buffered and close every file."""
        for p in range(len(self.writers)):
            self._flush(p)
        for w in self.writers + ([self.holdout_writer] if self.holdout_writer is not None else []):
            w.close()

    def finish(self, classes: tuple[Any, ...] | None, spec: DataSpec, label_run: LabelRun | None) -> TrainingData:
        """The materialized data's description, once every row is written."""
        if self.train_seen == 0:
            raise DataError(
                f"the training query gave no training rows ({self.fingerprint_rows} rows with a label, "
                f"{self.holdout_rows} held out, {self.dropped} without a label)"
            )
        if classes is None:
            classes = tuple(sorted(self.labels))
        else:
            unknown = sorted(set(self.labels) - set(classes), key=str)
            if unknown:
                raise DataError(f"label {unknown[0]!r} in column {spec.label} is not one of the classes {list(classes)!r}")
        if len(classes) < 2:
            raise DataError(f"training needs at least two classes; the label column {spec.label} has "
                            f"{len(classes)}: {list(classes)!r}")
        mean, std = self._normalization()
        return TrainingData(
            folder=self.folder, kind=spec.kind, input_shape=tuple(self.shape or ()), classes=tuple(classes),
            partitions=tuple(f"partition_{p}.arrow" for p in range(self.count)), partition_rows=tuple(self.rows),
            holdout="holdout.arrow" if self.holdout_writer is not None else None, holdout_rows=self.holdout_rows,
            has_label=spec.label is not None, has_probs=spec.probs is not None, has_weight=spec.weight is not None,
            mean=mean, std=std, fingerprint=Fingerprint(self.fingerprint_rows, f"{self.hash_sum:016x}"),
            dropped_rows=self.dropped, label_run=label_run.run_id if label_run else None, inputs=spec.inputs,
        )

    def _normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.spec.kind == "image":
            levels = np.arange(256, dtype=np.float64) / 255.0
            total = self.stats.sum(1)
            mean = (self.stats * levels).sum(1) / total
            var = (self.stats * levels ** 2).sum(1) / total - mean ** 2
        else:
            sums, squares, n = self.stats
            mean = sums / n
            var = squares / n - mean ** 2
        std = np.sqrt(np.maximum(var, 0.0))
        std = np.where(std < 1e-6, 1.0, std)
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _image_shape(batch: pa.RecordBatch, column: str) -> tuple[int, ...]:
    heights, widths = (pc.min_max(batch.column(c)) for c in ("__h", "__w"))
    if heights["min"] != heights["max"] or widths["min"] != widths["max"]:
        raise DataError(
            f"the training images have different sizes (height {heights['min'].as_py()}..{heights['max'].as_py()}, "
            f"width {widths['min'].as_py()}..{widths['max'].as_py()}); every image must have the same size"
        )
    h, w = heights["min"].as_py(), widths["min"].as_py()
    if h is None or w is None:
        raise DataError("the height or width column holds NULL")
    lengths = pc.min_max(pc.binary_length(batch.column("__x")))
    if lengths["min"].as_py() != h * w * 3 or lengths["max"].as_py() != h * w * 3:
        raise DataError(
            f"image column {column}: expected {h}x{w}x3 = {h * w * 3} bytes of RGB per row (a frames table's "
            f"frame), found {lengths['min'].as_py()}..{lengths['max'].as_py()} bytes"
        )
    return (int(h), int(w), 3)


def _feature_shape(x: pa.Array, inputs: tuple[str, ...]) -> tuple[int, ...]:
    lengths = pc.min_max(pc.list_value_length(x))
    if lengths["min"].as_py() != lengths["max"].as_py():
        raise DataError(f"the list columns among {', '.join(inputs)} have different lengths in different rows "
                        f"({lengths['min'].as_py()}..{lengths['max'].as_py()}); every row needs the same number of features")
    values = pc.list_flatten(x)
    if values.null_count:
        raise DataError(f"the input columns {', '.join(inputs)} hold NULL in some row: filter or coalesce it")
    bad = len(values) - (pc.sum(pc.is_finite(values)).as_py() or 0)
    if bad:
        raise DataError(f"the input columns {', '.join(inputs)} hold {bad} NaN or infinite value{'s' if bad > 1 else ''}:"
                        " filter or impute them (a network trained on them learns NaN)")
    return (int(lengths["min"].as_py()),)


def fixed_width_view(array: pa.Array, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """The rows of a column of equal-length BLOBs (uint8) or float lists, as a (rows, *shape)
    numpy array over Arrow's buffer (no copy)."""
    n = len(array)
    if kind == "image":
        width = int(np.prod(shape))
        offsets_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
        offsets = np.frombuffer(array.buffers()[1], dtype=offsets_type, count=array.offset + n + 1)
        start = int(offsets[array.offset])
        data = np.frombuffer(array.buffers()[2], dtype=np.uint8, count=n * width, offset=start)
        return data.reshape((n, *shape))
    values = pc.list_flatten(array).to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape((n, *shape))
