"""Inference modes through SQL: 'exact' and 'approximate' run the incremental engine, its
state persists in the database so a later query continues from it, the cache keeps modes
apart, and EXPLAIN shows each frame's decision before anything runs."""
from __future__ import annotations

import re

import numpy as np

import engine
from engine.inference import backbone_frames
from engine.inference.incremental import IncrementalConfig, IncrementalEngine
from tests.inference_clips import clips, con, db, last_scans, reference, reference_network  # noqa: F401  (fixtures)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def synthetic_clip(n: int = 6, size: int = 160) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A textured still frame with one 16x16 square moving across it (known changed regions)."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    frames, corners = [], []
    for i in range(n):
        frame = base.copy()
        y, x = 8 + 4 * i, 8 + 6 * i
        frame[y:y + 16, x:x + 16] = (255, 40, 40)
        frames.append(frame)
        corners.append((y, x))
    return np.stack(frames), corners


def explain(con, sql: str) -> str:
    return con.execute(f"EXPLAIN {sql}").fetchall()[0][1]


def counts(plan: str) -> dict[str, int]:
    """Frames per decision in an EXPLAIN text."""
    found = re.findall(r"^ +(frames needed|from cache|shared|skipped|incremental|full) +(\d+)", plan, re.M)
    return {k: int(v) for k, v in found}


def test_exact_mode_on_known_changed_regions_equals_full_inference(con):
    frames, corners = synthetic_clip()
    engine.frames_from_numpy(con, "square", frames)
    con.execute("SET inference_mode = 'exact'")
    plan = explain(con, "SELECT logits(mobilenet, frame) FROM square")
    assert (counts(plan)["incremental"], counts(plan)["full"]) == (0, 6)  # a moving square costs 55% of full here
    con.execute("SET inference_fallback_ratio = 1.0")  # so run it incrementally anyway, to check the regions
    plan = explain(con, "SELECT logits(mobilenet, frame) FROM square")
    assert (counts(plan)["incremental"], counts(plan)["full"]) == (5, 1)
    rows = con.execute("SELECT frame_id, logits(mobilenet, frame) FROM square ORDER BY frame_id").fetchall()
    (scan,) = last_scans(con)
    assert (scan.full, scan.incremental) == (1, 5) and scan.macs < scan.macs_full
    for i, decision in enumerate(scan.per_frame[1:], start=1):
        # the patches are exactly the 8x8 blocks where the frame differs from the one before
        changed = (frames[i] != frames[i - 1]).any(axis=2)
        blocks = changed.reshape(20, 8, 20, 8).any(axis=(1, 3))
        expected = np.kron(blocks, np.ones((8, 8), bool))
        covered = np.zeros((160, 160), bool)
        for py, px, h, w in decision.patches:
            covered[py:py + h, px:px + w] = True
        assert (covered == expected).all()
        y, x = corners[i]
        assert expected[y:y + 16, x:x + 16].any() and not expected[150:, :100].any()
    np.testing.assert_allclose(np.array([r[1] for r in rows]), reference(frames)[0], atol=1e-4)


