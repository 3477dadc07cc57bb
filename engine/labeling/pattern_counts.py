"""Mergeable vote-pattern counts: the label model's whole input, summed over row partitions.

The label model (Dawid-Skene or majority vote) reads a label matrix only as its distinct vote
patterns and the number of rows showing each (:class:`~engine.labeling.patterns.VotePatterns`).
Counts over disjoint row partitions add up: the counts of the whole table are the pattern-wise
sum of its partitions' counts.  So a partition (a Ray task, see :mod:`engine.cluster.labeling`)
returns its own counts, keyed by the same packed BIGINT code columns (``c0``, ...) the
label-matrix table holds, and the driver sums them and fits, without counting the patterns
of the whole matrix again.  The merged patterns come in the same code order as
:meth:`~engine.labeling.matrix.LabelMatrix.patterns`, so the fit and the predictions joined back
to the rows are exactly those of one node.

>>> import numpy as np
>>> from engine.labeling.matrix import CodeLayout
>>> layout = CodeLayout(m=3, k=2)
>>> votes = np.array([[1, 0, 2], [1, 0, 2], [0, 0, 1], [2, 2, 2]], dtype=np.int8)
>>> parts = [PatternCounts.of_votes(votes[:2], layout), PatternCounts.of_votes(votes[2:], layout)]
>>> PatternCounts.merge(parts, layout) == PatternCounts.of_votes(votes, layout)
True
>>> PatternCounts.merge(parts, layout).patterns(layout).counts.tolist()
[1, 2, 1]
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.labeling.matrix import CodeLayout, ordered_patterns
from engine.labeling.patterns import GROUP_BITS, VotePatterns

#: The column of the counts in :meth:`PatternCounts.to_arrow`.
COUNT_COLUMN = "n"


def packed_codes(votes: np.ndarray, layout: CodeLayout) -> list[np.ndarray]:
    """The packed code columns (BIGINT, as the label-matrix query writes them) of dense votes
    (rows x m; 0 abstains, i + 1 votes class i).

    >>> packed_codes(np.array([[1, 2], [0, 1]]), CodeLayout(m=2, k=2))[0].tolist()
    [9, 4]
    """
    groups = layout.groups.encode(np.asarray(votes))
    out = []
    for column in layout.columns:
        packed = np.zeros(len(votes), dtype=np.int64)
        for slot, g in enumerate(column):
            packed |= groups[g].astype(np.int64) << (GROUP_BITS * slot)
        out.append(packed)
    return out


@dataclass
class PatternCounts:
    """Distinct patterns as packed code ``columns`` (one entry per pattern) and their ``counts``."""

    columns: list[np.ndarray]
    counts: np.ndarray

    @classmethod
    def of_votes(cls, votes: np.ndarray, layout: CodeLayout) -> PatternCounts:
        """The counts of one partition's dense votes."""
        return cls.distinct(packed_codes(votes, layout), np.ones(len(votes), dtype=np.int64))

    @classmethod
    def distinct(cls, columns: Sequence[np.ndarray], weights: np.ndarray) -> PatternCounts:
        """Rows of ``columns`` grouped into distinct patterns (code order), summing ``weights``."""
        if not columns or len(columns[0]) == 0:
            return cls([np.zeros(0, dtype=np.int64) for _ in columns], np.zeros(0, dtype=np.int64))
        stacked = np.stack([np.asarray(c, dtype=np.int64) for c in columns], axis=1)
        if stacked.shape[1] == 1:
            unique, inverse = np.unique(stacked[:, 0], return_inverse=True)
            unique = unique[:, None]
        else:
            unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=weights, minlength=len(unique)).round().astype(np.int64)
        return cls([unique[:, i].copy() for i in range(unique.shape[1])], counts)

    @classmethod
    def merge(cls, parts: Sequence[PatternCounts], layout: CodeLayout) -> PatternCounts:
        """The counts of the union of the partitions: counts of the same pattern add."""
        if not parts:
            return cls([np.zeros(0, dtype=np.int64) for _ in layout.names], np.zeros(0, dtype=np.int64))
        columns = [np.concatenate([p.columns[i] for p in parts]) for i in range(len(layout.names))]
        return cls.distinct(columns, np.concatenate([p.counts for p in parts]).astype(np.float64))

    @property
    def n_rows(self) -> int:
        return int(self.counts.sum())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatternCounts):
            return NotImplemented
        return (len(self.columns) == len(other.columns) and np.array_equal(self.counts, other.counts)
                and all(np.array_equal(a, b) for a, b in zip(self.columns, other.columns)))

    def to_arrow(self, layout: CodeLayout) -> pa.Table:
        """``(c0, ..., n)``: how a task returns its counts."""
        table = {name: pa.array(c, pa.int64()) for name, c in zip(layout.names, self.columns)}
        return pa.table({**table, COUNT_COLUMN: pa.array(self.counts, pa.int64())})

    @classmethod
    def from_arrow(cls, table: pa.Table, layout: CodeLayout) -> PatternCounts:
        """The counts :meth:`to_arrow` wrote."""
        columns = [table.column(name).to_numpy().astype(np.int64) for name in layout.names]
        return cls(columns, table.column(COUNT_COLUMN).to_numpy().astype(np.int64))

    def patterns(self, layout: CodeLayout) -> VotePatterns:
        """The patterns as the label model reads them (code order, join codes for the rows)."""
        return ordered_patterns(layout, self.columns, self.counts)
