"""Model functions in SQL over frames tables, in full mode: results equal plain PyTorch on the
same frames, the planner's scans (restriction, sharing of the backbone), and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.inference import backbone_frames
from tests.inference_clips import BIKES_FRAMES, clips, con, db, last_scans, reference  # noqa: F401  (fixtures)


def cache_rows(con) -> int:
    return con.execute("SELECT count(*) FROM mallard.inference_cache").fetchone()[0]


def test_full_mode_equals_plain_torch_on_real_frames(con):
    frames = engine.frames_to_numpy(con, "traffic", where="frame_id < 24")
    logits, features = reference(frames)
    rows = con.execute(
        "SELECT frame_id, mobilenet(frame), logits(mobilenet, frame), features(mobilenet, frame) FROM traffic"
        " WHERE frame_id < 24 ORDER BY frame_id"
    ).fetchall()
    assert [r[0] for r in rows] == list(range(24))
    np.testing.assert_allclose(np.array([r[2] for r in rows]), logits, atol=1e-4)
    np.testing.assert_allclose(np.array([r[3] for r in rows]), features, atol=1e-4)
    labels = [line.strip() for line in open("data/imagenet_classes.txt") if line.strip()]
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    for (_, prediction, _, _), p in zip(rows, probabilities):
        assert prediction["class_id"] == int(p.argmax())
        assert prediction["label"] == labels[int(p.argmax())]
        assert prediction["score"] == pytest.approx(float(p.max()), abs=1e-5)


def test_the_issue_query_and_the_result_types(con):
    cursor = con.execute("SELECT frame_id, mobilenet(frame).label, mobilenet(frame).score, mobilenet(frame),"
                         " features(mobilenet, frame), logits(mobilenet, frame) FROM traffic WHERE frame_id < 3")
    assert [d[:2] for d in cursor.description] == [
        ("frame_id", "BIGINT"), ("label", "VARCHAR"), ("score", "DOUBLE"),
        ("mobilenet(frame)", 'STRUCT("label" VARCHAR, class_id INTEGER, score DOUBLE)'),
        ("features(mobilenet, frame)", "FLOAT[]"), ("logits(mobilenet, frame)", "FLOAT[]"),
    ]
    rows = cursor.fetchall()
    assert len(rows) == 3 and all(len(r[4]) == 1280 and len(r[5]) == 1000 for r in rows)
    assert all(r[1] == r[3]["label"] and r[2] == r[3]["score"] for r in rows)


def test_filters_on_the_frames_table_restrict_the_frames_scanned(con):
    rows = con.execute("SELECT frame_id, mobilenet(frame).label FROM traffic WHERE frame_id BETWEEN 5 AND 9"
                       " AND mobilenet(frame).score > 0").fetchall()
    assert sorted(r[0] for r in rows) == [5, 6, 7, 8, 9]
    (scan,) = last_scans(con)
    assert (scan.frames, scan.computed) == (5, 5)
    rows = con.execute("SELECT frame_id, mobilenet(frame).class_id FROM traffic WHERE frame_id < 30"
                       " ORDER BY frame_id DESC LIMIT 3 OFFSET 1").fetchall()
    assert [r[0] for r in rows] == [28, 27, 26]
    assert last_scans(con)[0].frames == 4  # frames 26..29
    rows = con.execute("WITH t AS (SELECT ? AS label) SELECT frame_id, mobilenet(frame).label = (SELECT label FROM t)"
                       " FROM traffic WHERE frame_id >= ? AND frame_id < ? ORDER BY 1", ["car", 10, 13]).fetchall()
    assert [r[0] for r in rows] == [10, 11, 12]
    assert last_scans(con)[0].frames == 3  # bound parameters restrict the scan too


def test_label_and_features_run_the_backbone_once(con):
    con.execute("SET inference_cache = false")
    before = backbone_frames(con)
    con.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id < 8").fetchall()
    label_alone = backbone_frames(con) - before
    con.execute("SELECT mobilenet(frame).label, mobilenet(frame).score, features(mobilenet, frame),"
                " logits(mobilenet, frame) FROM traffic WHERE frame_id < 8").fetchall()
    assert backbone_frames(con) - before - label_alone == label_alone == 8
    (scan,) = last_scans(con)
    assert scan.batches == 1 and scan.computed == 8


def test_the_statements_of_one_script_share_the_backbone(con):
    con.execute("SET inference_cache = false")
    before = backbone_frames(con)
    cursor = con.execute(
        "SELECT mobilenet(frame).label FROM traffic WHERE frame_id < 6;"
        "SELECT frame_id, features(mobilenet, frame) FROM traffic WHERE frame_id < 10 ORDER BY frame_id"
    )
    rows = cursor.fetchall()
    assert len(rows) == 10 and backbone_frames(con) - before == 10
    first, second = last_scans(con, 2)
    assert (first.computed, second.shared, second.computed) == (6, 6, 4)
    con.execute("SELECT mobilenet(frame).label FROM traffic WHERE frame_id < 6").fetchall()
    assert backbone_frames(con) - before == 16  # a new execute() shares nothing (and the cache is off)


def test_two_frames_tables_in_one_query(con):
    rows = con.execute(
        "SELECT a.frame_id, mobilenet(a.frame).label AS traffic, mobilenet(b.frame).label AS bikes FROM traffic a"
        " JOIN bikes b ON a.frame_id = b.frame_id WHERE a.frame_id < 4 AND b.frame_id < 4 ORDER BY 1"
    ).fetchall()
    assert len(rows) == 4
    bikes = engine.frames_to_numpy(con, "bikes", where="frame_id < 4")
    labels = [line.strip() for line in open("data/imagenet_classes.txt") if line.strip()]
    assert [r[2] for r in rows] == [labels[i] for i in reference(bikes)[0].argmax(1)]
    assert sorted(s.table for s in last_scans(con, 2)) == ["bikes", "traffic"]


def test_aggregates_subqueries_and_parameters(con):
    top = con.execute("SELECT mobilenet(frame).label AS label, count(*) AS n FROM traffic GROUP BY label"
                      " ORDER BY n DESC, label LIMIT 1").fetchone()
    assert top[1] >= 1
    count = con.execute("SELECT count(*) FROM traffic WHERE mobilenet(frame).label = ?", [top[0]]).fetchone()[0]
    assert count == top[1]
    n = con.execute("SELECT count(*) FROM bikes WHERE frame_id < ? AND mobilenet(frame).score >"
                    " (SELECT min(mobilenet(frame).score) FROM bikes)", [BIKES_FRAMES]).fetchone()[0]
    assert 0 < n < BIKES_FRAMES


def test_create_table_as_and_insert_select(con):
    con.execute("CREATE TABLE labels AS SELECT frame_id, mobilenet(frame).label AS label FROM traffic WHERE frame_id < 3")
    con.execute("INSERT INTO labels SELECT frame_id, mobilenet(frame).label FROM bikes WHERE frame_id < 2")
    assert con.execute("SELECT count(*), count(label) FROM labels").fetchone() == (5, 5)


def test_synthetic_frames_of_any_size(con):
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (4, 48, 72, 3), dtype=np.uint8)
    engine.frames_from_numpy(con, "noise", pixels)
    rows = con.execute("SELECT logits(mobilenet, frame) FROM noise ORDER BY frame_id").fetchall()
    np.testing.assert_allclose(np.array([r[0] for r in rows]), reference(pixels)[0], atol=1e-4)


def test_a_frames_table_outside_the_catalog_is_computed_but_not_cached(con):
    con.execute("CREATE TABLE copied AS SELECT * FROM traffic WHERE frame_id < 3")
    before = cache_rows(con)
    first = con.execute("SELECT frame_id, mobilenet(frame).label FROM copied ORDER BY 1").fetchall()
    assert first == con.execute("SELECT frame_id, mobilenet(frame).label FROM traffic WHERE frame_id < 3 ORDER BY 1").fetchall()
    assert cache_rows(con) == before + 3  # only traffic's frames were cached


def test_model_over_a_non_frame_column_is_a_programming_error(con):
    for sql, message in [
        ("SELECT mobilenet(source) FROM traffic", "expected a frame column (BLOB of height*width*3 RGB bytes), "
                                                  "found column source of type VARCHAR"),
        ("SELECT features(mobilenet, frame_id) FROM traffic", "found column frame_id of type BIGINT"),
        ("SELECT mobilenet(frame) FROM traffic WHERE mobilenet(nope).score > 0", "the table has no column nope"),
        ("SELECT mobilenet(ts + 1) FROM traffic", "expects the frame column of a frames table"),
    ]:
        with pytest.raises(engine.ProgrammingError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
            con.execute(sql)
    con.execute("CREATE TABLE blobs AS SELECT frame_id, frame FROM traffic")
    with pytest.raises(engine.ProgrammingError, match="expected a frames table .* it lacks height, width"):
        con.execute("SELECT mobilenet(frame) FROM blobs")
    assert cache_rows(con) == 0


def test_frames_of_the_wrong_shape_are_data_errors_and_nothing_is_written(con, tmp_path):
    import torch
    from safetensors.torch import save_file

    from udfs.architectures import build

    state = build("plain_cnn", num_classes=3).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "small.safetensors"))
    con.execute("CREATE MODEL small FROM ? WITH (architecture = 'plain_cnn', num_classes = 3, input_size = 32)",
                [str(tmp_path / "small.safetensors")])
    with pytest.raises(engine.DataError, match=r"model small takes 32x32 frames .* frame 0 of traffic is 224x224"):
        con.execute("SELECT small(frame).label FROM traffic")
    con.execute("CREATE TABLE torn AS SELECT frame_id, frame[1:100] AS frame, height, width FROM traffic WHERE frame_id < 2")
    with pytest.raises(engine.DataError, match=r"frame 0 of torn: expected height\*width\*3 = 150528 bytes .* found 100 bytes"):
        con.execute("SELECT mobilenet(frame) FROM torn")
    assert cache_rows(con) == 0
    del torch


def test_long_scans_show_progress(con, capsys):
    con.execute("SET progress = 'on'")
    con.execute("SELECT mobilenet(frame).label FROM bikes WHERE frame_id < 2").fetchall()
    assert "mobilenet over bikes (full)" in capsys.readouterr().err
