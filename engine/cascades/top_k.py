"""Top-k under an accuracy contract (BlazeIt's limit queries): frames ranked by the specialized
model's output, confirmed by the reference model in that order until the top k is certain.

The bound.  After visiting (running the reference model on) every frame whose specialized
output is above a cut ``p``, let ``T`` be the k-th best reference value found so far.  An
unvisited frame can displace one of those k only if its reference value exceeds ``T``.  The
calibration frames (held out from training, so exchangeable with unvisited frames of the same
specialized output) with output at or below ``p`` estimate the rate of that; with ``m`` of
``n`` above ``T``, its one-sided 95% Clopper-Pearson upper bound ``u`` gives ``u * unvisited``
as a bound on how many unvisited frames beat ``T``, so the overlap with the exact top k is at
least ``1 - u * unvisited / k``.  The search stops when that reaches the contract (or when
every frame is visited: the exact top k).

>>> import numpy as np
>>> rng = np.random.default_rng(1); v = rng.random(3000); p = v + rng.normal(0, 0.05, 3000)
>>> cal = np.arange(0, 3000, 2)                      # a held-out sample with known values
>>> rest = np.arange(1, 3000, 2)
>>> found = confirm_top_k(rest, p[rest], lambda i: v[i], p[cal], v[cal], dict(zip(cal.tolist(), v[cal])), k=50,
...                       accuracy=0.8)
>>> exact = set(np.argsort(-v)[:50].tolist())
>>> len(set(found.frames.tolist()) & exact) / 50 >= 0.8 and found.visited < len(rest)
True
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.cascades.bounds import upper_bound


@dataclass(frozen=True)
class TopK:
    """The top k found, and what it took."""

    frames: np.ndarray         # frame_ids, best first
    values: np.ndarray         # their reference values
    visited: int               # unsampled frames sent to the reference model
    unvisited: int
    displaced_bound: float     # the bound on unvisited frames above the k-th best at the stop
    overlap_bound: float       # 1 - displaced_bound / k (1 when every frame was visited)


def confirm_top_k(frames: np.ndarray, proxy: np.ndarray, reference: Callable[[np.ndarray], np.ndarray],
                  calibration_proxy: np.ndarray, calibration_values: np.ndarray, known: dict[int, float], *,
                  k: int, accuracy: float, batch: int = 32) -> TopK:
    """Visit ``frames`` (not yet known) by descending ``proxy``, ``reference(frame_ids)`` giving
    their values, ``batch`` frames at first and then half as many again as visited so far in each
    round (each call of the reference model decodes from a keyframe: on a long video, rounds of
    a few frames cost many times their frames), until the bound above certifies ``accuracy``;
    the best k of everything known
    (``known``: frame_id -> value of frames already answered, the samples).  A value <= 0 never
    counts (a frame where the query's question does not hold)."""
    order = np.argsort(-np.asarray(proxy, np.float64), kind="stable")
    frames, proxy = np.asarray(frames, np.int64)[order], np.asarray(proxy, np.float64)[order]
    values = dict(known)
    cal_p, cal_v = np.asarray(calibration_proxy, np.float64), np.asarray(calibration_values, np.float64)
    visited, bound = 0, float(len(frames))
    while True:
        best = sorted(((v, -i) for i, v in values.items() if v > 0), reverse=True)[:k]
        left = len(frames) - visited
        if left == 0:
            bound = 0.0
            break
        if len(best) == k:
            below = cal_p <= proxy[visited]
            n = int(below.sum())
            m = int((cal_v[below] > best[-1][0]).sum())
            bound = upper_bound(m, n) * left if n else float(left)
            if bound <= (1.0 - accuracy) * k:
                break
        step = frames[visited:visited + max(batch, visited // 2, 1)]  # rounds grow: each reference call has a cost
        values.update(zip(step.tolist(), np.asarray(reference(step), np.float64).tolist()))
        visited += len(step)
    top = sorted(((v, -i) for i, v in values.items() if v > 0), reverse=True)[:k]
    return TopK(np.array([-i for _, i in top], np.int64), np.array([v for v, _ in top], np.float64), visited,
                len(frames) - visited, bound, 1.0 - bound / k)
