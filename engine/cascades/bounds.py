"""Exact (Clopper-Pearson) binomial confidence bounds: what the accuracy contract is checked with.

A cascade's precision and recall on its calibration sample are proportions; the contract
holds when their one-sided 95% *lower* bounds reach it.  With ``k`` of ``n`` right, the
Clopper-Pearson lower bound is the success rate ``p`` at which seeing ``k`` or more
successes has probability ``1 - confidence``; found here by bisection on the binomial tail
(no SciPy).

>>> round(lower_bound(40, 40), 4)          # 40 of 40 right: the rate is above 0.9278 at 95%
0.9278
>>> round(lower_bound(95, 100), 4)
0.8977
>>> lower_bound(0, 10)
0.0
>>> needed_successes(0.95)                 # all right, how many to certify 0.95
59
"""
from __future__ import annotations

import math

#: The confidence of every bound the contract is checked with.
CONFIDENCE = 0.95


def _upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p)
            + (n - i) * math.log1p(-p) for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def lower_bound(successes: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided Clopper-Pearson lower bound of a success rate (0 with no trials)."""
    if trials <= 0 or successes <= 0:
        return 0.0
    if successes >= trials:
        return float((1.0 - confidence) ** (1.0 / trials))
    low, high = 0.0, successes / trials
    for _ in range(60):
        middle = (low + high) / 2
        if _upper_tail(successes, trials, middle) < 1.0 - confidence:
            low = middle
        else:
            high = middle
    return low


def upper_bound(successes: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided Clopper-Pearson upper bound of a success rate (1 with no trials)."""
    if trials <= 0:
        return 1.0
    return 1.0 - lower_bound(trials - successes, trials, confidence)


def needed_successes(target: float, confidence: float = CONFIDENCE) -> int:
    """The fewest trials, all successes, whose lower bound reaches ``target``."""
    if target <= 0:
        return 0
    if target >= 1:
        raise ValueError("no finite sample certifies a rate of 1")
    return math.ceil(math.log(1.0 - confidence) / math.log(target))
