"""The training loop: seeded and deterministic, learns known truth, reports progress, stops
cleanly when cancelled, weighs rows, fine-tunes catalog models, and refuses what cannot work."""
from __future__ import annotations

import glob
import os
import tempfile

import numpy as np
import pytest
import torch

import engine
from engine.training.api import train
from engine.training.lineage import record
from engine.training.options import parse_options
from engine.training.progress import Cancelled
from tests.conftest import data_file
from tests.training_data import create_table, image_table, one_thread, points_table  # noqa: F401


@pytest.fixture
def duck(con):
    connection = con.duckdb_connection
    create_table(connection, "points", points_table(600))
    create_table(connection, "images", image_table(300, size=12))
    return connection


def fit(duck, query="SELECT * FROM points", **options):
    return train(duck, query, parse_options({"architecture": "mlp", "epochs": 2, **options}))


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


def leftovers():
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "mallard_training_*")))


def test_same_seed_same_weights_other_seed_other_weights(duck):
    first, second = fit(duck, seed=3), fit(duck, seed=3)
    assert same(first.best_result.state, second.best_result.state)
    assert [m.train_loss for m in first.best_result.history] == [m.train_loss for m in second.best_result.history]
    assert not same(first.best_result.state, fit(duck, seed=4).best_result.state)


def test_a_small_cnn_learns_where_the_bright_patch_is(duck):
    outcome = train(duck, "SELECT * FROM images", parse_options(
        {"architecture": "small_cnn", "epochs": 4, "lr": 0.01, "optimizer": "adam", "batch_size": 16}))
    history = outcome.best_result.history
    assert len(history) == 4 and history[-1].train_loss < history[0].train_loss
    assert history[-1].val_accuracy > 0.85 and history[-1].rows + outcome.data.holdout_rows == 300
    assert outcome.data.labels == ("left", "red", "right")


def test_progress_reports_rows_loss_and_throughput(duck):
    reports = []
    outcome = train(duck, "SELECT * FROM points", parse_options({"architecture": "mlp", "epochs": 3, "batch_size": 8}),
                    progress=reports.append)
    assert reports and all(r.loss >= 0 and r.rows_per_second > 0 and r.epochs == 3 for r in reports)
    assert [r.rows_done for r in reports] == sorted(r.rows_done for r in reports)
    assert reports[-1].rows_total == 3 * sum(outcome.data.partition_rows)


def test_cancel_stops_cleanly_and_keeps_nothing(duck):
    before = leftovers()
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(Cancelled, match="cancelled"):
        train(duck, "SELECT * FROM points", parse_options({"architecture": "mlp", "epochs": 50, "batch_size": 4}),
              cancel=cancel)
    assert leftovers() == before and len(calls) == 6


def test_an_interrupt_propagates_and_removes_the_partitions(duck):
    before = leftovers()

    def interrupt(progress):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(duck, "SELECT * FROM points", parse_options({"architecture": "mlp", "epochs": 5, "batch_size": 4}),
              progress=interrupt)
    assert leftovers() == before


def test_row_weights_scale_the_loss(duck):
    """Weights of 2 with half the learning rate take exactly the steps of weights of 1 (plain SGD)."""
    plain = fit(duck, "SELECT *, 1.0 AS w FROM points", weight="w", lr=0.1, momentum=0.0)
    doubled = fit(duck, "SELECT *, 2.0 AS w FROM points", weight="w", lr=0.05, momentum=0.0)
    assert same(plain.best_result.state, doubled.best_result.state)
    ignored = fit(duck, "SELECT *, 0.0 AS w FROM points", weight="w")
    initial = fit(duck, epochs=1, lr=1e-30, momentum=0.0)  # as good as untrained
    assert all(torch.allclose(ignored.best_result.state[k], initial.best_result.state[k]) for k in ignored.best_result.state)


def test_one_hot_probabilities_train_like_hard_labels(duck):
    hard = fit(duck, "SELECT id, a, b, label FROM points", classes=["no", "yes"])
    soft = fit(duck, "SELECT id, a, b, CASE WHEN label = 'yes' THEN [0.0, 1.0] ELSE [1.0, 0.0] END AS p FROM points",
               probs="p", classes=["no", "yes"])
    assert all(torch.allclose(hard.best_result.state[k], soft.best_result.state[k], atol=1e-6) for k in hard.best_result.state)


