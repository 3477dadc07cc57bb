"""occlusion_map in SQL: the heatmap of a real frame equals the incremental engine's (and the
naive re-inference), with targets, options and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.inference.incremental import occlusion_map
from tests.inference_clips import build_clips_database, copy_database, reference_network

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HEATMAP = ("SELECT row, col, y, x, value, class_id, label FROM occlusion_map(mobilenet,"
           " (SELECT frame FROM traffic WHERE frame_id = 10), patch => 32, stride => 32{extra}) ORDER BY row, col")


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    folder = tmp_path_factory.mktemp("occlusion")
    path = copy_database(build_clips_database(folder / "clips.duckdb"), folder / "db.duckdb")
    connection = engine.connect(path, autocommit=True, progress="off")
    try:
        yield connection
    finally:
        connection.close()


def test_the_heatmap_equals_the_engine_and_naive_re_inference(con):
    rows = con.execute(HEATMAP.format(extra="")).fetchall()
    assert len(rows) == 49 and [(r[0], r[1]) for r in rows[:2]] == [(0, 0), (0, 1)]
    assert all(r[2] == 32 * r[0] and r[3] == 32 * r[1] for r in rows)
    frame = engine.frames_to_numpy(con, "traffic", frame_ids=[10])[0]
    expected = occlusion_map(reference_network(), MEAN, STD, frame, patch=32, stride=32)
    np.testing.assert_allclose(np.array([r[4] for r in rows]).reshape(7, 7), expected, atol=1e-5)
    top1 = con.execute("SELECT mobilenet(frame).class_id, mobilenet(frame).label FROM traffic WHERE frame_id = 10").fetchone()
    assert {(r[5], r[6]) for r in rows} == {top1}


def test_a_target_by_label_or_class_id_and_the_naive_method(con):
    query = HEATMAP.replace("patch => 32, stride => 32", "patch => 64, stride => 80")
    by_label = con.execute(query.format(extra=", target => 'street sign'")).fetchall()
    by_id = con.execute(query.format(extra=", target => 919, method => 'naive'")).fetchall()
    assert len(by_label) == 9 and by_label[0][5:] == by_id[0][5:] == (919, "street sign")
    np.testing.assert_allclose([r[4] for r in by_label], [r[4] for r in by_id], atol=1e-4)


@pytest.mark.parametrize("sql, error, message", [
    ("SELECT * FROM occlusion_map(mobilenet, (SELECT frame FROM traffic WHERE frame_id < 2))", engine.DataError,
     "expects its frame query to return one frame, found 2 rows"),
    ("SELECT * FROM occlusion_map(mobilenet, (SELECT frame FROM traffic WHERE frame_id = 10), patch => 0)",
     engine.DataError, "option patch: expected a positive whole number, found 0"),
    ("SELECT * FROM occlusion_map(mobilenet, (SELECT frame FROM traffic WHERE frame_id = 10), patch => 300)",
     engine.DataError, "patch 300 is larger than the 224x224 frame"),
    ("SELECT * FROM occlusion_map(mobilenet, (SELECT frame FROM traffic WHERE frame_id = 10), target => 'unicorn')",
     engine.DataError, "target: expected a class id in [0, 1000) or a label"),
    ("SELECT * FROM occlusion_map(mobilenet, (SELECT frame FROM traffic WHERE frame_id = 10), method => 'fast')",
     engine.DataError, "method: expected one of 'incremental', 'naive'"),
    ("SELECT * FROM occlusion_map(mobilenet, (SELECT frame FROM traffic WHERE frame_id = 10), tau => 2)",
     engine.DataError, "tau: expected a number in (0, 1]"),
    ("SELECT * FROM occlusion_map(mobilenet, (SELECT source FROM traffic WHERE frame_id = 10))",
     engine.ProgrammingError, "expects its frame query to select a frame (BLOB), found a str value"),
])
def test_bad_occlusion_maps(con, sql, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        con.execute(sql)
