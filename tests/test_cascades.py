"""Cascades (issue 13): selections under ``SET inference_accuracy`` on the real clip
(vtest.avi at 224x224, MobileNetV2), checked against exact inference on frames the
cascade's samples never saw.  The reference model runs over the clip once per module (the
result cache of a module-scoped database); the cascades label their samples from it.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import engine
from engine.cascades.bounds import lower_bound, needed_successes
from engine.cascades.calibration import calibrate
from engine.cascades.run import REPORTS
from engine.errors import DataError

CONTRACT = 0.9


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A database with vtest.avi, MobileNetV2, and its exact answers (cached) on every frame."""
    con = engine.connect(str(tmp_path_factory.mktemp("cascades") / "clip.db"), progress="off")
    con.execute("LOAD VIDEO 'data/vtest.avi' INTO traffic WITH (width = 224, height = 224)")
    con.execute("CREATE MODEL mobilenet FROM 'data/mobilenet_v2.pth' WITH (architecture = 'mobilenet_v2', "
                "labels = 'data/imagenet_classes.txt')")
    rows = con.execute("SELECT frame_id, mobilenet(frame).label, mobilenet(frame).score FROM traffic "
                       "ORDER BY frame_id").fetchall()
    ids = np.array([r[0] for r in rows])
    labels = np.array([r[1] for r in rows], dtype=object)
    scores = np.array([r[2] for r in rows])
    shares = Counter(labels.tolist())
    # the predicate: the commonest label that holds on 5-20% of frames (from the model's own outputs)
    label = max((k for k, v in shares.items() if 0.05 <= v / len(rows) <= 0.20), key=lambda k: shares[k])
    rare = max((k for k, v in shares.items() if 5 <= v <= 0.03 * len(rows)), key=lambda k: shares[k])
    con.execute(f"SET inference_accuracy = {CONTRACT}")
    con.execute("SET inference_cascade_min_frames = 500")
    con.execute("SET inference_cascade_sample = 500")
    con.execute("SET inference_cascade_max_undecided = 1")  # run the cascade even where it saves little
    yield con, ids, labels, scores, label, rare
    con.close()


def _selected(con, sql, *parameters):
    return {r[0] for r in con.execute(sql, list(parameters)).fetchall()}


def _achieved(got, truth, frames):
    """Precision and recall of ``got`` against ``truth`` on ``frames``."""
    tp = len(got & truth & frames)
    fp = len((got - truth) & frames)
    fn = len((truth - got) & frames)
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1), tp + fn


def _unseen(con, specialized_id, ids):
    training, calibration = con.execute("SELECT training_frames, calibration_frames FROM mallard.specialized_models "
                                        "WHERE specialized_id = ?", [specialized_id]).fetchone()
    return set(ids.tolist()) - set(training) - set(calibration)


def test_a_label_selection_meets_the_contract_on_frames_its_samples_never_saw(clip):
    con, ids, labels, _, label, _ = clip
    got = _selected(con, "SELECT frame_id FROM traffic WHERE mobilenet(frame).label = ?", label)
    report = con.session.state[REPORTS][-1]
    assert report.plan == "cascade", report.reason
    assert report.by_specialized + report.by_difference > 0, "the cheap stages decided nothing"
    assert report.thresholds.certified and report.thresholds.recall_bound >= CONTRACT
    unseen = _unseen(con, report.specialized_id, ids)
    assert len(unseen) >= 150
    truth = set(ids[labels == label].tolist())
    precision, recall, positives = _achieved(got, truth, unseen)
    assert positives >= 15
    assert precision >= CONTRACT and recall >= CONTRACT, (precision, recall, positives, report.render())
    row = con.execute("SELECT plan, frames, sampled, by_difference + by_specialized + by_reference, selected, "
                      "recall_bound FROM mallard.cascades ORDER BY cascade_id DESC LIMIT 1").fetchone()
    assert row[:2] == ("cascade", len(ids)) and row[2] + row[3] == len(ids) and row[4] == len(got)
    assert row[5] >= CONTRACT


