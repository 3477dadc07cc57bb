"""Training through SQL on a real DuckDB file: ``CREATE MODEL ... AS <query>`` (one
configuration and a grid), prediction with the trained model through ``predict(...)`` and the
model functions, ``EXPORT MODEL`` and ``CREATE MODEL ... FROM`` the exported file,
``EVALUATE MODEL`` against a count made by hand, ``training_history(...)``, the settings, and
atomicity: a failure, a rollback or an interrupt keeps no model and no version."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

import engine
from tests.training_data import create_table, image_table

#: A seeded two-class problem with known truth: which of two coordinates is larger.
POINTS = """
CREATE TABLE pts AS
SELECT range AS id, (range * 7919 % 1000) / 1000.0 AS a, (range * 104729 % 1000) / 1000.0 AS b,
       CASE WHEN (range * 7919 % 1000) > (range * 104729 % 1000) THEN 'above' ELSE 'below' END AS label
FROM range(600)
"""
MLP = "architecture = 'mlp', hidden = [16], epochs = 25, optimizer = 'adam', batch_size = 32, workers = 1"


@pytest.fixture
def db(tmp_path):
    con = engine.connect(str(tmp_path / "train.duckdb"), progress="off", autocommit=True)
    con.execute(POINTS)
    try:
        yield con
    finally:
        con.close()


def catalog_counts(con) -> tuple[int, ...]:
    return con.execute(
        "SELECT (SELECT count(*) FROM mallard.models), (SELECT count(*) FROM mallard.model_versions),"
        " (SELECT count(*) FROM mallard.training_runs), (SELECT count(*) FROM mallard.model_training),"
        " (SELECT count(*) FROM mallard.training_history)").fetchone()


def test_a_model_trained_from_a_query_predicts_through_predict(db, tmp_path):
    cursor = db.execute(f"CREATE MODEL sides WITH ({MLP}, lr = 0.05) AS SELECT id, a, b, label FROM pts WHERE id < 500")
    assert cursor.rowcount == 1
    version = db.execute("SELECT architecture, num_classes, labels, options FROM mallard.model_versions"
                         " WHERE model = 'sides'").fetchone()
    assert version[:3] == ("mlp", 2, ["above", "below"])
    assert json.loads(version[3])["inputs"] == ["a", "b"]  # what serving reads: a numeric model's columns
    shown = db.execute("SHOW MODELS").fetch_df().loc[0]
    assert (shown["name"], shown["trained_on"], shown["trained_rows"], shown["seed"]) == (
        "sides", "SELECT id, a, b, label FROM pts WHERE id < 500", 500, 0)
    hits, rows = db.execute("SELECT sum((predicted_label = label)::INT), count(*) FROM "
                            "predict(sides, (SELECT a, b, label FROM pts WHERE id >= 500))").fetchone()
    assert rows == 100 and hits >= 95  # the rule is learnable: unseen rows are predicted right
    db.close()  # the model lives in the file
    reopened = engine.connect(str(tmp_path / "train.duckdb"), progress="off")
    assert reopened.execute("SELECT count(*) FROM predict(sides, (SELECT a, b FROM pts))").fetchone()[0] == 600
    reopened.close()


def test_an_image_model_trained_in_sql_answers_model_functions(db):
    create_table(db.duckdb_connection, "shapes_train", image_table(300, size=12))
    create_table(db.duckdb_connection, "test_images", image_table(40, size=12, seed=7))
    db.execute("CREATE TABLE shapes_test AS SELECT id AS frame_id, id, frame, height, width, label FROM test_images")
    db.execute("CREATE MODEL shapes WITH (architecture = 'small_cnn', epochs = 4, optimizer = 'adam', lr = 0.01, "
               "batch_size = 16, workers = 1) AS SELECT id, frame, height, width, label FROM shapes_train")
    by_function = db.execute("SELECT id, shapes(frame).label, label FROM shapes_test ORDER BY id").fetchall()
    by_predict = db.execute("SELECT id, predicted_label FROM predict(shapes, (SELECT id, frame, height, width "
                            "FROM shapes_test)) ORDER BY id").fetchall()
    assert [(i, p) for i, p, _ in by_function] == by_predict
    assert np.mean([p == t for _, p, t in by_function]) > 0.7
    # distillation: a query that calls a model (planned like any statement) gives the labels
    db.execute("CREATE MODEL student WITH (architecture = 'tiny_cnn', epochs = 1, holdout = 0, workers = 1) AS "
               "SELECT frame_id, frame, height, width, shapes(frame).label AS label FROM shapes_test")
    lineage = db.execute("SELECT data_rows, query FROM mallard.model_lineage WHERE model = 'student'").fetchone()
    assert lineage == (40, "SELECT frame_id, frame, height, width, shapes(frame).label AS label FROM shapes_test")


def test_training_shows_a_progress_bar_with_loss_and_throughput(tmp_path, capfd):
    con = engine.connect(str(tmp_path / "bar.duckdb"), progress="on", autocommit=True)
    con.execute(POINTS)
    con.execute(f"CREATE MODEL sides WITH ({MLP}, epochs = 2) AS SELECT a, b, label FROM pts")
    con.close()
    shown = capfd.readouterr().err
    assert "CREATE MODEL sides" in shown and "loss=" in shown and "rows_s=" in shown and "row/s" in shown


def test_a_grid_in_sql_keeps_every_configuration_as_a_version(db):
    db.execute(f"CREATE MODEL sides WITH ({MLP}, lr = [0.05, 0.0001]) AS SELECT id, a, b, label FROM pts")
    versions = db.execute("SELECT version, is_current, configuration ->> 'lr', data_rows, query FROM "
                          "mallard.model_lineage WHERE model = 'sides' ORDER BY version").fetchall()
    assert len(versions) == 2 and sum(v[1] for v in versions) == 1
    best = db.execute("SELECT version FROM mallard.model_training WHERE model = 'sides' AND best").fetchone()[0]
    assert [v[0] for v in versions if v[1]] == [best]
    assert all(v[3] == 600 and v[4] == "SELECT id, a, b, label FROM pts" for v in versions)
    # the current one is the better on held-out rows
    accuracy = dict(db.execute("SELECT version, max_by(val_accuracy, epoch) FROM mallard.training_history "
                               "WHERE model = 'sides' GROUP BY version").fetchall())
    assert accuracy[best] == max(accuracy.values())
    history = db.execute("SELECT * FROM training_history('sides')").fetchall()
    assert [(r[0], r[1]) for r in history] == [(v, e) for v in (1, 2) for e in range(1, 26)]


def test_parameters_bind_into_the_training_statement(db):
    db.execute(f"CREATE MODEL sides WITH ({MLP}, lr = ?, epochs = ?) AS SELECT a, b, label FROM pts WHERE id < ?",
               [0.05, 3, 300])
    row = db.execute("SELECT data_rows, configuration ->> 'lr', epochs_run, query FROM mallard.model_lineage").fetchone()
    assert row == (300, "0.05", 3, "SELECT a, b, label FROM pts WHERE id < 300")  # the value bound, in the text


def test_export_and_create_model_from_the_file_predict_the_same(db, tmp_path):
    db.execute(f"CREATE MODEL sides WITH ({MLP}, lr = 0.05) AS SELECT id, a, b, label FROM pts")
    path = tmp_path / "sides.safetensors"
    db.execute("EXPORT MODEL sides TO ?", [str(path)])
    sidecar = json.loads((tmp_path / "sides.json").read_text())
    assert sidecar["labels"] == ["above", "below"] and sidecar["input"]["columns"] == ["a", "b"]
    db.execute(f"CREATE MODEL sides_copy FROM '{path}'")  # its options come from the sidecar
    pair = db.execute("SELECT o.predicted_label, c.predicted_label, o.predicted_score - c.predicted_score FROM "
                      "predict(sides, (SELECT id, a, b FROM pts)) o JOIN predict(sides_copy, (SELECT id, a, b FROM pts)) "
                      "c USING (id)").fetchall()
    assert len(pair) == 600 and all(p[0] == p[1] and abs(p[2]) < 1e-6 for p in pair)
    with pytest.raises(engine.DataError, match="ending in .safetensors"):
        db.execute(f"EXPORT MODEL sides TO '{tmp_path / 'sides.pt'}'")
    with pytest.raises(engine.ProgrammingError, match="unknown model 'nope'"):
        db.execute(f"EXPORT MODEL nope TO '{path}'")


def test_evaluate_model_matches_a_hand_count(db):
    db.execute(f"CREATE MODEL sides WITH ({MLP}, lr = 0.05, epochs = 2) AS SELECT id, a, b, label FROM pts")
    query = "SELECT a, b, label FROM pts WHERE id % 3 = 0"
    rows = db.execute(f"EVALUATE MODEL sides ON ({query})").fetchall()
    by_hand = {(t, p): n for t, p, n in db.execute(
        f"SELECT label, predicted_label, count(*) FROM predict(sides, ({query})) GROUP BY ALL").fetchall()}
    n = sum(by_hand.values())
    assert n == 200
    for model, version, cls, support, precision, recall, predicted_as, accuracy, loss, total in rows:
        assert (model, version, total) == ("sides", 1, 200)
        assert predicted_as == {p: by_hand.get((cls, p), 0) for p in ("above", "below")}
        assert support == sum(predicted_as.values())
        predicted = sum(by_hand.get((t, cls), 0) for t in ("above", "below"))
        assert precision == (by_hand.get((cls, cls), 0) / predicted if predicted else None)
        assert recall == pytest.approx(by_hand.get((cls, cls), 0) / support)
        assert accuracy == pytest.approx((by_hand.get(("above", "above"), 0) + by_hand.get(("below", "below"), 0)) / n)
        assert loss > 0
    assert [r[2] for r in rows] == ["above", "below"]
    table_form = db.execute("EVALUATE MODEL sides ON pts").fetchall()
    assert table_form[0][-1] == 600
    # the table function gives the statement's rows, and composes with SQL
    assert db.execute(f"SELECT * FROM evaluate(sides, ({query}))").fetchall() == rows
    assert db.execute("SELECT * FROM evaluate(sides, pts)").fetchall() == table_form
    worst = db.execute(f"SELECT class, recall FROM evaluate(sides, ({query}), label => 'label', version => 1) "
                       "ORDER BY recall LIMIT 1").fetchone()
    assert worst == min(((r[2], r[5]) for r in rows), key=lambda r: r[1])


def test_evaluate_table_function_errors_write_nothing(db):
    db.execute(f"CREATE MODEL sides WITH ({MLP}, lr = 0.05, epochs = 2) AS SELECT id, a, b, label FROM pts")
    before = catalog_counts(db)
    for sql, error, message in [
        ("SELECT * FROM evaluate(sides, pts, version => 7)", engine.ProgrammingError, "version 7"),
        ("SELECT * FROM evaluate(sides, pts, label => 'nothing')", engine.ProgrammingError, "nothing"),
        ("SELECT * FROM evaluate(sides, (SELECT a, label FROM pts))", engine.ProgrammingError, "b"),
        ("SELECT * FROM evaluate(sides, pts, shuffle => 1)", engine.ProgrammingError, "unknown evaluate option"),
    ]:
        with pytest.raises(error, match=message):
            db.execute(sql).fetchall()
    assert catalog_counts(db) == before


def test_a_numeric_model_is_a_sql_function_of_its_inputs(db):
    db.execute(f"CREATE MODEL sides WITH ({MLP}, lr = 0.05) AS SELECT id, a, b, label FROM pts WHERE id < 500")
    by_function = db.execute("SELECT id, sides(a, b).label, sides(a, b).class_id, sides(a, b).score FROM pts "
                             "ORDER BY id").fetchall()
    by_predict = db.execute("SELECT id, predicted_label, predicted_class_id, predicted_score FROM "
                            "predict(sides, pts) ORDER BY id").fetchall()
    assert [r[:3] for r in by_function] == [r[:3] for r in by_predict]  # the same computation
    np.testing.assert_allclose([r[3] for r in by_function], [r[3] for r in by_predict], rtol=1e-6)
    hits = db.execute("SELECT count(*) FROM pts WHERE id >= 500 AND sides(a, b).label = label").fetchone()[0]
    assert hits >= 95  # usable in WHERE, on unseen rows
    # logits and features: the network's own, with the catalog's normalization
    network = engine.load_model(db, "sides")
    row = db.execute("SELECT a, b, logits(sides, a, b), features(sides, a, b), sides(a, b).score FROM pts "
                     "WHERE id = 7").fetchone()
    import torch

    mean, std = map(np.array, db.execute("SELECT mean, std FROM mallard.model_versions WHERE model = 'sides'").fetchone())
    x = torch.tensor(((np.array(row[:2]) - mean) / std)[None, :], dtype=torch.float32)
    with torch.no_grad():
        np.testing.assert_allclose(row[2], network(x)[0].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(row[3], network.forward_features(x)[0].numpy(), rtol=1e-5, atol=1e-6)
    assert len(row[3]) == 16 and row[4] == pytest.approx(float(torch.softmax(torch.tensor(row[2]), 0).max()), rel=1e-6)
    # any numeric expressions; NULL in, NULL out; names as the call would have them
    cursor = db.execute("SELECT sides(a * 1, 0.5).label, sides(NULL, b).label AS missing FROM pts WHERE id = 3")
    assert [d[0] for d in cursor.description] == ["label", "missing"] and cursor.fetchone()[1] is None
    db.execute("CREATE TABLE scored AS SELECT id, sides(a, b).label AS guess FROM pts")
    assert db.execute("SELECT count(*) FROM scored WHERE guess IS NOT NULL").fetchone()[0] == 600
    # the function lives only while its statement does
    assert db.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE '__mallard_fn%'"
                      ).fetchone()[0] == 0


def test_numeric_model_function_errors(db):
    db.execute(f"CREATE MODEL sides WITH ({MLP}, lr = 0.05, epochs = 2) AS SELECT id, a, b, label FROM pts")
    for sql, message in [
        ("SELECT sides(a).label FROM pts", r"model sides takes numeric columns \(a, b\), not frames: write sides\(a, b\)"),
        ("SELECT logits(sides, a, b, a) FROM pts", r"write logits\(sides, a, b\)"),
        ("SELECT sides(a, 'b') FROM pts", "takes numbers"),
    ]:
        with pytest.raises(engine.ProgrammingError, match=message):
            db.execute(sql).fetchall()
    # a model retrained on other inputs is called with those (the catalog's current version decides)
    db.execute(f"CREATE OR REPLACE MODEL sides WITH ({MLP}, lr = 0.05, epochs = 2) AS SELECT id, a, label FROM pts")
    assert db.execute("SELECT count(sides(a).label) FROM pts").fetchone()[0] == 600


def test_a_failed_statement_keeps_nothing(db):
    db.execute(f"CREATE MODEL sides WITH ({MLP}, epochs = 1) AS SELECT a, b, label FROM pts")
    before = catalog_counts(db)
    with pytest.raises(engine.ProgrammingError, match="model sides already exists"):
        db.execute(f"CREATE MODEL sides WITH ({MLP}) AS SELECT a, b, label FROM pts")
    with pytest.raises(engine.DataError, match="hold NULL in some row"):
        db.execute(f"CREATE OR REPLACE MODEL sides WITH ({MLP}) AS "
                   "SELECT CASE WHEN id = 599 THEN NULL ELSE a END AS a, b, label FROM pts")
    assert catalog_counts(db) == before


def test_a_rolled_back_transaction_keeps_no_model(tmp_path):
    con = engine.connect(str(tmp_path / "t.duckdb"), progress="off")  # manual commit
    con.execute(POINTS)
    con.commit()
    con.execute(f"CREATE MODEL sides WITH ({MLP}, epochs = 1) AS SELECT a, b, label FROM pts")
    assert catalog_counts(con)[:2] == (1, 1)
    con.rollback()
    assert catalog_counts(con) == (0, 0, 0, 0, 0)
    con.close()


def test_an_interrupt_stops_training_and_keeps_nothing(db):
    """Connection.interrupt() from another thread (what Ctrl-C in the shell calls)."""
    started = threading.Event()

    def interrupt() -> None:
        started.wait()
        time.sleep(0.5)
        db.interrupt()

    thread = threading.Thread(target=interrupt)
    thread.start()
    began = time.perf_counter()
    started.set()
    with pytest.raises(engine.OperationalError, match="interrupted; no model and no version was kept"):
        db.execute(f"CREATE MODEL sides WITH ({MLP}, epochs = 100000) AS SELECT a, b, label FROM pts")
    thread.join()
    assert time.perf_counter() - began < 30
    assert catalog_counts(db) == (0, 0, 0, 0, 0)
    db.execute(f"CREATE MODEL sides WITH ({MLP}, epochs = 1) AS SELECT a, b, label FROM pts")  # usable again
    assert catalog_counts(db)[:2] == (1, 1)


@pytest.mark.parametrize("sql, error, message", [
    ("CREATE MODEL m WITH (architecture = 'mlp') AS SELECT a, b FROM pts", engine.ProgrammingError,
     "the training query has no label column label; its columns are a, b"),
    ("CREATE MODEL m WITH (architecture = 'mlp') AS SELECT a, b, a * 2 AS label FROM pts", engine.DataError,
     "label column label is DOUBLE; expected class names"),
    ("CREATE MODEL m WITH (architecture = 'small_cnn') AS SELECT a, b, label FROM pts", engine.DataError,
     "architecture small_cnn takes images, but the training query gives numeric columns \\(a, b\\); use mlp"),
    ("CREATE MODEL m WITH (architecture = 'mlp', hidden = [4096, 4096], device_memory = '1KB') AS "
     "SELECT a, b, label FROM pts", engine.DataError,
     "1000 B is smaller than the largest layer, features.2 \\(Linear\\), which needs 192.0 MiB"),
    ("CREATE MODEL m WITH (architecture = 'mlp', lr = [0.1, 0.01], lrr = [1, 2]) AS SELECT a, b, label FROM pts",
     engine.ProgrammingError, "unknown CREATE MODEL option 'lrr'; expected one of"),
    ("CREATE MODEL m WITH (architecture = 'mlp', lr = [0.1, -1]) AS SELECT a, b, label FROM pts", engine.DataError,
     "CREATE MODEL option lr: expected a number in \\(0, 1000\\], or a list of them"),
    ("CREATE MODEL m WITH (architecture = 'mlp', optimizer = 'rmsprop') AS SELECT a, b, label FROM pts",
     engine.DataError, "optimizer: expected one of 'sgd', 'adam'"),
    ("CREATE MODEL m WITH (lr = 0.1) AS SELECT a, b, label FROM pts", engine.ProgrammingError, "architecture"),
    ("CREATE MODEL m WITH (architecture = 'mlp') AS SELECT * FROM nowhere", engine.ProgrammingError, "nowhere"),
    ("CREATE MODEL m WITH (architecture = 'mlp') AS", engine.ProgrammingError, "Expected a query"),
    ("CREATE MODEL m", engine.ProgrammingError, "Expected FROM '<weights file>' \\(or AS <query> to train\\)"),
    ("CREATE MODEL predict WITH (architecture = 'mlp') AS SELECT a, b, label FROM pts", engine.ProgrammingError,
     "reserved"),
    ("EVALUATE MODEL nope ON pts", engine.ProgrammingError, "unknown model 'nope'"),
    # more memory than the address space holds (so no overcommit policy grants it): torch's
    # allocation error, as a clean one
    ("CREATE MODEL m WITH (architecture = 'mlp', epochs = 1, device_memory = '1000TB') AS "
     "SELECT a, b, label FROM pts", engine.OperationalError, "training failed: .*can't allocate memory"),
    ("CREATE MODEL m WITH (architecture = 'mlp', device_memory = 99999999999999999999999) AS "
     "SELECT a, b, label FROM pts", engine.DataError, "device_memory: expected a size of at most 1024TB"),
    ("CREATE MODEL m WITH (architecture = 'mlp', epochs = 1) AS SELECT CASE id WHEN 3 THEN 'nan'::DOUBLE "
     "WHEN 7 THEN '-inf'::DOUBLE ELSE a END AS a, b, label FROM pts", engine.DataError,
     "the input columns a, b hold 2 NaN or infinite values: filter or impute them"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(db, sql, error, message):
    with pytest.raises(error, match=message):
        db.execute(sql)
    assert catalog_counts(db) == (0, 0, 0, 0, 0)


def test_an_evaluation_query_without_the_model_inputs_is_an_error(db):
    db.execute(f"CREATE MODEL sides WITH ({MLP}, epochs = 1) AS SELECT a, b, label FROM pts")
    with pytest.raises(engine.ProgrammingError, match="no input column b"):
        db.execute("EVALUATE MODEL sides ON (SELECT a, label FROM pts)")
    with pytest.raises(engine.DataError, match="label 'left' is not one of model sides's classes"):
        db.execute("EVALUATE MODEL sides ON (SELECT a, b, 'left' AS label FROM pts)")


def test_model_versions_kept_prunes_old_versions_after_training(db):
    db.execute("SET model_versions_kept = 2")
    db.execute(f"CREATE MODEL sides WITH ({MLP}, epochs = 1, lr = [0.1, 0.05, 0.01]) AS SELECT a, b, label FROM pts")
    current = db.execute("SELECT current_version FROM mallard.models").fetchone()[0]
    kept = [r[0] for r in db.execute("SELECT version FROM mallard.model_versions ORDER BY 1").fetchall()]
    assert len(kept) == 2 and current in kept and 3 in kept
    with pytest.raises(engine.DataError, match="model_versions_kept"):
        db.execute("SET model_versions_kept = -1")


def test_training_device_setting_names_an_absent_gpu(db):
    import torch

    db.execute("SET training_device = 'cuda'")
    sql = f"CREATE MODEL sides WITH ({MLP}, epochs = 1) AS SELECT a, b, label FROM pts"
    if torch.cuda.is_available():
        db.execute(sql)
        assert catalog_counts(db)[:2] == (1, 1)
    else:
        with pytest.raises(engine.OperationalError, match="asks for a GPU"):
            db.execute(sql)
        assert catalog_counts(db) == (0, 0, 0, 0, 0)
    with pytest.raises(engine.DataError, match="expected 'cpu', 'cuda' or 'cuda:<n>'"):
        db.execute("SET training_device = 'gpu'")


def test_fine_tuning_in_sql_names_its_parent_and_checks_the_input_size(db):
    db.execute(f"CREATE MODEL base WITH ({MLP}, epochs = 1) AS SELECT a, b, label FROM pts WHERE id < 300")
    db.execute("CREATE MODEL tuned WITH (from_model = 'base', epochs = 1, lr = 0.01, workers = 1) AS "
               "SELECT a, b, label FROM pts WHERE id >= 300")
    assert db.execute("SELECT parent_model, parent_version, architecture FROM mallard.model_lineage "
                      "WHERE model = 'tuned'").fetchone() == ("base", 1, "mlp")
    before = catalog_counts(db)
    with pytest.raises(engine.DataError, match="does not fit the parent model: its features.0.weight has shape "
                                               "\\(16, 2\\), the data's input \\(1,\\) needs \\(16, 1\\)"):
        db.execute("CREATE MODEL narrow WITH (from_model = 'base') AS SELECT a, label FROM pts")
    assert catalog_counts(db) == before
