"""The result cache (EVA): repeated and overlapping queries compute only missing frames,
results survive a reopen, and new model versions or new frames invalidate them."""
from __future__ import annotations

import numpy as np
import pytest

import engine
from tests.conftest import data_file
from tests.inference_clips import clips, con, db, last_scans  # noqa: F401  (fixtures)

QUERY = "SELECT frame_id, mobilenet(frame).label, mobilenet(frame).score FROM traffic WHERE frame_id < {n} ORDER BY 1"


def cache_rows(con, where: str = "true") -> int:
    return con.execute(f"SELECT count(*) FROM mallard.inference_cache WHERE {where}").fetchone()[0]


def test_a_repeated_query_computes_no_frame(con):
    first = con.execute(QUERY.format(n=12)).fetchall()
    (scan,) = last_scans(con)
    assert (scan.frames, scan.cached, scan.computed) == (12, 0, 12)
    second = con.execute(QUERY.format(n=12)).fetchall()
    (scan,) = last_scans(con)
    assert (scan.frames, scan.cached, scan.computed, scan.batches) == (12, 12, 0, 0)
    assert second == first
    assert cache_rows(con) == 12


def test_an_overlapping_query_computes_only_the_missing_frames(con):
    con.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id BETWEEN 4 AND 9").fetchall()
    rows = con.execute("SELECT frame_id, features(mobilenet, frame) FROM traffic WHERE frame_id < 12 ORDER BY 1").fetchall()
    (scan,) = last_scans(con)
    assert (scan.frames, scan.cached, scan.computed) == (12, 6, 6)
    assert [r[0] for r in rows] == list(range(12)) and all(len(r[1]) == 1280 for r in rows)
    fresh = engine.connect(autocommit=True, progress="off")
    engine.frames_from_numpy(fresh, "t", engine.frames_to_numpy(con, "traffic", where="frame_id < 12"))
    fresh.execute("CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2')", [str(data_file("mobilenet_v2.pth"))])
    recomputed = fresh.execute("SELECT features(mobilenet, frame) FROM t ORDER BY frame_id").fetchall()
    np.testing.assert_allclose(np.array([r[1] for r in rows]), np.array([r[0] for r in recomputed]), atol=1e-5)


def test_cached_results_survive_a_reopen(db):
    with engine.connect(db, autocommit=True, progress="off") as con:
        first = con.execute(QUERY.format(n=6)).fetchall()
    with engine.connect(db, autocommit=True, progress="off") as con:
        assert con.execute(QUERY.format(n=6)).fetchall() == first
        assert last_scans(con)[0].computed == 0
    with engine.connect(db, read_only=True, progress="off") as con:
        assert con.execute(QUERY.format(n=8)).fetchall()[:6] == first
        assert last_scans(con)[0].computed == 2  # computed, but a read-only database stores nothing


def test_a_new_model_version_invalidates_the_cache(con):
    con.execute(QUERY.format(n=5)).fetchall()
    con.execute("CREATE OR REPLACE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2', labels = ?)",
                [str(data_file("mobilenet_v2.pth")), str(data_file("imagenet_classes.txt"))])
    assert cache_rows(con) == 0
    con.execute(QUERY.format(n=5)).fetchall()
    (scan,) = last_scans(con)
    assert (scan.version, scan.computed) == (2, 5)
    assert cache_rows(con, "version = 2") == 5
    con.execute("DROP MODEL mobilenet")
    assert cache_rows(con) == 0


def test_reloading_other_frames_invalidates_and_the_same_frames_do_not(con):
    con.execute(QUERY.format(n=5)).fetchall()
    con.execute("LOAD OR REPLACE VIDEO ? INTO traffic WITH (width = 224, height = 224, limit = 40)", [str(data_file("vtest.avi"))])
    con.execute(QUERY.format(n=5)).fetchall()
    assert last_scans(con)[0].computed == 0  # same file, same size: the same frames
    con.execute("LOAD OR REPLACE VIDEO ? INTO traffic WITH (width = 224, height = 224, limit = 10)", [str(data_file("bikes.mp4"))])
    rows = con.execute(QUERY.format(n=5)).fetchall()
    assert last_scans(con)[0].computed == 5
    assert cache_rows(con, "table_name = 'traffic'") == 5  # the old video's rows are gone
    bikes = con.execute("SELECT frame_id, mobilenet(frame).label, mobilenet(frame).score FROM bikes WHERE frame_id < 5"
                        " ORDER BY 1").fetchall()
    assert rows == bikes


def test_inference_cache_off_computes_everything_and_stores_nothing(con):
    con.execute("SET inference_cache = false")
    con.execute(QUERY.format(n=4)).fetchall()
    con.execute(QUERY.format(n=4)).fetchall()
    assert last_scans(con)[0].computed == 4 and cache_rows(con) == 0
    con.execute("SET inference_cache = true")
    con.execute(QUERY.format(n=4)).fetchall()
    assert cache_rows(con) == 4


def test_a_failed_statement_leaves_the_cache_as_it_was(con):
    con.execute("CREATE TABLE mixed AS SELECT * FROM traffic WHERE frame_id < 3")
    con.execute("INSERT INTO mallard.videos SELECT * REPLACE ('mixed' AS table_name) FROM mallard.videos WHERE table_name = 'traffic'")
    con.execute("UPDATE mixed SET frame = frame[1:10] WHERE frame_id = 2")
    with pytest.raises(engine.DataError, match="frame 2 of mixed"):
        con.execute("SELECT mobilenet(mixed.frame).label, mobilenet(t.frame).label FROM mixed, traffic t")
    assert cache_rows(con) == 0