def test_a_repeat_query_reuses_the_specialized_model_and_answers_the_same(clip):
    con, _, _, _, label, _ = clip
    first = _selected(con, "SELECT frame_id FROM traffic WHERE mobilenet(frame).label = ?", label)
    models = con.execute("SELECT count(*) FROM mallard.specialized_models").fetchone()[0]
    again = _selected(con, "SELECT frame_id FROM traffic WHERE mobilenet(frame).label = ?", label)
    report = con.session.state[REPORTS][-1]
    assert again == first and report.reused and "training" not in report.breakdown
    assert con.execute("SELECT count(*) FROM mallard.specialized_models").fetchone()[0] == models
    lineage = con.execute("SELECT model, model_version, frames_table, question, architecture, resolution, "
                          "len(training_frames) FROM mallard.specialized_models").fetchall()
    assert (lineage[0][0], lineage[0][1], lineage[0][2], lineage[0][3]) == ("mobilenet", 1, "traffic",
                                                                           f"label = '{label}'")
    assert lineage[0][4:] == ("tiny_cnn", 64, 200)
    text = "\n".join(r[1] for r in con.execute(
        "EXPLAIN SELECT frame_id FROM traffic WHERE mobilenet(frame).label = ?", [label]).fetchall())
    assert "reusing specialized model" in text and "thresholds          no below" in text
    # the table is 224x224; its small frames come from the stream's 768x576 pictures
    assert "frames decoded at full size (768x576) and shrunk" in text


def test_a_cascade_that_would_not_pay_computes_exactly_and_says_why(clip):
    con, ids, labels, _, label, _ = clip
    query = "SELECT frame_id FROM traffic WHERE mobilenet(frame).label = ?"
    _selected(con, query, label)
    undecided = con.session.state[REPORTS][-1].thresholds.undecided
    con.execute(f"SET inference_cascade_max_undecided = {undecided / 2}")
    try:
        got = _selected(con, query, label)
        explained = dict(con.execute(f"EXPLAIN {query}", [label]).fetchall())["cascade"]
    finally:
        con.execute("SET inference_cascade_max_undecided = 1")
    report = con.session.state[REPORTS][-1]
    assert got == set(ids[labels == label].tolist())
    assert report.plan == "exact" and "of its calibration frames to the reference model, more than " \
        "inference_cascade_max_undecided" in report.reason and report.reason.endswith("the cascade would not pay")
    assert "plan                exact: specialized model #" in explained


def test_a_score_selection_meets_the_contract(clip):
    con, ids, _, scores, _, _ = clip
    threshold = float(np.quantile(scores, 0.85))  # holds on about 15% of frames
    got = _selected(con, f"SELECT frame_id FROM traffic WHERE mobilenet(frame).score > {threshold}")
    report = con.session.state[REPORTS][-1]
    assert report.plan == "cascade", report.reason
    truth = set(ids[scores > threshold].tolist())
    precision, recall, _ = _achieved(got, truth, _unseen(con, report.specialized_id, ids))
    assert precision >= CONTRACT and recall >= CONTRACT, (precision, recall, report.render())


def test_too_few_positives_computes_exactly_and_says_how_many(clip):
    con, ids, labels, _, _, rare = clip
    got = _selected(con, "SELECT frame_id FROM traffic WHERE mobilenet(frame).label = ?", rare)
    report = con.session.state[REPORTS][-1]
    assert got == set(ids[labels == rare].tolist())
    assert report.plan == "exact" and report.reason.startswith("too few positives: the reference model said yes on")
    assert f"needs at least {needed_successes(CONTRACT)} positives" in report.reason


def test_a_short_query_trains_nothing(clip):
    con, ids, labels, _, label, _ = clip
    got = _selected(con, "SELECT frame_id FROM traffic WHERE frame_id < 200 AND mobilenet(frame).label <> ?", label)
    report = con.session.state[REPORTS][-1]
    assert got == set(ids[(ids < 200) & (labels != label)].tolist())
    assert report.plan == "exact" and "covers 200 frames, fewer than inference_cascade_min_frames" in report.reason


def test_queries_the_cascade_does_not_answer_compute_exactly_and_explain_says_why(clip):
    con, ids, labels, _, label, _ = clip
    rows = con.execute("SELECT frame_id, mobilenet(frame).label FROM traffic WHERE mobilenet(frame).label = ? "
                       "ORDER BY frame_id", [label]).fetchall()
    assert [r[0] for r in rows] == ids[labels == label].tolist()
    keys = dict(con.execute("EXPLAIN SELECT frame_id, mobilenet(frame).label FROM traffic "
                            "WHERE mobilenet(frame).label = ?", [label]).fetchall())
    assert "not applied" in keys["note"] and "cascade" not in keys
    assert con.execute("SELECT count(*) FROM traffic").fetchone()[0] == len(ids)  # no model call: as always


