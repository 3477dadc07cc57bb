"""Offline prediction: ``SELECT * FROM predict(<model>, (<query>))``, the computation behind the
planner's :class:`~engine.planner.steps.PredictStep`.

The query runs in DuckDB and its rows arrive as Arrow record batches; for images a background
thread fetches and decodes the next batch while the model runs on the current one (torch uses
the machine's cores inside each call; a small numeric network may run on one thread, beside
DuckDB's scan, when a :class:`~engine.serving.batch_size.ThreadTrial` measures it faster).
Rows go through the network in batches of the size
:class:`~engine.serving.batch_size.BatchSizeSearch` finds fastest per row (remembered per
model weights, input shape and torch thread count for the process: the answer is the
machine's, not the connection's), or of the ``batch_size`` option.  The relation has the
query's columns and three more: ``predicted_label``, ``predicted_class_id`` and
``predicted_score``.

>>> import engine, numpy as np
>>> con = engine.connect(progress="off")
>>> _ = con.execute("CREATE MODEL tiny FROM 'data/mobilenet_v2.pth' WITH (architecture = 'mobilenet_v2')")
>>> _ = engine.frames_from_numpy(con, "clip", np.zeros((3, 32, 32, 3), np.uint8))
>>> con.execute("SELECT frame_id, predicted_label FROM predict(tiny, (SELECT * FROM clip)) ORDER BY 1").fetchall()
[(0, 'class_21'), (1, 'class_21'), (2, 'class_21')]
>>> con.execute("SELECT tiny(frame).label FROM clip WHERE frame_id = 0").fetchall()   # the same computation
[('class_21',)]
"""
from __future__ import annotations

import time
from collections.abc import Generator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine.errors import OperationalError, ProgrammingError
from engine.options import Option, text, whole

if TYPE_CHECKING:
    import duckdb

    from engine.inference.model_catalog import ModelVersion
    from engine.planner.annotations import PredictionRequest
    from engine.serving.input_columns import Group, InputReader
    from engine.serving.predictor import Predictor
    from engine.session import Session

#: The named arguments of predict(...) (``batch_size => 64``), checked like statement options.
PREDICT_OPTIONS: Mapping[str, Option] = {
    "batch_size": Option(whole(1, 1_000_000), None, "rows per network call (default: searched, the fastest per row)"),
    "version": Option(whole(1, 10**9), None, "the model version to predict with (default: the current one)"),
    "input": Option(text, None, "image models: the BLOB column to read (default: frame, else the only BLOB column)"),
}

#: The columns predict(...) adds to the query's.
OUTPUT_COLUMNS = ("predicted_label", "predicted_class_id", "predicted_score")
#: Rows per Arrow batch read from the query: images, numeric rows.
IMAGE_BATCH_ROWS, NUMERIC_BATCH_ROWS = 256, 16384
#: The batch-size search over numeric rows starts here: a call costs about 100 microseconds in
#: Python and torch whatever the model, so a batch needs about a thousand rows to pay for it.
NUMERIC_SEARCH_START = 1024
#: Where a session keeps the statistics of its recent predictions.
STATS = "serving.predictions"
#: The batch sizes found fastest in this process, by (model, version, weights, input shape, torch threads).
FASTEST: dict[tuple[Any, ...], int] = {}
#: The searches under way in this process, by the same key (a small predict measures some sizes, the next goes on).
SEARCHES: dict[tuple[Any, ...], Any] = {}
#: Numeric models: the torch thread count found fastest (one, or all: see ThreadTrial), and the trials under way.
FASTEST_THREADS: dict[tuple[Any, ...], int] = {}
THREAD_TRIALS: dict[tuple[Any, ...], Any] = {}


@dataclass
class PredictionStats:
    """What one ``predict(...)`` did."""

    model: str
    version: int
    input: str
    rows: int = 0               # rows of the query
    predicted: int = 0          # rows with an input (not NULL)
    batches: int = 0            # network calls
    batch_size: int = 0         # the size used after the search (or given)
    searched: bool = False      # whether this call ran the search
    seconds: float = 0.0
    network_seconds: float = 0.0
    threads: int = 0            # torch threads (the fewest used after a thread trial)
    sizes: dict[int, int] = field(default_factory=dict)  # network calls by batch size


