"""Majority vote: each row's label is the class most functions voted for (no fit).

Probabilities are the shares of the votes (uniform when no function voted); a tie gives
no label.

>>> import numpy as np
>>> from engine.labeling.matrix import VotePatterns
>>> fitted = MajorityVote(k=2).fit(VotePatterns(np.array([[1, 1, 2], [0, 0, 0]], np.int8), np.array([3, 1])))
>>> fitted.predict_proba(VotePatterns(np.array([[1, 1, 2]], np.int8), np.array([1]))).round(3).tolist()
[[0.667, 0.333]]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.labeling.matrix import VotePatterns


def vote_shares(votes: np.ndarray, k: int) -> np.ndarray:
    """(P, k): the share of each class among a pattern's votes; uniform without votes."""
    tally = np.stack([(votes == y + 1).sum(axis=1) for y in range(k)], axis=1).astype(np.float64)
    total = tally.sum(axis=1, keepdims=True)
    return np.divide(tally, total, out=np.full_like(tally, 1.0 / k), where=total > 0)


@dataclass
class FittedMajority:
    """Majority vote 'fitted': its class balance is the share of each majority label."""

    class_balance: np.ndarray
    iterations: int = 0
    converged: bool = True

    def accuracies(self) -> np.ndarray | None:
        return None  # majority vote learns no accuracies

    def predict_proba(self, patterns: VotePatterns) -> np.ndarray:
        return vote_shares(patterns.votes, len(self.class_balance))


class MajorityVote:
    """The baseline label model."""

    ties_abstain = True

    def __init__(self, k: int) -> None:
        self.k = k

    def fit(self, patterns: VotePatterns) -> FittedMajority:
        shares = vote_shares(patterns.votes, self.k)
        decided = _decided(shares)
        per_class = np.bincount(shares.argmax(axis=1)[decided], weights=patterns.counts[decided], minlength=self.k)
        total = per_class.sum()
        balance = per_class / total if total > 0 else np.full(self.k, 1.0 / self.k)
        return FittedMajority(balance)


def _decided(shares: np.ndarray) -> np.ndarray:
    """Patterns whose top class is unique."""
    top = shares.max(axis=1, keepdims=True)
    return (np.isclose(shares, top)).sum(axis=1) == 1