@pytest.mark.parametrize("value, found", [("0", "0"), ("1.5", "1.5"), ("-0.2", "-0.2"), ("'high'", "'high'")])
def test_a_contract_outside_0_1_is_refused(value, found):
    con = engine.connect(progress="off")
    with pytest.raises(DataError, match=r"SET inference_accuracy: expected NULL or 'none' \(exact\), or a number in "
                                        rf"\(0, 1\], found {found}"):
        con.execute(f"SET inference_accuracy = {value}")
    assert con.settings["inference_accuracy"] is None


def test_no_contract_and_a_contract_of_one_compute_exactly():
    con = engine.connect(progress="off")
    for value in ("NULL", "'none'", "1"):
        con.execute(f"SET inference_accuracy = {value}")
    assert con.settings["inference_accuracy"] == 1.0
    con.execute("SET inference_accuracy = NULL")
    assert con.settings["inference_accuracy"] is None


def test_calibration_bounds_hold_on_synthetic_scores_with_known_truth():
    rng = np.random.default_rng(7)
    y = rng.random(4000) < 0.15
    p = np.clip(np.where(y, 0.75, 0.25) + rng.normal(0, 0.2, len(y)), 0, 1)
    calibration, test = slice(0, 600), slice(600, None)
    t = calibrate(p[calibration], y[calibration], 0.9)
    assert t.certified and 0 < t.undecided < 1
    decided = t.decide(p[test])
    answer = np.where(decided == -1, y[test], decided == 1)
    tp = int(np.sum(answer & y[test]))
    assert tp / max(int(answer.sum()), 1) >= 0.9 and tp / int(y[test].sum()) >= 0.9
    assert calibrate(p[:40], y[:40], 0.95).certified is False  # a handful of positives certifies nothing
    assert lower_bound(59, 59) >= 0.95 > lower_bound(58, 58)


def test_a_stored_specialized_model_under_a_stricter_contract_than_its_sample_certifies_computes_exactly(clip):
    con, ids, labels, _, label, _ = clip
    query = "SELECT frame_id FROM traffic WHERE mobilenet(frame).label = ?"
    _selected(con, query, label)
    positives = con.session.state[REPORTS][-1].thresholds.positives
    strict = 0.999  # needs thousands of calibration positives
    con.execute(f"SET inference_accuracy = {strict}")
    try:
        got = _selected(con, query, label)
    finally:
        con.execute(f"SET inference_accuracy = {CONTRACT}")
    report = con.session.state[REPORTS][-1]
    assert got == set(ids[labels == label].tolist()) and report.plan == "exact" and report.reused
    assert f"with {positives} positives; certifying precision and recall {strict:g} at 95% confidence needs at least " \
           f"{needed_successes(strict)}" in report.reason


def test_a_count_under_the_contract_is_estimated_with_an_interval_that_holds_the_exact_count(clip):
    con, ids, labels, _, label, _ = clip
    count = con.execute("SELECT count(*) AS n FROM traffic WHERE mobilenet(frame).label = ?", [label]).fetchone()[0]
    report = con.session.state[REPORTS][-1]
    exact = int(np.sum(labels == label))
    assert report.plan == "cascade" and report.request.kind == "count", report.reason
    assert count == round(report.estimate)
    low, high = report.interval
    assert low <= exact <= high, (exact, report.render())
    assert abs(count - exact) <= (1 - CONTRACT) * exact and (high - low) / 2 <= (1 - CONTRACT) * report.estimate
    assert report.by_reference < len(ids) and report.estimate_sample == report.by_reference
    row = con.execute("SELECT kind, estimate, interval_low, interval_high, estimate_sample, variance_ratio "
                      "FROM mallard.cascades ORDER BY cascade_id DESC LIMIT 1").fetchone()
    assert row[:5] == ("count", report.estimate, low, high, report.estimate_sample) and 0 <= row[5] <= 1.0001
    analyzed = dict(con.execute("EXPLAIN ANALYZE SELECT count(*) FROM traffic WHERE mobilenet(frame).label = ?",
                                [label]).fetchall())["cascade"]
    for stage in ("specialized model", "reference model", "estimate", "cost"):
        assert f"\n  {stage} " in analyzed, analyzed
    assert "95% interval" in analyzed and "of plain sampling's variance" in analyzed