def options_of(request: PredictionRequest) -> dict[str, Any]:
    """The call's options with their defaults filled in."""
    return {**{name: option.default for name, option in PREDICT_OPTIONS.items()}, **dict(request.options)}


def predict_relation(session: Session, request: PredictionRequest, rows: duckdb.DuckDBPyRelation) -> pa.Table:
    """The rows of ``rows`` (the request's query, planned and ready) with their predictions."""
    from engine.inference.model_catalog import require_version
    from engine.serving.input_columns import input_reader
    from engine.serving.predictor import Predictor

    options = options_of(request)
    version = require_version(session, request.model, options["version"])
    predictor = Predictor.load(session, version)
    batch_rows = NUMERIC_BATCH_ROWS if predictor.input.is_numeric else IMAGE_BATCH_ROWS
    session.quiesce()  # DuckDB runs a relation only when no execute() result is pending
    # the bar's total costs a second run of the query: only for a bar somebody sees
    total = int(rows.aggregate("count(*)").fetchall()[0][0]) if session.shows_progress() else None
    batches = rows.to_arrow_reader(batch_rows)
    with closing(batches):  # an error midway leaves no open result on the connection
        _check_output_names(batches.schema)
        reader = input_reader(batches.schema, predictor.input, options["input"], predictor.numeric_dtype)
        stats = PredictionStats(version.model, version.version, reader.describe())
        started = time.perf_counter()
        sizes = _BatchSizes(version, options["batch_size"], batch_rows, stats)
        out: list[pa.RecordBatch] = []
        desc = f"predict {version.model} (version {version.version})"
        decoded = _decoded(batches, reader, ahead=not predictor.input.is_numeric)
        threads = _Threads(sizes)
        try:
            with session.progress(total, desc, unit="row") as bar, closing(decoded), threads:
                for batch, groups in decoded:
                    session.check_cancelled("predict")
                    threads.begin(groups)
                    out.append(_with_predictions(batch, groups, predictor, sizes, stats))
                    threads.end(batch.num_rows)
                    stats.rows += batch.num_rows
                    bar.update(batch.num_rows)
        except (pa.ArrowException, OSError) as e:  # DuckDB's errors (an interrupt too) reach the batch reader as Arrow's
            session.check_cancelled("predict")
            raise OperationalError(f"predict: reading the query's rows failed: {e}") from e
    stats.threads = threads.used
    stats.seconds = time.perf_counter() - started
    stats.batch_size = sizes.chosen()
    history = session.state.setdefault(STATS, [])
    history.append(stats)
    del history[:-100]
    schema = out[0].schema if out else _output_schema(batches.schema)
    return pa.Table.from_batches(out, schema=schema)


def _check_output_names(schema: pa.Schema) -> None:
    taken = sorted(set(OUTPUT_COLUMNS) & {n.lower() for n in schema.names})
    if taken:
        raise ProgrammingError(f"predict adds the column {taken[0]}, which the query already has; rename it in the "
                               "query (AS another name)")


def _output_schema(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field(OUTPUT_COLUMNS[0], pa.dictionary(pa.int32(), pa.string()))).append(
        pa.field(OUTPUT_COLUMNS[1], pa.int32())).append(pa.field(OUTPUT_COLUMNS[2], pa.float64()))


def _decoded(batches: pa.RecordBatchReader, reader: InputReader,
             ahead: bool) -> Generator[tuple[pa.RecordBatch, list[Group]]]:
    """Each record batch with its decoded inputs; with ``ahead``, fetched and decoded one batch
    ahead in a background thread.  Numeric rows are decoded inline: their decoding is NumPy
    holding the GIL, so a second thread gains nothing and makes the network's thread wait for
    the GIL after every torch call (measured: 0.08 s of 0.35 s over 1M rows)."""
    from engine.prefetch import prefetch

    decoded = ((batch, reader.decode(batch)) for batch in batches)
    yield from prefetch(decoded, depth=2) if ahead else decoded


