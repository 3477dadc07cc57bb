"""The BlazeIt estimators alone, on seeded synthetic data with known truth: the control
variate (engine.cascades.estimate) and the top-k stopping rule (engine.cascades.top_k)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.cascades.estimate import Z95, control_variate, estimate_in_rounds
from engine.cascades.top_k import confirm_top_k


def test_a_perfectly_correlated_control_variate_collapses_the_variance():
    rng = np.random.default_rng(3)
    s = rng.random(10_000)
    y = 3.0 - 2.0 * s
    sample = rng.choice(10_000, 200, replace=False)
    e = control_variate(y[sample], s[sample], float(s.mean()), 10_000)
    assert e.variance_ratio < 1e-12 and e.half_width < 1e-9
    assert e.mean == pytest.approx(y.mean(), abs=1e-9) and e.coefficient == pytest.approx(2.0)


def test_an_uncorrelated_control_variate_leaves_plain_sampling():
    rng = np.random.default_rng(4)
    y = (rng.random(20_000) < 0.2).astype(float)
    s = rng.random(20_000)
    sample = rng.choice(20_000, 2000, replace=False)
    e = control_variate(y[sample], s[sample], float(s.mean()), 20_000)
    plain = Z95 * np.sqrt(y[sample].var(ddof=1) / 2000 * (1 - 2000 / 20_000))
    assert e.variance_ratio == pytest.approx(1.0, abs=0.01)
    assert e.half_width == pytest.approx(plain, rel=0.01)
    assert abs(e.mean - y[sample].mean()) < 0.01


def test_the_interval_covers_the_truth_about_95_percent_of_the_time_and_the_variate_narrows_it():
    rng = np.random.default_rng(5)
    s = rng.random(5000)
    y = ((s + rng.normal(0, 0.15, 5000)) > 0.8).astype(float)
    covered, narrower = 0, 0
    for seed in range(200):
        sample = np.random.default_rng(seed).choice(5000, 300, replace=False)
        e = control_variate(y[sample], s[sample], float(s.mean()), 5000)
        covered += abs(e.mean - y.mean()) <= e.half_width
        narrower += e.variance_ratio < 0.8
    assert covered >= 180 and narrower == 200


def test_rounds_stop_at_the_contract_and_sample_everything_when_they_must():
    rng = np.random.default_rng(6)
    s = rng.random(4000)
    y = ((s + rng.normal(0, 0.1, 4000)) > 0.6).astype(float)
    asked: list[int] = []

    def reference(positions):
        asked.extend(positions.tolist())
        return y[positions]

    r = estimate_in_rounds(np.arange(4000), s, reference, tolerance=0.05, binary=True, first=100, known_total=7)
    assert r.rounds > 1 and r.estimate.n < 4000 and len(asked) == len(set(asked)) == r.estimate.n
    assert r.half_width <= 0.05 * r.total and abs(r.total - (y.sum() + 7)) <= r.half_width
    rare = np.zeros(500)
    rare[:3] = 1.0  # three positives: the normal interval is never trusted, so every frame is asked
    exact = estimate_in_rounds(np.arange(500), np.zeros(500), lambda p: rare[p], tolerance=0.5, binary=True, first=50)
    assert exact.estimate.exact and exact.total == 3 and exact.half_width == 0


def test_the_top_k_rule_stops_early_and_meets_the_contract_over_seeds():
    hits = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        v = rng.random(4000)
        p = v + rng.normal(0, 0.05, 4000)
        cal, rest = np.arange(0, 1500), np.arange(1500, 4000)
        found = confirm_top_k(rest, p[rest], lambda i, v=v: v[i], p[cal], v[cal], dict(zip(cal.tolist(), v[cal])),
                              k=40, accuracy=0.8)
        exact = set(np.argsort(-v)[:40].tolist())
        hits.append(len(set(found.frames.tolist()) & exact) / 40)
        assert found.visited < len(rest) and found.overlap_bound >= 0.8
    assert min(hits) >= 0.8


def test_a_useless_ranking_visits_every_frame_and_is_exact():
    rng = np.random.default_rng(9)
    v = rng.random(600)
    p = rng.random(600)  # unrelated to v
    cal, rest = np.arange(0, 200), np.arange(200, 600)
    found = confirm_top_k(rest, p[rest], lambda i, v=v: v[i], p[cal], v[cal], dict(zip(cal.tolist(), v[cal])),
                          k=10, accuracy=0.95)
    assert found.visited == 400 and found.overlap_bound == 1.0
    assert set(found.frames.tolist()) == set(np.argsort(-v)[:10].tolist())
