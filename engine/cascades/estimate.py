"""Aggregates under an accuracy contract (BlazeIt): the mean of the reference model's answer
over a population of frames, estimated from a uniform random sample of reference answers
with the specialized model's output on every frame as a control variate.

On the sample, ``c = -Cov(Y, S) / Var(S)``; the estimate is
``mean(Y) + c * (mean(S) on the sample - mean(S) on every frame)``.  Its variance is that of
the residual ``Y + c S`` over the sample size (with the finite-population correction
``1 - n / N``): ``Var(Y) (1 - rho^2)``, so the control variate removes the share of the
variance the specialized model explains.  The interval is the 95% normal approximation.

>>> import numpy as np
>>> s = np.linspace(0, 1, 1000); y = 2 * s + 1          # Y a linear function of S
>>> e = control_variate(y[::10], s[::10], float(s.mean()), 1000)
>>> round(e.mean, 6), round(e.half_width, 6), e.variance_ratio < 1e-9
(2.0, 0.0, True)
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: z of the two-sided 95% normal interval.
Z95 = 1.959963984540054
#: Fewest sample frames before the normal interval is trusted ...
MIN_SAMPLE = 30
#: ... and, for a yes/no answer, fewest of each answer in the sample (np >= 10 and n(1-p) >= 10).
MIN_EACH = 10


@dataclass(frozen=True)
class Estimate:
    """The estimated mean of Y over a population, from a sample of n of its N members."""

    mean: float
    half_width: float          # of the 95% interval of the mean
    n: int
    population: int
    coefficient: float         # c of the control variate (0: plain sampling)
    variance_ratio: float      # Var(Y + cS) / Var(Y) on the sample: 1 plain sampling, 0 a perfect control variate

    @property
    def exact(self) -> bool:
        """Whether every member has a reference answer (the mean is exact)."""
        return self.n >= self.population


def control_variate(y: np.ndarray, s_sample: np.ndarray, s_population_mean: float, population: int) -> Estimate:
    """The control-variate estimate of mean(Y) over ``population`` members from a uniform sample
    (y, s_sample) without replacement, given the mean of S over every member."""
    y = np.asarray(y, np.float64)
    s = np.asarray(s_sample, np.float64)
    n = len(y)
    if n == 0:
        raise ValueError("a control-variate estimate needs at least one sampled frame")
    if n >= population:
        return Estimate(float(y.mean()), 0.0, n, population, 0.0, 0.0)
    var_y = float(y.var(ddof=1)) if n > 1 else 0.0
    var_s = float(s.var(ddof=1)) if n > 1 else 0.0
    c = -float(np.cov(y, s, ddof=1)[0, 1]) / var_s if var_s > 0 else 0.0
    mean = float(y.mean() + c * (s.mean() - s_population_mean))
    residual = y + c * s
    var_r = float(residual.var(ddof=1)) if n > 1 else 0.0
    half = Z95 * math.sqrt(max(var_r, 0.0) / n * (1.0 - n / population))
    return Estimate(mean, half, n, population, c, var_r / var_y if var_y > 0 else 1.0)


def trusted(y: np.ndarray, binary: bool) -> bool:
    """Whether the normal interval may be used on this sample: at least :data:`MIN_SAMPLE`
    frames and, for a yes/no answer, :data:`MIN_EACH` of each answer."""
    y = np.asarray(y)
    if len(y) < MIN_SAMPLE:
        return False
    return not binary or min(int((y > 0).sum()), int((y <= 0).sum())) >= MIN_EACH


@dataclass(frozen=True)
class Rounds:
    """The outcome of sampling in rounds: the last estimate of the total and how it got there."""

    total: float               # estimated sum of Y over the population plus ``known_total``
    half_width: float          # of the total's 95% interval
    estimate: Estimate
    rounds: int


def estimate_in_rounds(order: np.ndarray, proxy: np.ndarray, reference: Callable[[np.ndarray], np.ndarray], *,
                       tolerance: float, binary: bool, first: int, known_total: float = 0.0,
                       growth: float = 1.5) -> Rounds:
    """Sample reference answers in ``order`` (a seeded uniform permutation of the population,
    ``proxy`` its specialized-model outputs in the same order) until the 95% interval of the
    total (``known_total`` plus the population's sum) is within ``tolerance`` of it relatively,
    or every member has an answer.  ``reference(positions)`` returns Y at those positions of
    ``order``; the first ``first`` are taken at once, each later round adds half as many again.

    >>> rng = np.random.default_rng(0); s = rng.random(5000); y = (s + rng.normal(0, .1, 5000) > .7) * 1.0
    >>> r = estimate_in_rounds(np.arange(5000), s, lambda p: y[p], tolerance=0.05, binary=True, first=200)
    >>> abs(r.total - y.sum()) <= r.half_width and r.half_width <= 0.05 * r.total and r.estimate.n < 5000
    True
    """
    population = len(order)
    proxy = np.asarray(proxy, np.float64)
    s_mean = float(proxy.mean()) if population else 0.0
    answers = np.empty(0, np.float64)
    n, rounds = 0, 0
    while True:
        target = min(population, max(first, math.ceil(n * growth)) if n else first)
        answers = np.concatenate([answers, np.asarray(reference(np.arange(n, target)), np.float64)])
        n, rounds = target, rounds + 1
        e = control_variate(answers, proxy[:n], s_mean, population) if n else Estimate(0.0, 0.0, 0, 0, 0.0, 0.0)
        total = known_total + population * e.mean
        half = population * e.half_width
        if e.exact or (trusted(answers, binary) and half <= tolerance * abs(total)):
            return Rounds(total, half, e, rounds)