class _BatchSizes:
    """The batch size to run: given, remembered for this version and input shape, or searched."""

    def __init__(self, version: ModelVersion, fixed: int | None, limit: int,
                 stats: PredictionStats) -> None:
        import torch

        self.known = FASTEST
        self.version, self.fixed, self.limit, self.stats = version, fixed, limit, stats
        self.threads = torch.get_num_threads()  # part of the key: the fastest size depends on it
        self.searches = SEARCHES
        self.used: set[tuple[Any, ...]] = set()

    def key(self, shape: tuple[int, ...]) -> tuple[Any, ...]:
        return (self.version.model, self.version.version, self.version.weights_sha256, shape, self.threads)

    def next_size(self, shape: tuple[int, ...]) -> int:
        if self.fixed is not None:
            return self.fixed
        key = self.key(shape)
        self.used.add(key)
        if key in self.known:
            return self.known[key]
        from engine.serving.batch_size import BatchSizeSearch

        numeric = len(shape) == 1  # numeric rows: start higher and grow faster (see NUMERIC_SEARCH_START)
        search = self.searches.setdefault(key, BatchSizeSearch(limit=self.limit, start=NUMERIC_SEARCH_START if numeric
                                                               else 1, growth=4 if numeric else 2))
        self.stats.searched = True
        return int(search.next_size())

    def record(self, shape: tuple[int, ...], size: int, rows: int, seconds: float) -> None:
        """Account a network call asked for ``size`` rows that ran ``rows`` in ``seconds``.  A
        call short of its size because its group ran out of rows counts at its own time per row:
        where every Arrow batch holds fewer rows than the size (NULL inputs, DuckDB's smaller
        batches), no call at that size is ever full, and the search would never end."""
        search = self.searches.get(self.key(shape))
        if search is None or search.done or rows <= 0:
            return
        search.record(size, seconds * size / rows)
        if search.done:
            self.known[self.key(shape)] = search.best

    def next_threads(self, shape: tuple[int, ...]) -> int:
        """The torch threads of the next round: all of them, except that a numeric model whose
        batch size is settled runs one thread when a :class:`ThreadTrial` finds it faster."""
        key = self.key(shape)
        if len(shape) != 1 or self.threads <= 1 or key not in self.known:
            return self.threads
        if key in FASTEST_THREADS:
            return FASTEST_THREADS[key]
        from engine.serving.batch_size import ThreadTrial

        return int(THREAD_TRIALS.setdefault(key, ThreadTrial(self.threads)).next_threads())

    def record_round(self, shape: tuple[int, ...], threads: int, rows: int, seconds: float) -> None:
        key = self.key(shape)
        trial = THREAD_TRIALS.get(key)
        if trial is None or trial.done:
            return
        trial.record(threads, rows, seconds)
        if trial.done:
            FASTEST_THREADS[key] = trial.best

    def chosen(self) -> int:
        """The size settled on (the largest over input shapes; 0 when nothing ran)."""
        if self.fixed is not None:
            return self.fixed
        sizes = [self.known[k] if k in self.known else self.searches[k].best for k in self.used]
        return max(sizes, default=0)


class _Threads:
    """The torch thread count of each round of the predict loop (see :meth:`_BatchSizes.next_threads`),
    timed for the trial; the process's count is put back when the loop ends."""

    def __init__(self, sizes: _BatchSizes) -> None:
        self.sizes = sizes
        self.used = sizes.threads
        self.current = sizes.threads
        self.shape: tuple[int, ...] | None = None
        self.started = 0.0

    def __enter__(self) -> _Threads:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.current != self.sizes.threads:
            import torch

            torch.set_num_threads(self.sizes.threads)

    def begin(self, groups: list[Group]) -> None:
        self.shape = tuple(groups[0][1].shape[1:]) if len(groups) == 1 else None
        if self.shape is None:
            return
        wanted = self.sizes.next_threads(self.shape)
        if wanted != self.current:
            import torch

            torch.set_num_threads(wanted)
            self.current = wanted
        self.used = min(self.used, wanted)

    def end(self, rows: int) -> None:
        now = time.perf_counter()
        if self.shape is not None and self.started:
            self.sizes.record_round(self.shape, self.current, rows, now - self.started)
        self.started = now


