"""The label model: Dawid-Skene EM over distinct vote patterns.

Each labeling function j has a confusion matrix ``theta[j, v, y] = P(vote v | class y)``
where vote 0 is an abstain, so abstaining is an output the model learns from (on real data
a spam rule abstains more on ham).  Functions are independent given the class; the class
balance ``prior[y]`` is estimated, not assumed uniform.  EM starts from the majority vote
and works on distinct vote patterns weighted by their counts, so an iteration costs
``O(patterns x groups)`` whatever the number of rows: the E-step is one table lookup per
group of functions, the M-step one ``bincount`` per group and class
(:class:`~engine.labeling.patterns.VoteGroups`).

>>> import numpy as np
>>> from engine.labeling.synthetic import synthetic_votes
>>> from engine.labeling.patterns import VoteGroups, VotePatterns
>>> data = synthetic_votes(n=20000, m=8, k=2, seed=1)
>>> model = DawidSkene(k=2).fit(VotePatterns.from_rows(data.votes, k=2))
>>> bool(np.abs(model.accuracies() - data.empirical_accuracies()).max() < 0.02)
True
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.labeling.patterns import VoteGroups, VotePatterns


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
        return Posterior(np.log(self.theta), np.log(self.prior), patterns.groups)(patterns).T


class Scratch:
    """Arrays the EM reuses between iterations, by name and shape.  Allocating the (k, P)
    posteriors afresh in every iteration made a fresh process fault their pages in again each
    time (glibc gives large blocks back to the kernel when they are freed): about a third of
    the first fit's time at 1M rows x 10 functions x 3 classes (122k patterns)."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        key = (name, shape)
        found = self._arrays.get(key)
        if found is None:
            found = self._arrays[key] = np.empty(shape)
        return found


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
        """EM from the majority vote until no parameter moves more than ``tol``.  Each iteration
        is one pass over the patterns in slices (:meth:`VotePatterns.chunks`): the E-step of a
        slice feeds the M-step's sums at once, so no per-pattern array outlives its slice."""
        totals = patterns.vote_totals()
        scratch = Scratch()
        posterior: Callable[[VotePatterns], np.ndarray] = self._start(patterns)
        theta = prior = None
        converged = False
        iterations = 0
        for iterations in range(1, self.max_iter + 1):  # noqa: B007 (read after the loop)
            new_prior, new_theta = self._m_step(*self._expected_counts(patterns, posterior), totals, patterns.n_rows)
            if theta is not None and max(np.abs(new_theta - theta).max(), np.abs(new_prior - prior).max()) < self.tol:
                theta, prior, converged = new_theta, new_prior, True
                break
            theta, prior = new_theta, new_prior
            posterior = Posterior(np.log(theta), np.log(prior), patterns.groups, scratch)
        assert theta is not None and prior is not None
        return FittedDawidSkene(prior, theta, iterations, converged)

    def _start(self, patterns: VotePatterns) -> Callable[[VotePatterns], np.ndarray]:
        """Majority-vote posteriors (uniform without votes), nudged by a seeded function of
        each pattern's votes (not of its position), which breaks ties."""
        m, k = patterns.m, self.k
        nudge = np.random.default_rng(self.seed).random((m, k + 1, k)) * (1e-3 / max(m, 1))
        tables = patterns.groups.tables(nudge)

        def start(chunk: VotePatterns) -> np.ndarray:
            tally = chunk.tally() + chunk.groups.apply(chunk.codes, tables) + 0.5
            return tally / tally.sum(axis=0)

        return start

    def _expected_counts(self, patterns: VotePatterns,
                         posterior: Callable[[VotePatterns], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Expected rows of classes 1..k-1 (k - 1,) and expected rows per function, vote and
        class 1..k-1 (m, k + 1, k - 1) under ``posterior``; class 0's are the totals less these
        (the totals do not change between iterations), which saves one pass in k."""
        others = np.zeros(self.k - 1)
        joints: list[np.ndarray] | None = None
        for chunk in patterns.chunks():
            weights = posterior.others(chunk) if isinstance(posterior, Posterior) else posterior(chunk)[1:]  # (k - 1, P)
            if not chunk.unit_counts:  # in place: the weights are this pass's own (scratch or fresh)
                np.multiply(weights, chunk.counts, out=weights)
            others += weights.sum(axis=1)
            part = chunk.groups.joint(chunk.codes, weights)
            joints = part if joints is None else [a + b for a, b in zip(joints, part)]
        assert joints is not None
        return others, patterns.groups.expand(joints)

    def _m_step(self, others: np.ndarray, counts: np.ndarray, totals: np.ndarray,
                n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        prior = np.concatenate([[n_rows - others.sum()], others])
        prior = np.maximum(prior, 0.0) / n_rows
        theta = np.empty((counts.shape[0], self.k + 1, self.k))
        theta[:, :, 1:] = counts
        theta[:, :, 0] = np.maximum(totals - counts.sum(axis=2), 0.0)
        theta += self.smoothing
        theta /= theta.sum(axis=1, keepdims=True)
        return prior, theta


class Posterior:
    """The E-step for given parameters, P(class | pattern) as (k, P), with the group tables of
    the log-likelihood ratios to class 0 built once (k - 1 lookups a pattern and group)."""

    def __init__(self, log_theta: np.ndarray, log_prior: np.ndarray, groups: VoteGroups,
                 scratch: Scratch | None = None) -> None:
        self.tables = groups.tables(log_theta[:, :, 1:] - log_theta[:, :, :1])
        self.offset = (log_prior[1:] - log_prior[0])[:, None]
        self.k = len(log_prior)
        self.scratch = scratch if scratch is not None else Scratch()

    def others(self, patterns: VotePatterns) -> np.ndarray:
        """(k - 1, P): P(class | pattern) of classes 1..k-1 only (what the M-step reads); for
        two classes the logistic function of the one score, computed in place."""
        if self.k != 2:
            return self(patterns)[1:]
        n = len(patterns)
        score = patterns.groups.apply(patterns.codes, self.tables, out=self.scratch.array("scores", (1, n)),
                                      row=self.scratch.array("row", (n,)))
        score += self.offset
        np.negative(score, out=score)
        with np.errstate(over="ignore"):  # exp(-score) = inf gives P = 0, as it should
            np.exp(score, out=score)
        score += 1.0
        return np.reciprocal(score, out=score)

    def __call__(self, patterns: VotePatterns) -> np.ndarray:
        """(k, P): P(class | pattern); the array is the scratch's, reused by the next call."""
        n = len(patterns)
        scores = self.scratch.array("scores", (self.k, n))
        row = self.scratch.array("row", (n,))
        scores[0] = 0.0
        patterns.groups.apply(patterns.codes, self.tables, out=scores[1:], row=row)
        scores[1:] += self.offset
        np.max(scores, axis=0, out=row)
        scores -= row
        np.exp(scores, out=scores)
        np.sum(scores, axis=0, out=row)
        scores /= row
        return scores
