"""LF analysis, with Snorkel's names, computed from vote patterns and their counts.

- ``polarity``: the classes a function voted for;
- ``coverage``: fraction of rows it voted on;
- ``overlaps``: fraction of rows it and at least one other function voted on;
- ``conflicts``: fraction of rows it voted on where another function voted a different class;
- ``correct``, ``incorrect``, ``emp_acc``: its votes against gold labels (NULL without gold);
- ``learned_acc``: the label model's estimate of P(vote = truth | it voted).

>>> import numpy as np
>>> from engine.labeling.patterns import VotePatterns
>>> rows = VotePatterns.from_rows(np.array([[1, 1], [1, 1], [1, 2], [0, 2]]), k=2)
>>> stats = lf_analysis(["a", "b"], rows, None, ("ham", "spam"))
>>> [(s.lf, s.polarity, s.coverage, s.overlaps, s.conflicts) for s in stats]
[('a', ['ham'], 0.75, 0.75, 0.25), ('b', ['ham', 'spam'], 1.0, 0.75, 0.25)]
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.labeling.patterns import VotePatterns

ANALYSIS_COLUMNS = ("lf", "polarity", "coverage", "overlaps", "conflicts", "correct", "incorrect", "emp_acc",
                    "learned_acc")


@dataclass
class LFStats:
    """One labeling function's analysis."""

    lf: str
    polarity: list[str]
    coverage: float
    overlaps: float
    conflicts: float
    correct: int | None = None
    incorrect: int | None = None
    emp_acc: float | None = None
    learned_acc: float | None = None


def lf_analysis(names: Sequence[str], patterns: VotePatterns, gold: VotePatterns | None,
                class_texts: Sequence[str], learned: np.ndarray | None = None) -> list[LFStats]:
    """The analysis of each function (in ``names`` order) over ``patterns``."""
    n = max(float(patterns.n_rows), 1.0)
    by_vote = np.zeros((patterns.m, patterns.k + 1, 3))  # rows, shared rows, disputed rows by each function's vote
    for chunk in patterns.chunks():
        by_vote += _by_vote(chunk)
    confusion = _gold_confusion(gold) if gold is not None and gold.gold is not None else None
    out = []
    for j, name in enumerate(names):
        voted = by_vote[j, 1:, :].sum(axis=0) / n
        stats = LFStats(lf=name, polarity=[class_texts[int(c)] for c in np.flatnonzero(by_vote[j, 1:, 0] > 0)],
                        coverage=float(voted[0]), overlaps=float(voted[1]), conflicts=float(voted[2]))
        if confusion is not None:
            right = round(sum(confusion[j, y + 1, y] for y in range(patterns.k)))
            said = round(confusion[j, 1:, :].sum())
            stats.correct, stats.incorrect = right, said - right
            stats.emp_acc = right / said if said else None
        if learned is not None and np.isfinite(learned[j]):
            stats.learned_acc = float(learned[j])
        out.append(stats)
    return out


def _by_vote(patterns: VotePatterns) -> np.ndarray:
    """(m, k + 1, 3): rows, rows shared with another function, rows disputed, by each function's vote."""
    counts = patterns.counts.astype(np.float64)
    tally = patterns.tally()
    shared = counts * (tally.sum(axis=0) > 1.5)  # another function voted too
    disputed = counts * ((tally > 0).sum(axis=0) > 1)  # two different classes were voted
    return patterns.marginals(np.stack([counts, shared, disputed]))


def _gold_confusion(gold: VotePatterns) -> np.ndarray:
    """(m, k + 1, k): gold rows by each function's vote and their gold class."""
    assert gold.gold is not None
    weights = np.stack([gold.counts * (gold.gold == y + 1) for y in range(gold.k)]).astype(np.float64)
    return gold.marginals(weights)


def analysis_arrow(stats: Sequence[LFStats]) -> pa.Table:
    """The analysis as a table with :data:`ANALYSIS_COLUMNS`."""
    return pa.table({
        "lf": pa.array([s.lf for s in stats], pa.string()),
        "polarity": pa.array([s.polarity for s in stats], pa.list_(pa.string())),
        "coverage": pa.array([s.coverage for s in stats], pa.float64()),
        "overlaps": pa.array([s.overlaps for s in stats], pa.float64()),
        "conflicts": pa.array([s.conflicts for s in stats], pa.float64()),
        "correct": pa.array([s.correct for s in stats], pa.int64()),
        "incorrect": pa.array([s.incorrect for s in stats], pa.int64()),
        "emp_acc": pa.array([s.emp_acc for s in stats], pa.float64()),
        "learned_acc": pa.array([s.learned_acc for s in stats], pa.float64()),
    })
