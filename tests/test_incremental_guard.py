"""The guard: each segment is judged on its first frames from the multiply-adds they spend, and
runs in full where incremental inference would cost more than full inference (vtest.avi at
224x224), but not where it pays (vtest.avi at native size); deterministic, independent of the
clock and of how frames are split into calls; `inference_guard = false` turns it off."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch
from torch import nn

import engine
from engine.inference.incremental import IncrementalConfig, IncrementalEngine
from engine.inference.incremental.guard import SAMPLE
from engine.video import decode_frames
from tests.conftest import data_file, imagenet_mobilenet
from tests.inference_clips import clips, con, db, last_scans, reference  # noqa: F401  (fixtures)
from udfs.architectures import IMAGENET_MEAN, IMAGENET_STD

#: docs/incremental.md's approximate-mode settings for native-size video.
NATIVE = {"inference_change_threshold": 0.3, "inference_halo": False, "inference_refresh": 16,
          "inference_fallback_ratio": 0.3}


@pytest.fixture(scope="module")
def mobilenet() -> nn.Module:
    return imagenet_mobilenet()


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    """vtest.avi at 224x224, 24 frames."""
    return np.stack([f for _, f in decode_frames(str(data_file("vtest.avi")), width=224, height=224, limit=24)])


def explain(con: engine.Connection, sql: str, analyze: bool = False) -> str:
    return con.execute(f"EXPLAIN {'ANALYZE ' if analyze else ''}{sql}").fetchall()[0][1]


def count(plan: str, kind: str) -> int:
    found = re.search(rf"^ +{kind} +(\d+)", plan, re.M)
    assert found, plan
    return int(found.group(1))


def test_at_224_approximate_mode_runs_in_full_and_explain_says_so(con: engine.Connection) -> None:
    con.execute("SET inference_mode = 'approximate'")
    con.execute("SET inference_cache = false")
    query = "SELECT frame_id, logits(mobilenet, frame) FROM traffic ORDER BY frame_id"
    plan = explain(con, query)
    guarded = 40 - 1 - SAMPLE                            # after the start frame and the guard's sample
    assert count(plan, "guard") == guarded, plan
    ratio = float(re.search(r"incremental would cost ~([\d.]+)x of full at this size", plan).group(1))  # type: ignore[union-attr]
    assert ratio >= 1.0 and "frames run in full" in plan
    assert count(plan, "full") >= guarded
    assert explain(con, query) == plan                   # the same plan twice
    analyzed = explain(con, query, analyze=True)
    assert count(analyzed, "guard") == guarded and count(analyzed, "full") == count(plan, "full")
    rows = con.execute(query).fetchall()
    (scan,) = last_scans(con)
    full = [d.frame_id for d in scan.per_frame if d.reason == "guard"]
    assert len(full) == guarded and full == list(range(1 + SAMPLE, 40))
    frames = np.stack([f for _, f in decode_frames(str(data_file("vtest.avi")), width=224, height=224, limit=40)])
    truth, _ = reference(frames[full])
    logits = np.array([rows[i][1] for i in full], dtype=np.float32)
    assert np.abs(logits - truth).max() < 1e-4           # guarded frames are full inference


def test_turning_the_guard_off_restores_incremental_frames(con: engine.Connection, mobilenet: nn.Module) -> None:
    con.execute("SET inference_mode = 'approximate'")
    con.execute("SET inference_guard = false")
    plan = explain(con, "SELECT logits(mobilenet, frame) FROM traffic")
    assert "guard               off" in plan and "frames run in full" not in plan
    con.execute("SELECT logits(mobilenet, frame) FROM traffic").fetchall()
    (scan,) = last_scans(con)
    frames = np.stack([f for _, f in decode_frames(str(data_file("vtest.avi")), width=224, height=224, limit=40)])
    unguarded = IncrementalEngine(mobilenet, IMAGENET_MEAN, IMAGENET_STD, "approximate",
                                  IncrementalConfig(guard=False)).plan(frames, list(range(40)), [True] + [False] * 39)
    assert [(d.kind, d.reason) for d in scan.per_frame] == [(s.kind, s.reason) for s in unguarded]
    assert sum(d.kind == "incremental" for d in scan.per_frame) > 20
    assert count(plan, "incremental") == sum(s.kind == "incremental" for s in unguarded)


def test_at_native_size_where_incremental_pays_the_guard_keeps_it(tmp_path) -> None:
    with engine.connect(tmp_path / "native.duckdb", autocommit=True, progress="off") as con:
        con.execute("LOAD VIDEO ? INTO hall WITH (limit = 16)", [str(data_file("vtest.avi"))])
        con.execute("CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2')",
                    [str(data_file("mobilenet_v2.pth"))])
        con.execute("SET inference_mode = 'approximate'")
        for name, value in NATIVE.items():
            con.execute(f"SET {name} = ?", [value])
        query = "SELECT logits(mobilenet, frame) FROM hall"
        plan = explain(con, query)
        assert "guard               on" in plan and "frames run in full" not in plan, plan
        analyzed = explain(con, query, analyze=True)
        assert "frames run in full" not in analyzed
        assert count(analyzed, "incremental") >= 8, analyzed   # the frames after the sample stay incremental
        assert count(analyzed, "incremental") == count(plan, "incremental")


def test_exact_mode_under_the_guard_stays_exact(mobilenet: nn.Module, small: np.ndarray) -> None:
    eng = IncrementalEngine(mobilenet, IMAGENET_MEAN, IMAGENET_STD, "exact", IncrementalConfig(fallback_ratio=10.0))
    logits, _, stats = eng.run(small, list(range(len(small))))
    assert [s.reason for s in stats].count("guard") == len(small) - 1 - SAMPLE
    truth, _ = reference(small)
    assert (logits.numpy() - truth).max() < 1e-4 and (truth - logits.numpy()).max() < 1e-4


def test_the_verdict_depends_on_the_frames_not_on_the_clock_or_the_calls(mobilenet: nn.Module, small: np.ndarray,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    starts = np.zeros(len(small), bool)
    starts[[0, 12]] = True                              # two segments: each judged on its own first frames
    config = IncrementalConfig()
    whole = IncrementalEngine(mobilenet, IMAGENET_MEAN, IMAGENET_STD, "approximate", config)
    expected, _, expected_stats = whole.run(small, list(range(len(small))), starts)
    decisions = [(s.kind, s.reason) for s in expected_stats]
    assert decisions[1 + SAMPLE:12] == [("full", "guard")] * (11 - SAMPLE)
    assert decisions[12] == ("full", "segment start") and decisions[13][1] != "guard"
    planned = IncrementalEngine(mobilenet, IMAGENET_MEAN, IMAGENET_STD, "approximate", config)
    assert [(s.kind, s.reason) for s in planned.plan(small, list(range(len(small))), starts)] == decisions

    clock = iter(np.random.default_rng(3).uniform(0, 1e6, 100_000))   # a clock that jumps about
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(clock)))
    split = IncrementalEngine(mobilenet, IMAGENET_MEAN, IMAGENET_STD, "approximate", config)
    parts, stats = [], []
    for first, last in ((0, 5), (5, 7), (7, 16), (16, 24)):
        logits, _, made = split.run(small[first:last], list(range(first, last)), starts[first:last])
        parts.append(logits)
        stats += made
    assert [(s.kind, s.reason) for s in stats] == decisions
    assert torch.allclose(torch.cat(parts), expected, atol=1e-4)
