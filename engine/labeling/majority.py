"""Majority vote: each row's label is the class most functions voted for (no fit).

Probabilities are the shares of the votes (uniform when no function voted); a tie gives
no label.

>>> import numpy as np
>>> from engine.labeling.patterns import VotePatterns
>>> patterns = VotePatterns.from_rows(np.array([[1, 1, 2], [0, 0, 0]]), k=2)
>>> MajorityVote(k=2).fit(patterns).predict_proba(patterns).round(3).tolist()
[[0.5, 0.5], [0.667, 0.333]]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.labeling.patterns import VotePatterns


def vote_shares(patterns: VotePatterns) -> np.ndarray:
    """(P, k): the share of each class among a pattern's votes; uniform without votes."""
    tally = patterns.tally().T.astype(np.float64)
    total = tally.sum(axis=1, keepdims=True)
    return np.divide(tally, total, out=np.full_like(tally, 1.0 / patterns.k), where=total > 0)


@dataclass
class FittedMajority:
    """Majority vote 'fitted': its class balance is the share of each majority label."""

    class_balance: np.ndarray
    iterations: int = 0
    converged: bool = True

    def accuracies(self) -> np.ndarray | None:
        return None  # majority vote learns no accuracies

    def predict_proba(self, patterns: VotePatterns) -> np.ndarray:
        return vote_shares(patterns)


class MajorityVote:
    """The baseline label model."""

    def __init__(self, k: int) -> None:
        self.k = k

    def fit(self, patterns: VotePatterns) -> FittedMajority:
        per_class = np.zeros(self.k)
        for chunk in patterns.chunks():
            shares = vote_shares(chunk)
            top = shares.max(axis=1, keepdims=True)
            decided = np.isclose(shares, top).sum(axis=1) == 1
            per_class += np.bincount(shares.argmax(axis=1)[decided], weights=chunk.counts[decided], minlength=self.k)
        total = per_class.sum()
        return FittedMajority(per_class / total if total > 0 else np.full(self.k, 1.0 / self.k))
