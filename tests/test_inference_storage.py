"""Long work a user can stop and storage a user can see: interrupting a scan keeps what it
computed, a cache limit evicts the least recently used results, SHOW STORAGE reports bytes."""
from __future__ import annotations

import pytest

import engine
from engine.inference import runners
from tests.conftest import data_file


@pytest.fixture
def clip(con):
    con.execute("CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2')", [str(data_file("mobilenet_v2.pth"))])
    con.execute("LOAD VIDEO ? INTO traffic WITH (width = 224, height = 224, limit = 120)", [str(data_file("vtest.avi"))])
    con.execute("SET inference_batch_size = 4")
    return con


def test_interrupting_a_scan_stops_it_at_the_next_batch_and_keeps_its_results(clip):
    clip.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id = 0").fetchall()  # model loaded
    clip.execute("DELETE FROM mallard.inference_cache")
    calls = {"n": 0}
    original = runners.FullRunner.run

    def run_and_count(self, frame_ids, frames, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            clip.interrupt()  # as Ctrl-C would, while the second batch computes
        return original(self, frame_ids, frames, *args, **kwargs)

    runners.FullRunner.run = run_and_count  # the real computation, counted: the interrupt lands mid-scan
    try:
        with pytest.raises(engine.OperationalError, match="interrupted after 8 of 120 frames; the results computed "
                                                           "are kept in the result cache"):
            clip.execute("SELECT mobilenet(frame).label FROM traffic").fetchall()
    finally:
        runners.FullRunner.run = original
    assert calls["n"] == 2  # the batch running when the interrupt came finished; no other started
    kept = clip.execute("SELECT count(*) FROM mallard.inference_cache").fetchone()[0]
    assert kept == 8
    assert clip.execute("SELECT count(*) FROM mallard.inference_state").fetchone() == (0,)  # nothing half-made
    before = engine.inference.backbone_frames(clip)
    assert len(clip.execute("SELECT mobilenet(frame).label FROM traffic").fetchall()) == 120
    assert engine.inference.backbone_frames(clip) - before == 120 - kept  # a repeat continues from there


def test_interrupt_when_nothing_runs_is_harmless(clip):
    clip.interrupt()
    assert clip.execute("SELECT count(*) FROM traffic").fetchone() == (120,)


def test_a_cache_limit_evicts_the_least_recently_used_results(clip):
    clip.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id < 20").fetchall()
    row_bytes = clip.execute("SELECT 64 + 4 * (len(logits) + len(features)) FROM mallard.inference_cache LIMIT 1"
                             ).fetchone()[0]
    clip.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id < 5").fetchall()  # used again: recent
    clip.execute(f"SET inference_cache_limit = '{row_bytes * 10}B'")
    clip.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id BETWEEN 20 AND 24").fetchall()
    kept = [r[0] for r in clip.execute("SELECT frame_id FROM mallard.inference_cache ORDER BY 1").fetchall()]
    assert kept == [0, 1, 2, 3, 4, 20, 21, 22, 23, 24]
    with pytest.raises(engine.DataError, match="SET inference_cache_limit: expected 'none' or a size such as '64MB'"):
        clip.execute("SET inference_cache_limit = 'lots'")


def test_show_storage_reports_frames_cache_state_and_models(clip):
    engine.frames_from_numpy(clip, "tiny", __import__("numpy").zeros((3, 8, 8, 3), "uint8"))
    clip.execute("SET inference_mode = 'exact'")
    clip.execute("SET inference_persist_state = true")  # the engine's state is kept only when asked
    clip.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id < 6").fetchall()
    rows = {(r[0], r[1]): r for r in clip.execute("SHOW STORAGE").fetchall()}
    stream = rows[("frames", "traffic")]
    assert stream[2] == 120 and stream[4].startswith("stream (msmpeg4 packets")
    assert stream[3] == clip.execute("SELECT packet_bytes FROM mallard.videos WHERE table_name = 'traffic'").fetchone()[0]
    assert rows[("frames", "tiny")][3] == 3 * 8 * 8 * 3
    assert rows[("result cache", "mobilenet version 1")][2] == 6
    assert rows[("engine state", "mobilenet version 1")][3] > 0
    assert rows[("models", "mobilenet")][3] == clip.execute("SELECT weights_bytes FROM mallard.model_versions"
                                                            ).fetchone()[0]
    assert ("database file", "memory") in rows
