"""The label model: Dawid-Skene EM over distinct vote patterns.

Each labeling function j has a confusion matrix ``theta[j, v, y] = P(vote v | class y)``
where vote 0 is an abstain, so abstaining is an output the model learns from (on real data
a spam rule abstains more on ham).  Functions are independent given the class; the class
balance ``prior[y]`` is estimated, not assumed uniform.  EM starts from the majority vote
and works on distinct vote patterns weighted by their counts, so a fit costs
``O(patterns x functions)`` per iteration whatever the number of rows.

To keep an iteration cheap when patterns are many (30 functions give ~1 pattern per row),
functions are grouped by 12 bits of votes; each group's joint vote is a small integer
code, so the E-step is one table lookup per group and the M-step one ``bincount`` per
group and class.

>>> import numpy as np
>>> from engine.labeling.synthetic import synthetic_votes
>>> data = synthetic_votes(n=20000, m=8, k=2, seed=1)
>>> from engine.labeling.matrix import VotePatterns
>>> model = DawidSkene(k=2).fit(VotePatterns.from_rows(data.votes))
>>> bool(np.abs(model.accuracies() - data.empirical_accuracies()).max() < 0.02)
True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.labeling.matrix import VotePatterns

_GROUP_BITS = 12


@dataclass(frozen=True)
class VoteGroups:
    """Functions grouped so that a group's joint vote fits in ``_GROUP_BITS`` bits."""

    m: int
    k: int

    @property
    def bits(self) -> int:
        return max(1, int(np.ceil(np.log2(self.k + 1))))

    @property
    def groups(self) -> list[list[int]]:
        size = max(1, _GROUP_BITS // self.bits)
        return [list(range(s, min(self.m, s + size))) for s in range(0, self.m, size)]

    def codes(self, votes: np.ndarray) -> list[np.ndarray]:
        """Each pattern's joint-vote code in each group."""
        out = []
        for group in self.groups:
            code = np.zeros(len(votes), dtype=np.intp)
            for i, j in enumerate(group):
                code |= votes[:, j].astype(np.intp) << (self.bits * i)
            out.append(code)
        return out

    def digits(self, group: list[int]) -> np.ndarray:
        """(2**(bits*len(group)), len(group)): the vote of each function in each code."""
        codes = np.arange(1 << (self.bits * len(group)))
        mask = (1 << self.bits) - 1
        return np.stack([(codes >> (self.bits * i)) & mask for i in range(len(group))], axis=1)


@dataclass
class FittedDawidSkene:
    """A fitted label model: class balance and per-function confusion matrices."""

    prior: np.ndarray  # (k,)
    theta: np.ndarray  # (m, k + 1, k): P(vote v | class y), v = 0 abstain
    iterations: int
    converged: bool

    @property
    def k(self) -> int:
        return len(self.prior)

    @property
    def class_balance(self) -> np.ndarray:
        return self.prior

    def accuracies(self) -> np.ndarray:
        """Per function, P(vote = true class | it voted) under the model."""
        k = self.k
        hit = np.stack([self.theta[:, y + 1, y] for y in range(k)], axis=1) @ self.prior
        voted = (1.0 - self.theta[:, 0, :]) @ self.prior
        return np.divide(hit, voted, out=np.full(len(hit), np.nan), where=voted > 0)

    def predict_proba(self, patterns: VotePatterns) -> np.ndarray:
        """(P, k): P(class | pattern) for each pattern."""
        groups = VoteGroups(self.theta.shape[0], self.k)
        return _posterior(np.log(self.theta), np.log(self.prior), groups, groups.codes(patterns.votes)).T


class DawidSkene:
    """Dawid-Skene EM with abstain modelled as an output and an estimated class balance."""

    def __init__(self, k: int, *, max_iter: int = 100, tol: float = 1e-5, seed: int = 0,
                 smoothing: float = 0.01) -> None:
        self.k = k
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed
        self.smoothing = smoothing

    def fit(self, patterns: VotePatterns) -> FittedDawidSkene:
        votes, counts = patterns.votes, patterns.counts.astype(np.float64)
        groups = VoteGroups(votes.shape[1], self.k)
        codes = groups.codes(votes)
        q = self._start(votes)  # (k, P)
        theta = prior = None
        converged = False
        iterations = 0
        for iterations in range(1, self.max_iter + 1):
            new_prior, new_theta = self._m_step(q, counts, groups, codes)
            if theta is not None and max(np.abs(new_theta - theta).max(), np.abs(new_prior - prior).max()) < self.tol:
                theta, prior, converged = new_theta, new_prior, True
                break
            theta, prior = new_theta, new_prior
            q = _posterior(np.log(theta), np.log(prior), groups, codes)
        assert theta is not None and prior is not None
        return FittedDawidSkene(prior, theta, iterations, converged)

    def _start(self, votes: np.ndarray) -> np.ndarray:
        """Majority-vote posteriors (uniform without votes), nudged by a seeded function of
        each pattern's votes (not of its position), which breaks ties."""
        m, k = votes.shape[1], self.k
        tally = np.stack([(votes == y + 1).sum(axis=1) for y in range(k)]).astype(np.float64)
        nudge = np.random.default_rng(self.seed).random((m, k + 1, k)) * (1e-3 / max(m, 1))
        for j in range(m):
            tally += nudge[j][votes[:, j]].T
        tally += 0.5
        return tally / tally.sum(axis=0)

    def _m_step(self, q: np.ndarray, counts: np.ndarray, groups: VoteGroups,
                codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        k, m = self.k, groups.m
        weights = q * counts  # (k, P)
        prior = weights.sum(axis=1)
        prior = prior / prior.sum()
        theta = np.zeros((m, k + 1, k))
        for group, code in zip(groups.groups, codes):
            digits = groups.digits(group)
            joint = np.stack([np.bincount(code, weights=weights[y], minlength=len(digits)) for y in range(k)], axis=1)
            for i, j in enumerate(group):
                for y in range(k):
                    theta[j, :, y] = np.bincount(digits[:, i], weights=joint[:, y], minlength=k + 1)[: k + 1]
        theta += self.smoothing
        theta /= theta.sum(axis=1, keepdims=True)
        return prior, theta


def _posterior(log_theta: np.ndarray, log_prior: np.ndarray, groups: VoteGroups, codes: list[np.ndarray]) -> np.ndarray:
    """(k, P): the E-step, P(class | pattern), one table lookup per group of functions."""
    k = len(log_prior)
    n = len(codes[0]) if codes else 0
    scores = np.repeat(log_prior[:, None], n, axis=1)
    for group, code in zip(groups.groups, codes):
        digits = groups.digits(group)
        table = np.zeros((k, len(digits)))
        for i, j in enumerate(group):
            valid = np.minimum(digits[:, i], k)  # codes with an impossible digit are never looked up
            table += log_theta[j][valid].T
        for y in range(k):
            scores[y] += np.take(table[y], code)
    scores -= scores.max(axis=0)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=0)
    return scores