def test_fine_tuning_starts_from_the_parent_and_freezes_what_it_is_told(duck):
    parent = train(duck, "SELECT * FROM images", parse_options({"architecture": "small_cnn", "epochs": 1, "batch_size": 16}))
    record(duck, "shapes", parent)
    child = train(duck, "SELECT * FROM images WHERE label <> 'red'",
                  parse_options({"from_model": "shapes", "freeze": "features", "epochs": 1, "batch_size": 16}))
    before, after = parent.best_result.state, child.best_result.state
    assert child.parent.name == "shapes" and child.parent.version == 1 and child.data.classes == ("left", "right")
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("features."))
    assert after["classifier.weight"].shape == (2, 128) and before["classifier.weight"].shape == (3, 128)
    assert child.data.mean == parent.data.mean  # the parent's normalization is kept
    with pytest.raises(engine.ProgrammingError, match="has no submodule 'backbone'; its submodules are features, classifier"):
        train(duck, "SELECT * FROM images", parse_options({"from_model": "shapes", "freeze": "backbone", "epochs": 1}))


def test_fine_tuning_the_imagenet_mobilenet_keeps_its_frozen_features(con, duck):
    con.execute("CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2')", [str(data_file("mobilenet_v2.pth"))])
    create_table(duck, "small", image_table(40, size=32, seed=1))
    outcome = train(duck, "SELECT * FROM small", parse_options(
        {"from_model": "mobilenet", "freeze": "features", "epochs": 1, "batch_size": 8, "lr": 0.01}))
    parent = torch.load(data_file("mobilenet_v2.pth"), weights_only=True)
    state = outcome.best_result.state
    assert all(torch.equal(parent[k], state[k]) for k in parent if k.startswith("features."))  # batch norm stats too
    assert state["classifier.1.weight"].shape == (3, 1280)
    assert outcome.data.mean == pytest.approx((0.485, 0.456, 0.406))


def test_architecture_and_data_must_fit(duck):
    with pytest.raises(engine.DataError, match="architecture mlp takes numeric columns, but the training query gives an image"):
        train(duck, "SELECT * FROM images", parse_options({"architecture": "mlp"}))
    with pytest.raises(engine.DataError, match="architecture small_cnn takes images"):
        train(duck, "SELECT * FROM points", parse_options({"architecture": "small_cnn"}))
    with pytest.raises(engine.ProgrammingError, match=r"unknown architecture 'resnet9'; known architectures: .*\bmlp\b.*small_cnn"):
        train(duck, "SELECT * FROM points", parse_options({"architecture": "resnet9"}))
    with pytest.raises(engine.DataError, match="does not take inputs of shape \\(2, 2, 3\\)"):
        create_table(duck, "tiny", image_table(30, size=2))
        train(duck, "SELECT * FROM tiny", parse_options({"architecture": "small_cnn", "epochs": 1}))


def test_a_parent_model_with_another_input_size_is_refused(duck):
    record(duck, "two_features", fit(duck, "SELECT a, b, label FROM points", epochs=1))
    with pytest.raises(engine.DataError, match="does not fit the parent model: its features.0.weight has shape \\(128, 2\\)"):
        train(duck, "SELECT a, b, v, label FROM points", parse_options({"from_model": "two_features", "epochs": 1}))


def test_a_registered_architecture_with_a_fixed_input_size_checks_the_images(duck):
    from torch import nn

    from udfs.architectures import ARCHITECTURES, architecture

    @architecture("fixed_64", input_size=(64, 64), replace=True)
    def fixed_64(num_classes: int = 2) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    try:
        with pytest.raises(engine.DataError, match="architecture fixed_64 takes 64x64 images, the training images are 12x12"):
            train(duck, "SELECT * FROM images", parse_options({"architecture": "fixed_64"}))
    finally:
        ARCHITECTURES.pop("fixed_64")


def test_device_selection(duck):
    if torch.cuda.is_available():
        outcome = fit(duck, device="cuda", epochs=1)
        assert outcome.best_result.state["classifier.weight"].device.type == "cpu"
    else:
        with pytest.raises(engine.OperationalError, match="device = 'cuda' asks for a GPU, but torch sees none"):
            fit(duck, device="cuda", epochs=1)
    assert np.isfinite(fit(duck, device="cpu", epochs=1).best_result.final.train_loss)
