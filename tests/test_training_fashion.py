"""Real material: a Fashion-MNIST subset (Debian's dataset-fashion-mnist, in data/) loaded into
a table of frames, a small CNN trained on it from a query, evaluated on held-out test images."""
from __future__ import annotations

from engine.training.api import train
from engine.training.evaluation import evaluate
from engine.training.lineage import record
from engine.training.options import parse_options
from tests.conftest import data_file
from tests.training_data import FASHION_CLASSES, create_table, fashion_table, one_thread  # noqa: F401


def test_a_small_cnn_learns_fashion_mnist_from_a_query(con):
    duck = con.duckdb_connection
    folder = data_file("fashion-mnist")
    create_table(duck, "fashion", fashion_table(folder, "train", limit=2400))
    create_table(duck, "fashion_test", fashion_table(folder, "t10k", limit=1000))
    outcome = train(duck, "SELECT id, frame, height, width, label FROM fashion", parse_options(
        {"architecture": "small_cnn", "epochs": 2, "optimizer": "adam", "lr": 0.003, "batch_size": 32, "holdout": 0.1}))
    assert outcome.data.classes == tuple(sorted(FASHION_CLASSES)) and outcome.data.input_shape == (28, 28, 3)
    assert 0.2 < outcome.data.mean[0] < 0.4 and outcome.data.mean[0] == outcome.data.mean[2]  # grey: equal channels
    record(duck, "fashion_cnn", outcome)
    result = evaluate(duck, "fashion_cnn", "SELECT frame, height, width, label FROM fashion_test")
    assert result.rows == 1000 and result.accuracy > 0.7
    by_class = {name: recall for name, _, recall, _ in result.class_rows()}
    assert by_class["Trouser"] > 0.8  # the easiest class