def test_an_average_score_under_the_contract_holds_the_exact_average(clip):
    con, _, _, scores, _, _ = clip
    got = con.execute("SELECT avg(mobilenet(frame).score) FROM traffic").fetchone()[0]
    report = con.session.state[REPORTS][-1]
    assert report.plan == "cascade" and report.request.kind == "avg", report.reason
    exact = float(scores.mean())
    assert report.interval[0] <= exact <= report.interval[1], (exact, report.render())
    assert abs(got - exact) <= (1 - CONTRACT) * exact


def _overlap(got, exact):
    return len(set(got) & set(exact)) / len(exact)


def test_a_top_k_under_the_contract_overlaps_the_exact_top_k(clip):
    con, ids, labels, scores, label, _ = clip
    rows = con.execute("SELECT frame_id, mobilenet(frame).score FROM traffic "
                       "ORDER BY mobilenet(frame).score DESC LIMIT 20").fetchall()
    report = con.session.state[REPORTS][-1]
    assert report.plan == "cascade" and report.request.kind == "top_k" and len(rows) == 20, report.reason
    exact = ids[np.lexsort((ids, -scores))][:20].tolist()
    assert _overlap([r[0] for r in rows], exact) >= max(CONTRACT, report.overlap_bound - 1e-9)
    by_id = dict(zip(ids.tolist(), scores.tolist()))
    assert all(abs(score - by_id[frame]) < 1e-6 for frame, score in rows)  # the reference model's scores
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    among = labels == label
    got = [r[0] for r in con.execute("SELECT frame_id FROM traffic WHERE mobilenet(frame).label = ? "
                                     "ORDER BY mobilenet(frame).score DESC LIMIT 10", [label]).fetchall()]
    exact = ids[among][np.lexsort((ids[among], -scores[among]))][:10].tolist()
    assert set(got) <= set(ids[among].tolist()) and _overlap(got, exact) >= CONTRACT


def test_an_aggregate_over_too_few_frames_computes_exactly_and_says_why(clip):
    con, ids, labels, _, _, rare = clip  # a question no stored specialized model answers (one is reused at any size)
    query = "SELECT count(*) FROM traffic WHERE frame_id < 200 AND mobilenet(frame).label = ?"
    count = con.execute(query, [rare]).fetchone()[0]
    report = con.session.state[REPORTS][-1]
    assert count == int(np.sum((labels == rare) & (ids < 200)))
    assert report.plan == "exact" and "covers 200 frames, fewer than inference_cascade_min_frames" in report.reason
    explained = dict(con.execute(f"EXPLAIN {query}", [rare]).fetchall())["cascade"]
    assert "plan                exact: the query covers 200 frames" in explained
    assert "expected cost       reference model on all 200 frames" in explained


def test_explain_shows_the_expected_cost_against_exact_inference(clip):
    con, ids, _, _, label, _ = clip
    for query in ("SELECT frame_id FROM traffic WHERE mobilenet(frame).label = ?",
                  "SELECT count(*) FROM traffic WHERE mobilenet(frame).label = ?",
                  "SELECT frame_id FROM traffic WHERE mobilenet(frame).label = ? "
                  "ORDER BY mobilenet(frame).score DESC LIMIT 5"):
        text = dict(con.execute(f"EXPLAIN {query}", [label]).fetchall())["cascade"]
        assert f" of {len(ids)} frames (" in text and f"exact inference: all {len(ids)}" in text, text


@pytest.mark.parametrize("query", [
    "SELECT avg(m(frame).score) FROM one",
    "SELECT frame_id FROM one ORDER BY m(frame).score DESC LIMIT 1",
    "SELECT count(*) FROM one WHERE m(frame).score > 0.01",
])
def test_a_query_over_one_frame_computes_it_exactly_whatever_the_minimum(query):
    """With inference_cascade_min_frames = 0 a one-frame query has no sample to train on: the
    answer is exact and the report says why (it raised IndexError before)."""
    con = engine.connect(progress="off")
    con.execute("LOAD VIDEO 'data/carphone.mp4' INTO one WITH (width = 32, height = 24, limit = 1)")
    con.execute("CREATE MODEL m FROM 'data/mobilenet_v2.pth' WITH (architecture = 'mobilenet_v2')")
    exact = con.execute("SELECT m(frame).score FROM one").fetchone()[0]
    con.execute("SET inference_accuracy = 0.9")
    con.execute("SET inference_cascade_min_frames = 0")
    answer = con.execute(query).fetchone()[0]
    assert answer == (pytest.approx(exact) if "avg" in query else (0 if "LIMIT" in query else 1))
    report = con.session.state[REPORTS][-1]
    assert report.plan == "exact", report.reason
