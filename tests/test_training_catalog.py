"""Trained models in the catalog: versions with their lineage (query, data fingerprint,
options, seed, LABEL run, metrics, history), the best made current, nothing written when
the transaction is rolled back; evaluation, export, loading, pruning; and the model
functions over frames (``m(frame)``, ``logits(m, frame)``) working with a trained model."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import engine
from engine.training.api import train
from engine.training.evaluation import evaluate
from engine.training.export import export_model, load_export
from engine.training.lineage import check_target, prune_versions, record, training_history
from engine.training.loading import load_model, model_signature
from engine.training.options import parse_options
from tests.training_data import create_table, image_table, one_thread, points_table  # noqa: F401

GRID = {"architecture": "mlp", "hidden": [16], "epochs": 2, "lr": [0.3, 0.001], "workers": 1, "momentum": 0.0}


@pytest.fixture
def duck(con):
    connection = con.duckdb_connection
    create_table(connection, "points", points_table(400))
    create_table(connection, "images", image_table(150, size=12))
    return connection


def rows(duck, sql, params=()):
    return duck.execute(sql, list(params)).fetchall()


def test_a_grid_becomes_versions_with_their_lineage(duck):
    outcome = train(duck, "SELECT * FROM points", parse_options(GRID))
    recorded = record(duck, "yes_no", outcome)
    best = outcome.best_result
    assert recorded.best_version == 1 and sorted(recorded.versions) == [1, 2]
    assert rows(duck, "SELECT current_version FROM mallard.models WHERE name = 'yes_no'") == [(1,)]
    assert best.configuration.lr == 0.3  # a learning rate of 0.001 barely moves in two epochs
    lineage = rows(duck, "SELECT version, is_current, created_by, query, data_rows, data_hash, seed, label_run_id, "
                         "configuration, strategy FROM mallard.model_lineage WHERE model = 'yes_no' ORDER BY version")
    assert [(r[0], r[1], r[2]) for r in lineage] == [(1, True, "TRAIN"), (2, False, "TRAIN")]
    assert lineage[0][3] == "SELECT * FROM points" and lineage[0][4] == 400 == outcome.data.fingerprint.rows
    assert lineage[0][5] == outcome.data.fingerprint.hash and lineage[0][6] == 0 and lineage[0][7] is None
    assert json.loads(lineage[1][8])["lr"] == 0.001 and lineage[0][9] == "plain"
    options, metrics = rows(duck, "SELECT options, metrics FROM mallard.model_versions WHERE model = 'yes_no' AND version = 1")[0]
    assert json.loads(options)["lr"] == 0.3 and json.loads(metrics)["val_accuracy"] == best.final.val_accuracy
    run = rows(duck, "SELECT train_rows, holdout_rows, input_kind, inputs, input_shape, configurations, best_version,"
                     " wall_seconds > 0 FROM mallard.training_runs")
    assert run == [(sum(outcome.data.partition_rows), outcome.data.holdout_rows, "numeric", ["a", "b", "v"], [4], 2, 1, True)]
    history = training_history(duck, "yes_no")
    assert [(h[0], h[1]) for h in history] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert rows(duck, "SELECT * FROM training_history('YES_NO')") == history  # the SQL macro
    assert history[1][2:5] == (best.final.train_loss, best.final.val_loss, best.final.val_accuracy)


def test_replacing_adds_versions_and_names_are_checked_before_training(duck):
    outcome = train(duck, "SELECT * FROM points", parse_options({**GRID, "lr": 0.1}))
    record(duck, "yes_no", outcome)
    with pytest.raises(engine.ProgrammingError, match="model yes_no already exists; use CREATE OR REPLACE MODEL"):
        check_target(duck, "yes_no", replace=False)
    with pytest.raises(engine.ProgrammingError, match="model yes_no already exists"):
        record(duck, "yes_no", outcome)
    assert record(duck, "yes_no", outcome, replace=True).versions == (2,)
    assert rows(duck, "SELECT version, parent_version FROM mallard.model_versions ORDER BY 1") == [(1, None), (2, 1)]
    with pytest.raises(engine.ProgrammingError, match="cannot name a model"):
        check_target(duck, "features", replace=False)


def test_a_fine_tuned_version_names_its_parent(duck):
    record(duck, "shapes", train(duck, "SELECT * FROM images", parse_options({"architecture": "small_cnn", "epochs": 1})))
    child = train(duck, "SELECT * FROM images", parse_options({"from_model": "shapes", "freeze": "features", "epochs": 1}))
    record(duck, "shapes_tuned", child)
    assert rows(duck, "SELECT parent_model, parent_version, architecture FROM mallard.model_lineage "
                      "WHERE model = 'shapes_tuned'") == [("shapes", 1, "small_cnn")]


def test_the_label_run_used_is_recorded(con, duck):
    con.execute("""
        CREATE LABELING FUNCTION f_a ON points AS CASE WHEN a > 0.7 THEN 'yes' WHEN a < 0.3 THEN 'no' END;
        CREATE LABELING FUNCTION f_b ON points AS CASE WHEN b > 0.7 THEN 'yes' WHEN b < 0.3 THEN 'no' END;
        CREATE LABELING FUNCTION f_ab ON points AS CASE WHEN a + b > 1.2 THEN 'yes' WHEN a + b < 0.8 THEN 'no' END;
        LABEL points USING f_a, f_b, f_ab WITH (classes = ['no', 'yes']) INTO point_labels;
    """)
    query = "SELECT p.id, p.a, p.b, l.probs, l.weight FROM points p JOIN point_labels l USING (id)"
    outcome = train(duck, query, parse_options({"architecture": "mlp", "probs": "probs", "weight": "weight", "epochs": 4,
                                                "lr": 0.1}))
    record(duck, "weak", outcome)
    run_id = rows(duck, "SELECT max(run_id) FROM mallard.label_runs")[0][0]
    assert rows(duck, "SELECT label_run_id FROM mallard.model_lineage WHERE model = 'weak'") == [(run_id,)]
    weak_accuracy = rows(duck, "SELECT avg((l.label = p.label)::INT) FROM point_labels l JOIN points p USING (id)")[0][0]
    accuracy = evaluate(duck, "weak", "SELECT a, b, label FROM points").accuracy  # against the truth
    assert accuracy > min(0.7, weak_accuracy - 0.05)


def test_a_rolled_back_transaction_keeps_no_model(duck):
    outcome = train(duck, "SELECT * FROM points", parse_options(GRID))
    counts = "SELECT (SELECT count(*) FROM mallard.models), (SELECT count(*) FROM mallard.model_versions), " \
             "(SELECT count(*) FROM mallard.training_runs), (SELECT count(*) FROM mallard.model_training), " \
             "(SELECT count(*) FROM mallard.training_history)"
    duck.execute("BEGIN")
    record(duck, "yes_no", outcome)
    assert rows(duck, counts) == [(1, 2, 1, 2, 4)]
    duck.execute("ROLLBACK")
    assert rows(duck, counts) == [(0, 0, 0, 0, 0)]


def test_evaluation_matches_a_hand_count(duck):
    record(duck, "yes_no", train(duck, "SELECT * FROM points", parse_options({**GRID, "lr": 0.3})))
    result = evaluate(duck, "yes_no", "SELECT a, b, v, label FROM points WHERE id < 200")
    network = load_model(duck, "yes_no")
    signature = model_signature(duck, "yes_no")
    table = duck.execute("SELECT a, b, v[1], v[2], label FROM points WHERE id < 200").fetchall()
    x = torch.tensor([r[:4] for r in table], dtype=torch.float32)
    x = (x - torch.tensor(signature.spec.mean, dtype=torch.float32)) / torch.tensor(signature.spec.std, dtype=torch.float32)
    with torch.no_grad():
        logits = network(x)
    truth = torch.tensor([signature.spec.labels.index(r[4]) for r in table])
    predicted = logits.argmax(1)
    confusion = np.zeros((2, 2), dtype=int)
    np.add.at(confusion, (truth.numpy(), predicted.numpy()), 1)
    assert result.rows == 200 and result.confusion == tuple(map(tuple, confusion))
    assert result.accuracy == pytest.approx(float((truth == predicted).float().mean()))
    assert result.loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, truth)), rel=1e-5)
    assert result.recall[1] == pytest.approx(confusion[1, 1] / confusion[1].sum())
    assert result.precision[0] == pytest.approx(confusion[0, 0] / confusion[:, 0].sum())
    with pytest.raises(engine.DataError, match="label 'maybe' is not one of model yes_no's classes"):
        evaluate(duck, "yes_no", "SELECT a, b, v, 'maybe' AS label FROM points")
    with pytest.raises(engine.ProgrammingError, match="no input column v"):
        evaluate(duck, "yes_no", "SELECT a, b, label FROM points")


def test_export_writes_safetensors_and_a_sidecar_that_load_back(duck, tmp_path):
    record(duck, "shapes", train(duck, "SELECT * FROM images", parse_options({"architecture": "small_cnn", "epochs": 1})))
    path = str(tmp_path / "shapes.safetensors")
    exported = export_model(duck, "shapes", path)
    network, sidecar = load_export(path)
    assert os.path.exists(exported.sidecar_path) and sidecar["input"] == {
        "kind": "image", "columns": ["frame"], "size": [12, 12], "layout": "HWC uint8 RGB, as frames tables store frames"}
    assert sidecar["labels"] == ["left", "red", "right"] and len(sidecar["normalization"]["mean"]) == 3
    assert sidecar["lineage"]["query"] == "SELECT * FROM images" and sidecar["lineage"]["data_rows"] == 150
    x = torch.randn(2, 3, 12, 12)
    assert torch.equal(network(x), load_model(duck, "shapes")(x))
    with pytest.raises(engine.DataError, match="ending in .safetensors"):
        export_model(duck, "shapes", str(tmp_path / "shapes.pt"))


def test_pruning_keeps_the_current_and_newest_versions(duck):
    outcome = train(duck, "SELECT * FROM points", parse_options({**GRID, "lr": [0.3, 0.1, 0.03, 0.01]}))
    recorded = record(duck, "yes_no", outcome)
    assert prune_versions(duck, "yes_no", keep=2) == 2
    kept = [r[0] for r in rows(duck, "SELECT version FROM mallard.model_versions ORDER BY 1")]
    assert recorded.best_version in kept and len(kept) == 2 and max(recorded.versions) in kept
    assert {r[0] for r in rows(duck, "SELECT DISTINCT version FROM mallard.training_history")} == set(kept)


def test_drop_model_removes_its_training_rows(con, duck):
    record(duck, "yes_no", train(duck, "SELECT * FROM points", parse_options({**GRID, "lr": 0.1})))
    con.execute("DROP MODEL yes_no")
    assert rows(duck, "SELECT (SELECT count(*) FROM mallard.training_runs) + (SELECT count(*) FROM "
                      "mallard.model_training) + (SELECT count(*) FROM mallard.training_history)") == [(0,)]


def test_model_functions_over_frames_use_a_trained_model(con, duck):
    create_table(duck, "more_images", image_table(300, size=12))
    outcome = train(duck, "SELECT * FROM more_images", parse_options(
        {"architecture": "small_cnn", "epochs": 4, "optimizer": "adam", "lr": 0.01, "batch_size": 16}))
    record(duck, "shapes", outcome)
    table = image_table(20, size=12, seed=5)
    pixels = np.stack([np.frombuffer(f, dtype=np.uint8).reshape(12, 12, 3) for f in table.column("frame").to_pylist()])
    engine.frames_from_numpy(con, "clip", pixels)
    got = con.execute("SELECT frame_id, shapes(frame).label, logits(shapes, frame) FROM clip ORDER BY frame_id").fetchall()
    from engine.inference.networks import normalize_frames

    with torch.no_grad():
        expected = load_model(duck, "shapes")(normalize_frames(pixels, outcome.data.mean, outcome.data.std).contiguous())
    assert np.allclose(np.array([r[2] for r in got]), expected.numpy(), atol=1e-4)
    assert [r[1] for r in got] == [outcome.data.labels[i] for i in expected.argmax(1).tolist()]
    assert np.mean([r[1] == t for r, t in zip(got, table.column("label").to_pylist())]) > 0.7