def test_exact_mode_in_sql_equals_the_engine_run_directly(con):
    con.execute("SET inference_mode = 'exact'")
    rows = con.execute("SELECT logits(mobilenet, frame), features(mobilenet, frame) FROM traffic"
                       " WHERE frame_id < 12 ORDER BY frame_id").fetchall()
    (scan,) = last_scans(con)
    assert scan.full >= 1   # real video at 224x224: nearly every block differs at all, so frames go full
    frames = engine.frames_to_numpy(con, "traffic", where="frame_id < 12")
    direct = IncrementalEngine(reference_network(), MEAN, STD, "exact", IncrementalConfig())
    logits, features, stats = direct.run(frames, list(range(12)))
    np.testing.assert_allclose(np.array([r[0] for r in rows]), logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(np.array([r[1] for r in rows]), features.numpy(), atol=1e-4)
    assert [d.kind for d in scan.per_frame] == [s.kind for s in stats]
    np.testing.assert_allclose(np.array([r[0] for r in rows]), reference(frames)[0], atol=1e-4)   # exact is exact


def test_a_later_query_continues_from_the_persisted_engine_state(db):
    settings = {"inference_mode": "exact", "inference_persist_state": True}
    with engine.connect(db, autocommit=True, progress="off", **settings) as con:
        first = con.execute("SELECT logits(mobilenet, frame) FROM traffic WHERE frame_id < 4 ORDER BY frame_id").fetchall()
        assert con.execute("SELECT last_frame_id FROM mallard.inference_state").fetchall() == [(3,)]
    with engine.connect(db, autocommit=True, progress="off", **settings) as con:
        plan = explain(con, "SELECT logits(mobilenet, frame) FROM traffic WHERE frame_id < 10")
        assert counts(plan)["from cache"] == 4
        second = con.execute("SELECT logits(mobilenet, frame) FROM traffic WHERE frame_id < 10 ORDER BY frame_id").fetchall()
        (scan,) = last_scans(con)
        assert (scan.cached, scan.computed) == (4, 6)
        assert counts(plan)["full"] == scan.full and counts(plan)["incremental"] == scan.incremental
        frames = engine.frames_to_numpy(con, "traffic", where="frame_id < 10")
    direct = IncrementalEngine(reference_network(), MEAN, STD, "exact", IncrementalConfig())
    logits, _, stats = direct.run(frames, list(range(10)))
    logits = logits.numpy()
    computed = [d for d in scan.per_frame if d.kind != "cached"]
    assert [d.kind for d in computed] == [s.kind for s in stats[4:]]
    assert computed[0].frame_id == 4 and computed[0].reason != "first frame"  # continues from frame 3's state
    got = np.array([r[0] for r in first + second[4:]])
    np.testing.assert_allclose(got, logits, atol=1e-4)


def test_the_cache_keeps_modes_and_configurations_apart(con):
    con.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id < 4").fetchall()
    con.execute("SET inference_mode = 'exact'")
    con.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id < 4").fetchall()
    assert last_scans(con)[0].computed == 4
    con.execute("SET inference_mode = 'approximate'")
    con.execute("SET inference_tau = 0.5")
    con.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id < 4").fetchall()
    assert last_scans(con)[0].computed == 4
    con.execute("SET inference_tau = 0.6")
    con.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id < 4").fetchall()
    assert last_scans(con)[0].computed == 4
    con.execute("SET inference_tau = 0.5")
    con.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id < 4").fetchall()
    assert last_scans(con)[0].computed == 0
    modes = con.execute("SELECT DISTINCT split_part(mode_key, ':', 1) FROM mallard.inference_cache ORDER BY 1").fetchall()
    assert modes == [("approximate",), ("exact",), ("full",)]


def test_explain_predicts_the_run_and_the_cache(con):
    con.execute("SET inference_mode = 'exact'")
    before = backbone_frames(con)
    plan = explain(con, "SELECT frame_id, mobilenet(frame).label FROM traffic WHERE frame_id < 12")
    assert backbone_frames(con) == before and con.execute("SELECT count(*) FROM mallard.inference_cache").fetchone() == (0,)
    assert "INFERENCE SCAN mobilenet (version 1) OVER traffic" in plan and counts(plan)["frames needed"] == 12
    planned = counts(plan)
    con.execute("SELECT frame_id, mobilenet(frame).label FROM traffic WHERE frame_id < 12").fetchall()
    (scan,) = last_scans(con)
    assert (planned["incremental"], planned["full"], planned["skipped"]) == (scan.incremental, scan.full, scan.skipped)
    assert f"{scan.macs / 1e9:.2f} G estimated" in plan
    again = explain(con, "SELECT frame_id, mobilenet(frame).label FROM traffic WHERE frame_id < 12")
    assert counts(again)["from cache"] == 12 and "0.00 G estimated" in again
    analyzed = con.execute("EXPLAIN ANALYZE SELECT mobilenet(frame).label FROM traffic WHERE frame_id < 14").fetchall()
    assert "ANALYZED" in analyzed[0][1] and counts(analyzed[0][1])["from cache"] == 12
    keys = [r[0] for r in con.execute("EXPLAIN SELECT frame_id FROM traffic").fetchall()]
    assert keys == ["physical_plan"]  # no model call: DuckDB's own EXPLAIN


def test_a_moving_camera_falls_back_to_full_inference(con):
    con.execute("SET inference_mode = 'exact'")
    con.execute("SELECT mobilenet(frame).label FROM bikes WHERE frame_id < 8").fetchall()
    (scan,) = last_scans(con)
    assert scan.full >= 6 and scan.macs >= 0.9 * scan.macs_full
