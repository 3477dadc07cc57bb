"""Distinct vote patterns, held as small per-group codes so that every statistic is a few
table lookups and ``bincount`` calls, whatever the number of labeling functions.

A vote is 0 (abstain) or ``i + 1`` (class i) and takes ``bits`` bits.  Functions are grouped
so that a group's joint vote fits in 12 bits (6 functions for k <= 3): each pattern is then a
handful of integers below 4096.  A per-function table ``(m, k + 1, X)`` (say, log P(vote |
class)) becomes one ``(4096, X)`` table per group, and summing over functions is one lookup
per group; counting votes per function (an M-step, coverage) is one ``bincount`` per group.

>>> import numpy as np
>>> patterns = VotePatterns.from_rows(np.array([[1, 0, 2], [1, 0, 2], [0, 0, 1]]), k=2)
>>> patterns.counts.tolist(), patterns.votes.tolist()
([1, 2], [[0, 0, 1], [1, 0, 2]])
>>> patterns.tally().T.astype(int).tolist()   # votes per class, per pattern
[[1, 0], [1, 1]]
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np

GROUP_BITS = 12

#: Patterns (or rows) the label model reads at a time: each pass of the fit goes over the
#: patterns in slices of this many, so its temporaries stay small whatever the row count.
CHUNK = 1 << 18


@lru_cache(maxsize=64)
def _digits(bits: int, width: int) -> np.ndarray:
    """(2**(bits*width), width): the vote of each function in each joint code."""
    codes = np.arange(1 << (bits * width))
    mask = (1 << bits) - 1
    return np.stack([(codes >> (bits * i)) & mask for i in range(width)], axis=1)


@lru_cache(maxsize=64)
def _clipped_digits(bits: int, width: int, k: int) -> np.ndarray:
    """:func:`_digits` with impossible digits (above k: they never occur in data) clipped."""
    return np.minimum(_digits(bits, width), k)


@dataclass(frozen=True)
class VoteGroups:
    """How ``m`` functions voting over ``k`` classes are grouped into 12-bit joint codes."""

    m: int
    k: int

    @property
    def bits(self) -> int:
        return max(1, int(self.k).bit_length())  # enough for 0..k

    @property
    def size(self) -> int:
        """Functions per group."""
        return max(1, GROUP_BITS // self.bits)

    @property
    def groups(self) -> list[list[int]]:
        return [list(range(s, min(self.m, s + self.size))) for s in range(0, self.m, self.size)]

    def digits(self, group: list[int]) -> np.ndarray:
        return _clipped_digits(self.bits, len(group), self.k)

    @cached_property
    def tally_tables(self) -> list[np.ndarray]:
        """The :meth:`tables` counting each pattern's votes per class (see :meth:`VotePatterns.tally`)."""
        one_hot = np.zeros((self.m, self.k + 1, self.k))
        for y in range(self.k):
            one_hot[:, y + 1, y] = 1.0
        return self.tables(one_hot)

    def encode(self, votes: np.ndarray) -> list[np.ndarray]:
        """Group codes of dense votes (rows x m)."""
        out = []
        for group in self.groups:
            code = np.zeros(len(votes), dtype=np.intp)
            for i, j in enumerate(group):
                code |= np.asarray(votes[:, j], dtype=np.intp) << (self.bits * i)
            out.append(code)
        return out

    def decode(self, codes: list[np.ndarray]) -> np.ndarray:
        """Dense votes (patterns x m, int8) of group codes."""
        votes = np.empty((len(codes[0]) if codes else 0, self.m), dtype=np.int8)
        for group, code in zip(self.groups, codes):
            votes[:, group] = self.digits(group)[code]
        return votes

    def lookup(self, codes: list[np.ndarray], per_vote: np.ndarray) -> np.ndarray:
        """(X, P): for each pattern, the sum over functions j of ``per_vote[j, vote_j, :]``."""
        return self.apply(codes, self.tables(per_vote))

    def tables(self, per_vote: np.ndarray) -> list[np.ndarray]:
        """Per group, (X, codes): ``per_vote`` (m, k + 1, X) summed over the group's functions
        for each joint code; :meth:`apply` looks patterns up in them."""
        width = per_vote.shape[2]
        out = []
        for group in self.groups:
            digits = self.digits(group)
            table = np.zeros((width, len(digits)))
            for i, j in enumerate(group):
                table += per_vote[j][digits[:, i]].T
            out.append(table)
        return out

    def apply(self, codes: list[np.ndarray], tables: list[np.ndarray], out: np.ndarray | None = None,
              row: np.ndarray | None = None) -> np.ndarray:
        """(X, P): each pattern's entries in the group ``tables``, summed over the groups; into
        ``out`` when given, with ``row`` (P,) as scratch (nothing allocated then)."""
        width = tables[0].shape[0] if tables else 0
        n = len(codes[0]) if codes else 0
        if out is None:
            out = np.empty((width, n))
        if not tables:
            out.fill(0.0)
            return out
        # mode='clip': unbuffered (codes are below the table's size by construction)
        for x in range(width):  # the first group's entries are the sums' start
            np.take(tables[0][x], codes[0], out=out[x], mode="clip")
        if len(tables) > 1 and row is None:
            row = np.empty(n)
        for code, table in zip(codes[1:], tables[1:]):
            for x in range(width):
                np.take(table[x], code, out=row, mode="clip")
                out[x] += row
        return out

    def marginals(self, codes: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
        """(m, k + 1, X): for each function and vote, the total of ``weights`` (X, P) over the
        patterns where the function cast that vote."""
        return self.expand(self.joint(codes, weights))

    def joint(self, codes: list[np.ndarray], weights: np.ndarray) -> list[np.ndarray]:
        """Per group, (codes, X): the total of ``weights`` (X, P) over the patterns with each
        joint code (they add up over slices of the patterns; :meth:`expand` splits them)."""
        width = weights.shape[0]
        return [np.stack([np.bincount(code, weights=weights[x], minlength=1 << (self.bits * len(group)))
                          for x in range(width)], axis=1) for group, code in zip(self.groups, codes)]

    def expand(self, joints: list[np.ndarray]) -> np.ndarray:
        """(m, k + 1, X): the per-function marginals of the groups' :meth:`joint` totals."""
        width = joints[0].shape[1] if joints else 0
        out = np.zeros((self.m, self.k + 1, width))
        for group, joint in zip(self.groups, joints):
            digits = self.digits(group)
            for i, j in enumerate(group):
                for x in range(width):
                    out[j, :, x] = np.bincount(digits[:, i], weights=joint[:, x], minlength=self.k + 1)
        return out


@dataclass
class VotePatterns:
    """Distinct vote patterns: per-group ``codes`` (intp arrays) and their ``counts``.

    ``join_codes`` are the packed code columns of the label-matrix table (to join predictions
    back to rows); ``gold`` (gold patterns only) is each pattern's gold class code;
    ``unit_counts``: every count is 1 (the patterns are rows).
    """

    codes: list[np.ndarray]
    counts: np.ndarray
    groups: VoteGroups
    join_codes: dict[str, np.ndarray] = field(default_factory=dict)
    gold: np.ndarray | None = None
    unit_counts: bool = False  # every count is 1 (:meth:`of_rows`)
    _tally: np.ndarray | None = field(default=None, repr=False)
    _totals: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_rows(cls, votes: np.ndarray, k: int) -> VotePatterns:
        """Patterns of a dense label matrix (rows x m; 0 abstains, i + 1 votes class i)."""
        votes = np.asarray(votes, dtype=np.int8)
        unique, counts = np.unique(votes, axis=0, return_counts=True)
        groups = VoteGroups(votes.shape[1], k)
        return cls(groups.encode(unique), counts.astype(np.int64), groups)

    @classmethod
    def each_row(cls, votes: np.ndarray, k: int) -> VotePatterns:
        """Every row as its own pattern (count 1), in row order."""
        votes = np.asarray(votes, dtype=np.int8)
        groups = VoteGroups(votes.shape[1], k)
        return cls(groups.encode(votes), np.ones(len(votes), dtype=np.int64), groups)

    @classmethod
    def of_rows(cls, codes: list[np.ndarray], groups: VoteGroups) -> VotePatterns:
        """Each row as its own pattern (count 1), from its group codes, in row order: what the
        label model reads when the patterns are about as many as the rows.

        >>> groups = VoteGroups(m=3, k=2)
        >>> rows = VotePatterns.of_rows(groups.encode(np.array([[1, 0, 2], [1, 0, 2]])), groups)
        >>> rows.n_rows, rows.counts.tolist()
        (2, [1, 1])
        """
        n = len(codes[0]) if codes else 0
        return cls(codes, np.broadcast_to(np.int64(1), (n,)), groups, unit_counts=True)

    def chunks(self, size: int | None = None) -> Iterator[VotePatterns]:
        """Consecutive slices of at most ``size`` (default :data:`CHUNK`) patterns (views: nothing
        is copied); the patterns themselves when they are fewer.

        >>> rows = VotePatterns.each_row(np.array([[1, 0], [2, 1], [0, 1]]), k=2)
        >>> [len(chunk) for chunk in rows.chunks(2)]
        [2, 1]
        """
        size = size or CHUNK
        if len(self) <= size:
            yield self
            return
        for start in range(0, len(self), size):
            part = slice(start, start + size)
            yield VotePatterns([c[part] for c in self.codes], self.counts[part], self.groups,
                               gold=None if self.gold is None else self.gold[part], unit_counts=self.unit_counts,
                               _tally=None if self._tally is None else self._tally[:, part])

    def keep_tally(self) -> None:
        """Count each pattern's votes per class once, compactly (one byte a class and pattern
        below 256 functions), so that every later pass over :meth:`chunks` slices the counts
        instead of looking them up again."""
        if self._tally is not None:
            return
        tally = np.empty((self.k, len(self)), dtype=np.uint8 if self.m < 256 else np.uint16)
        start = 0
        for chunk in self.chunks():
            tally[:, start:start + len(chunk)] = chunk.tally()
            start += len(chunk)
        self._tally = tally

    @property
    def m(self) -> int:
        return self.groups.m

    @property
    def k(self) -> int:
        return self.groups.k

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def n_rows(self) -> int:
        return int(self.counts.sum())

    @property
    def votes(self) -> np.ndarray:
        """Dense votes (P x m); built on demand, for small inputs and tests."""
        return self.groups.decode(self.codes)

    def tally(self) -> np.ndarray:
        """(k, P): how many functions voted each class in each pattern."""
        if self._tally is None:
            self._tally = self.groups.apply(self.codes, self.groups.tally_tables)
        return self._tally

    def n_votes(self) -> np.ndarray:
        """Functions that voted on each pattern."""
        return self.tally().sum(axis=0).round().astype(np.int32)

    def n_covered(self) -> int:
        """Rows on which at least one function voted."""
        return int(sum(chunk.counts[chunk.n_votes() > 0].sum() for chunk in self.chunks()))

    def marginals(self, weights: np.ndarray) -> np.ndarray:
        return self.groups.marginals(self.codes, np.atleast_2d(weights))

    def vote_totals(self) -> np.ndarray:
        """(m, k + 1): rows by each function's vote (the counts' marginals)."""
        if self._totals is None:
            totals = np.zeros((self.m, self.k + 1))
            for chunk in self.chunks():
                totals += chunk.marginals(chunk.counts.astype(np.float64))[:, :, 0]
            self._totals = totals
        return self._totals