def _with_predictions(batch: pa.RecordBatch, groups: list[Group], predictor: Predictor, sizes: _BatchSizes,
                      stats: PredictionStats) -> pa.RecordBatch:
    n = batch.num_rows
    class_ids = np.zeros(n, dtype=np.int32)   # stays 0 (masked) where the input is NULL
    scores = np.zeros(n, dtype=np.float64)
    predicted_rows = 0
    whole = len(groups) == 1 and len(groups[0][0]) == n  # no NULL input and one shape: rows in order
    for rows, inputs in groups:
        shape = tuple(inputs.shape[1:])
        start = 0
        while start < len(rows):
            size = sizes.next_size(shape)
            chunk = slice(start, start + size)
            began = time.perf_counter()
            predicted = predictor.predict(inputs[chunk])
            seconds = time.perf_counter() - began
            sizes.record(shape, size, len(predicted), seconds)
            stats.network_seconds += seconds
            stats.batches += 1
            stats.sizes[len(predicted)] = stats.sizes.get(len(predicted), 0) + 1
            if whole and len(predicted) == n:  # one call for the whole batch: its arrays are the columns
                class_ids, scores = predicted.class_ids, predicted.scores
            else:
                at = chunk if whole else rows[chunk]
                class_ids[at], scores[at] = predicted.class_ids, predicted.scores
            start += size
        predicted_rows += len(rows)
    stats.predicted += predicted_rows
    missing = None
    if not whole:
        present = np.zeros(n, dtype=bool)
        for rows, _ in groups:
            present[rows] = True
        missing = ~present
    ids = pa.array(class_ids, pa.int32(), mask=missing)
    # the labels as a dictionary over the class names (DuckDB reads it as VARCHAR): no string copied per row
    labels = pa.DictionaryArray.from_arrays(ids, pa.array(predictor.label_names, pa.string()))
    return pa.RecordBatch.from_arrays(
        [*batch.columns, labels, ids, pa.array(scores, pa.float64(), mask=missing)],
        schema=_output_schema(batch.schema),
    )


def explain_prediction(session: Session, request: PredictionRequest) -> str:
    """What ``predict(...)`` will do, validated and computing nothing: model version, input,
    rows and batch size (EXPLAIN shows it)."""
    from engine.inference.model_catalog import require_version
    from engine.planner import CatalogSnapshot, optimize
    from engine.planner.steps import plan_steps
    from engine.serving.input_columns import input_reader
    from engine.serving.model_inputs import model_input

    options = options_of(request)
    version = require_version(session, request.model, options["version"])
    head = f"PREDICT {version.model} (version {version.version}, {version.spec.architecture}) OVER"
    query = f"  ({request.query.sql('duckdb')})"
    if plan_steps(optimize(request.query, CatalogSnapshot.of(session.functions)))[-1].rewritten:  # type: ignore[union-attr]
        return "\n".join([head, query, "  (the query calls models itself: it is planned when the statement runs)"])
    session.quiesce()
    relation = session.relation(request.query)
    schema = relation.limit(0).to_arrow_table().schema
    _check_output_names(schema)
    reader = input_reader(schema, model_input(version), options["input"])
    rows = int(relation.aggregate("count(*)").fetchall()[0][0])
    remembered = [size for key, size in FASTEST.items()
                  if key[:3] == (version.model, version.version, version.weights_sha256)]
    if options["batch_size"] is not None:
        batch = f"{options['batch_size']} (given)"
    elif remembered:
        batch = f"{max(remembered)} (found fastest per row by an earlier predict in this process)"
    else:
        batch = "searched: 1, 2, 4, ... rows while the time per row falls, then the fastest"
    return "\n".join([
        head,
        query,
        f"  input        {reader.describe()}",
        f"  rows         {rows}",
        f"  batch size   {batch}",
        f"  output       the query's columns, then {', '.join(OUTPUT_COLUMNS)}",
    ])


def prediction_statistics(session: Session) -> list[PredictionStats]:
    """The statistics of the session's recent ``predict(...)`` calls, oldest first."""
    return list(session.state.get(STATS, []))
