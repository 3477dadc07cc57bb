"""Synthetic label matrices with known truth, for tests and benchmarks.

Labeling functions are conditionally independent given the true class: function j votes
on a row with probability ``coverage[j]`` (independently of the class) and, when it votes,
votes the true class with probability ``accuracy[j]``, else a uniformly drawn wrong class.

>>> data = synthetic_votes(n=1000, m=5, k=3, seed=0)
>>> data.votes.shape, data.votes.dtype.name, int(data.votes.max()) <= 3
((1000, 5), 'int8', True)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class SyntheticVotes:
    """``votes`` (n x m int8: 0 abstain, i + 1 class i), the true classes, and the generating
    accuracies, coverages and class balance."""

    votes: np.ndarray
    truth: np.ndarray
    accuracy: np.ndarray
    coverage: np.ndarray
    balance: np.ndarray

    def empirical_accuracies(self) -> np.ndarray:
        """Each function's accuracy on this sample: correct votes / votes."""
        voted = self.votes > 0
        right = (self.votes - 1 == self.truth[:, None]) & voted
        return right.sum(axis=0) / np.maximum(voted.sum(axis=0), 1)

    def to_arrow(self, key: str = "id", prefix: str = "lf") -> pa.Table:
        """A table ``(id, lf0, lf1, ...)`` whose votes are class indexes 0..k-1, NULL to abstain."""
        columns: dict[str, Any] = {key: pa.array(np.arange(len(self.votes), dtype=np.int64))}
        for j in range(self.votes.shape[1]):
            column = self.votes[:, j]
            columns[f"{prefix}{j}"] = pa.array(column.astype(np.int64) - 1, mask=column == 0)
        return pa.table(columns)


def synthetic_votes(n: int, m: int, k: int = 2, *, seed: int = 0, accuracy: tuple[float, float] = (0.55, 0.95),
                    coverage: tuple[float, float] = (0.1, 0.6), balance: np.ndarray | None = None) -> SyntheticVotes:
    """Draw a label matrix of ``n`` rows and ``m`` functions over ``k`` classes."""
    rng = np.random.default_rng(seed)
    acc = rng.uniform(*accuracy, size=m)
    cov = rng.uniform(*coverage, size=m)
    prior = np.full(k, 1.0 / k) if balance is None else np.asarray(balance, dtype=np.float64)
    truth = rng.choice(k, size=n, p=prior)
    votes = np.zeros((n, m), dtype=np.int8)
    for j in range(m):
        voted = rng.random(n) < cov[j]
        right = rng.random(n) < acc[j]
        wrong = (truth + rng.integers(1, k, size=n)) % k if k > 1 else truth
        votes[:, j] = np.where(voted, np.where(right, truth, wrong) + 1, 0)
    return SyntheticVotes(votes, truth, acc, cov, prior)


def synthetic_votes_query(n: int, m: int, k: int = 2, *, seed: int = 0, accuracy: tuple[float, float] = (0.55, 0.95),
                          coverage: tuple[float, float] = (0.1, 0.6)) -> str:
    """A DuckDB query drawing the same kind of label matrix inside DuckDB, for tables larger than
    memory: ``(id, truth, lf0, ...)`` with votes as class indexes (TINYINT, NULL abstains) and
    uniform classes.  Each draw is DuckDB's ``hash`` of one composite value per (row, function,
    purpose) (its hash of several values combines them weakly: low bits agree), so nothing
    passes through Python; the accuracies and coverages are :func:`synthetic_parameters`.

    >>> import duckdb
    >>> query = synthetic_votes_query(n=20_000, m=3, k=2, seed=1)
    >>> rows, voted, right = duckdb.sql(f"SELECT count(*), count(lf0), avg((lf0 = truth)::INT) FROM ({query})").fetchall()[0]
    >>> accuracy, coverage = synthetic_parameters(3, seed=1)
    >>> rows, round(voted / rows, 2), round(float(coverage[0]), 2), round(right, 2), round(float(accuracy[0]), 2)
    (20000, 0.58, 0.57, 0.76, 0.75)
    """
    if not 1 <= m <= 60 or k < 2 or seed < 0:
        raise ValueError(f"expected 1 to 60 functions, 2 classes or more and a seed >= 0, found m={m}, k={k}, seed={seed}")
    acc, cov = synthetic_parameters(m, seed, accuracy, coverage)
    salt = (seed % 16) * 256
    span = float(2**64)

    def draw(j: int, purpose: int) -> str:
        return f"hash(id * 4096 + {salt + 4 * j + purpose})"

    votes = []
    for j in range(m):
        wrong = f"(truth + 1 + {draw(j, 3)} % {k - 1}) % {k}"
        votes.append(f"CASE WHEN {draw(j, 1)} < {int(cov[j] * span)}::UBIGINT THEN (CASE WHEN {draw(j, 2)} < "
                     f"{int(acc[j] * span)}::UBIGINT THEN truth ELSE {wrong} END)::TINYINT END AS lf{j}")
    rows = f"SELECT range AS id, (hash(range * 4096 + {salt + 255}) % {k})::TINYINT AS truth FROM range({int(n)})"
    return f"SELECT id, truth, {', '.join(votes)} FROM ({rows})"


def synthetic_parameters(m: int, seed: int, accuracy: tuple[float, float] = (0.55, 0.95),
                         coverage: tuple[float, float] = (0.1, 0.6)) -> tuple[np.ndarray, np.ndarray]:
    """The generating accuracies and coverages of :func:`synthetic_votes_query`'s ``m`` functions."""
    rng = np.random.default_rng(seed)
    return rng.uniform(*accuracy, size=m), rng.uniform(*coverage, size=m)
