"""The rows path: the label model fitted over the rows' own votes, the labels written from Arrow.

With many functions nearly every row has a vote pattern of its own (30 functions over 1M
rows: 998,779 patterns), and counting the patterns (a GROUP BY), sorting them and joining the
predictions back to the rows costs more than it saves.  The rows path reads the label
matrix once as it is, ``(key, c0, ..., gold)``: a row's votes are its packed code columns,
8 bytes for up to 30 functions (a bit-packed dense matrix: 2 bits a vote for k <= 3, so
smaller than the sparse ``(row, function, vote)`` triples), and the label model reads each
row as a pattern of count 1 (:meth:`VotePatterns.of_rows`), in slices
(:data:`~engine.labeling.patterns.CHUNK`).  The fit is the same EM as on the pattern table
(same sums, in another order).  The label table is then a view computing each row's label
from its stored codes and the model's lookup tables (:mod:`engine.labeling.storage`), or, for
majority vote and ``storage = 'table'``, written from Arrow record batches, one slice at a
time, streamed into ``CREATE TABLE``: no join, no per-row Python.  (For the
pattern path this writer is no faster than DuckDB's join of the predictions back to the
rows, measured at 1M rows x 10 functions, so that path keeps the join, which spills.)
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
from sqlglot import exp

from engine.errors import translate
from engine.labeling.classes import LabelClasses
from engine.labeling.matrix import LabelMatrix
from engine.labeling.patterns import CHUNK, VotePatterns
from engine.labeling.writer import PROVENANCE

if TYPE_CHECKING:
    from engine.session import Session


@dataclass
class RowMatrix:
    """The label matrix in memory, in its table's row order: the keys (as Arrow), each row's
    votes as a pattern of count 1, and each row's gold class code (0: none), if any."""

    keys: pa.ChunkedArray
    patterns: VotePatterns
    gold: np.ndarray | None

    @classmethod
    def fetch(cls, session: Session, matrix: LabelMatrix) -> RowMatrix:
        """Read ``(key, c0, ..., gold)`` of the label-matrix table once, as Arrow."""
        names = matrix.layout.names
        columns = ["key", *names, *(["gold"] if matrix.has_gold else [])]
        session.quiesce()  # DuckDB reads no relation while an earlier result is unfinished
        try:
            table = session.relation(exp.select(*columns).from_(matrix.ref())).to_arrow_table()
        except duckdb.Error as e:  # raised while reading (out of memory, say)
            raise translate(e) from e
        packed = [table.column(name).to_numpy() for name in names]
        patterns = VotePatterns.of_rows(matrix.layout.group_codes(packed), matrix.layout.groups)
        patterns.keep_tally()  # read by the fit's start, the analysis, the coverage and n_votes
        gold = None
        if matrix.has_gold:
            gold = table.column("gold").fill_null(0).to_numpy().astype(np.int8)
        return cls(table.column("key"), patterns, gold)

    def __len__(self) -> int:
        return len(self.patterns)


def label_batches(rows: RowMatrix, fitted: Any, classes: LabelClasses, ties_abstain: bool) -> Iterator[pa.RecordBatch]:
    """The label table's rows, one slice of :data:`CHUNK` rows at a time: ``key``, ``label``,
    ``probs``, ``n_votes``, ``gold`` (whether the row's label is its gold label), ``weight``
    (as :class:`~engine.labeling.writer.Predictions`: gold labels override weak ones)."""
    values = pa.array(list(classes.values), type=classes.arrow_type)
    k = classes.k
    for start, chunk in zip(range(0, len(rows), CHUNK), rows.patterns.chunks(CHUNK)):
        probs = fitted.predict_proba(chunk).T  # (k, P): classes in rows, each contiguous
        labels = probs.argmax(axis=0)
        weight = probs.max(axis=0)
        if ties_abstain:
            labels = np.where(np.isclose(probs, weight).sum(axis=0) > 1, -1, labels)
            weight = np.where(labels >= 0, weight, 0.0)
        gold = rows.gold[start:start + len(chunk)] if rows.gold is not None else None
        is_gold = gold > 0 if gold is not None else np.zeros(len(chunk), dtype=bool)
        if is_gold.any():
            assert gold is not None
            labels = np.where(is_gold, gold.astype(np.int64) - 1, labels)
            probs = np.where(is_gold, np.arange(k)[:, None] == gold.astype(np.int64) - 1, probs)
            weight = np.where(is_gold, 1.0, weight)
        offsets = pa.array(np.arange(0, len(chunk) * k + 1, k, dtype=np.int32))
        yield pa.RecordBatch.from_arrays([
            rows.keys.slice(start, len(chunk)).combine_chunks(),
            values.take(pa.array(labels, type=pa.int64(), mask=labels < 0)),
            pa.ListArray.from_arrays(offsets, pa.array(probs.T.ravel(), type=pa.float64())),
            pa.array(chunk.n_votes(), type=pa.int32()),
            pa.array(is_gold),
            pa.array(weight, type=pa.float64()),
        ], names=["key", "label", "probs", "n_votes", "gold", "weight"])


def write_rows(session: Session, rows: RowMatrix, fitted: Any, classes: LabelClasses, target: exp.Table, key: str,
               ties_abstain: bool) -> None:
    """``CREATE TABLE target`` from the streamed :func:`label_batches` (the same
    columns and types as the pattern path's join writes)."""
    batches = label_batches(rows, fitted, classes, ties_abstain)
    first = next(batches)
    reader = pa.RecordBatchReader.from_batches(first.schema, _chain(first, batches))
    name = f"__mallard_label_rows_{id(rows):x}"
    provenance = exp.Case(ifs=[exp.If(this=exp.column("gold"), true=exp.Literal.string("gold"))],
                          default=exp.Literal.string("weak"))
    query = exp.select(
        exp.alias_(exp.column("key"), exp.to_identifier(key, quoted=True)),
        "label", "probs", "n_votes",
        exp.alias_(exp.cast(provenance, PROVENANCE), "provenance"),
        "weight",
    ).from_(name)
    session.register(name, reader)
    try:
        session.sql(exp.Create(this=target.copy(), kind="TABLE", expression=query))
    finally:
        session.unregister(name)


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest
