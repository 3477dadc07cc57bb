"""Thresholds of the specialized model, calibrated on a held-out sample (NoScope's two
thresholds): a frame whose probability of "yes" is below ``low`` is decided "no", above
``high`` "yes", and in between it goes to the reference model.

The contract is checked as a 95% lower confidence bound (:mod:`engine.cascades.bounds`) on
the calibration frames, with the cascade's answer there: frames in the uncertain band get
the reference model's (right) answer.  Recall's errors are the positives below ``low``;
precision's the negatives above ``high``.  ``low`` is set as high as recall allows, then
``high`` as low as precision allows given the true positives that leaves.

>>> import numpy as np
>>> p = np.array([0.01, 0.02, 0.03, 0.2, 0.6, 0.9, 0.95, 0.97])
>>> y = np.array([False, False, False, False, True, True, True, True])
>>> t = calibrate(p, y, target=0.5)
>>> t.low <= 0.6 < 0.9 <= t.high or (t.low, t.high)
True
>>> calibrate(p, y, target=0.95).certified      # 4 positives cannot certify 0.95
False
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine.cascades.bounds import lower_bound, needed_successes


@dataclass(frozen=True)
class Thresholds:
    """The specialized model's decision band and what it achieved on the calibration frames."""

    low: float                      # p < low: "no"
    high: float                     # p > high: "yes"; between: the reference model
    target: float
    frames: int                     # calibration frames
    positives: int                  # of which the reference model said "yes"
    needed_positives: int           # the fewest positives that can certify ``target``
    precision: float                # achieved on the calibration frames
    recall: float
    precision_bound: float          # their 95% lower confidence bounds
    recall_bound: float
    undecided: float                # fraction of calibration frames left to the reference model

    @property
    def certified(self) -> bool:
        """Whether both lower bounds reach the target."""
        return self.precision_bound >= self.target and self.recall_bound >= self.target

    def decide(self, p: np.ndarray) -> np.ndarray:
        """Per frame: 1 "yes", 0 "no", -1 undecided (to the reference model)."""
        return np.where(p > self.high, 1, np.where(p < self.low, 0, -1)).astype(np.int8)

    def describe(self) -> str:
        return (f"no below {self.low:.4f}, yes above {self.high:.4f}; on {self.frames} calibration frames "
                f"({self.positives} positive): precision {self.precision:.3f} (95% lower bound "
                f"{self.precision_bound:.3f}), recall {self.recall:.3f} (lower bound {self.recall_bound:.3f}), "
                f"{self.undecided:.1%} to the reference model")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(p: np.ndarray, y: np.ndarray, target: float) -> Thresholds:
    """The widest band that meets ``target`` (precision and recall, 95% lower bounds) on (p, y)."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=bool)
    positives = np.sort(p[y])
    negatives = np.sort(p[~y])[::-1]
    count = len(positives)
    misses = _allowed_errors(lambda f: lower_bound(count - f, count), count, target)
    low = -np.inf if misses < 0 else (float(positives[misses]) if misses < count else np.inf)
    true_positives = count - max(misses, 0)
    false = _allowed_errors(lambda f: lower_bound(true_positives, true_positives + f), len(negatives), target)
    high = np.inf if false < 0 else (float(negatives[false]) if false < len(negatives) else -np.inf)
    high = max(high, low)
    return _measure(p, y, low, high, target)


def _allowed_errors(bound: Callable[[int], float], available: int, target: float) -> int:
    """The most errors f in 0..available whose ``bound(f)`` (falling in f) still reaches
    ``target``; -1 if even none does.  Binary search: the bound is monotone."""
    if bound(0) < target:
        return -1
    low, high = 0, available
    while low < high:
        middle = (low + high + 1) // 2
        if bound(middle) >= target:
            low = middle
        else:
            high = middle - 1
    return low


def _measure(p: np.ndarray, y: np.ndarray, low: float, high: float, target: float) -> Thresholds:
    decided = np.where(p > high, 1, np.where(p < low, 0, -1))
    answer = np.where(decided == -1, y, decided == 1)
    tp = int(np.sum(answer & y))
    fp = int(np.sum(answer & ~y))
    fn = int(np.sum(~answer & y))
    positives = int(y.sum())
    return Thresholds(
        low=float(low), high=float(high), target=target, frames=len(p), positives=positives,
        needed_positives=needed_successes(target) if target < 1 else -1,
        precision=tp / (tp + fp) if tp + fp else 1.0, recall=tp / positives if positives else 1.0,
        precision_bound=lower_bound(tp, tp + fp) if tp + fp else 0.0,
        recall_bound=lower_bound(tp, tp + fn) if positives else 0.0,
        undecided=float(np.mean(decided == -1)) if len(p) else 1.0,
    )
