"""LF analysis, with Snorkel's names, computed from vote patterns and their counts.

- ``polarity``: the classes a function voted for;
- ``coverage``: fraction of rows it voted on;
- ``overlaps``: fraction of rows it and at least one other function voted on;
- ``conflicts``: fraction of rows it voted on where another function voted a different class;
- ``correct``, ``incorrect``, ``emp_acc``: its votes against gold labels (NULL without gold);
- ``learned_acc``: the label model's estimate of P(vote = truth | it voted).

>>> import numpy as np
>>> from engine.labeling.matrix import VotePatterns
>>> rows = VotePatterns(np.array([[1, 1], [1, 2], [0, 2]], np.int8), np.array([2, 1, 1]))
>>> stats = lf_analysis(["a", "b"], rows, None, ("ham", "spam"))
>>> [(s.lf, s.polarity, s.coverage, s.overlaps, s.conflicts) for s in stats]
[('a', ['ham'], 0.75, 0.75, 0.25), ('b', ['ham', 'spam'], 1.0, 0.75, 0.25)]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pyarrow as pa

from engine.labeling.matrix import VotePatterns

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
    extra: dict[str, int] = field(default_factory=dict)


def lf_analysis(names: Sequence[str], patterns: VotePatterns, gold: VotePatterns | None,
                class_texts: Sequence[str], learned: np.ndarray | None = None) -> list[LFStats]:
    """The analysis of each function (in ``names`` order) over ``patterns``."""
    votes, counts = patterns.votes, patterns.counts.astype(np.float64)
    n = max(counts.sum(), 1.0)
    voted = votes > 0
    n_voting = voted.sum(axis=1)
    conflicted = _conflicted(votes)
    out = []
    for j, name in enumerate(names):
        mine = voted[:, j]
        polarity = [class_texts[c - 1] for c in np.unique(votes[mine, j]).tolist()]
        stats = LFStats(
            lf=name, polarity=polarity, coverage=float(counts[mine].sum() / n),
            overlaps=float(counts[mine & (n_voting > 1)].sum() / n),
            conflicts=float(counts[mine & conflicted].sum() / n),
        )
        if gold is not None and gold.gold is not None:
            gold_votes = gold.votes[:, j]
            said = gold_votes > 0
            stats.correct = int(gold.counts[said & (gold_votes == gold.gold)].sum())
            stats.incorrect = int(gold.counts[said & (gold_votes != gold.gold)].sum())
            total = stats.correct + stats.incorrect
            stats.emp_acc = stats.correct / total if total else None
        if learned is not None and np.isfinite(learned[j]):
            stats.learned_acc = float(learned[j])
        out.append(stats)
    return out


def _conflicted(votes: np.ndarray) -> np.ndarray:
    """Patterns with two different (non-abstain) votes."""
    top = votes.max(axis=1)
    low = np.where(votes > 0, votes, np.iinfo(np.int8).max).min(axis=1)
    return (top > 0) & (low != top)


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
