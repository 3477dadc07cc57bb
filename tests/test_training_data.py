"""Materializing a training query: partitions and held-out rows, data order, fingerprint,
normalization, classes, and clear errors for data that cannot be trained on."""
from __future__ import annotations

import duckdb
import numpy as np
import pytest

import engine
from engine.training.batches import PartitionReader, batch_slices, partition_order, row_order
from engine.training.materialize import materialize
from engine.training.options import parse_options
from engine.training.source import resolve_data, settle, source_relation
from tests.training_data import create_table, image_table, one_thread, points_table  # noqa: F401


@pytest.fixture
def duck():
    connection = duckdb.connect()
    create_table(connection, "points", points_table(600))
    create_table(connection, "images", image_table(120, size=8))
    yield connection
    connection.close()


def materialized(duck, query, tmp_path, **options):
    opts = parse_options({"architecture": "mlp", **options})
    rel = source_relation(duck, query)
    settle(duck)
    return materialize(rel, resolve_data(rel, opts), opts, str(tmp_path))


def test_partitions_hold_every_row_once_and_the_split_follows_the_key_hash(duck, tmp_path):
    data = materialized(duck, "SELECT * FROM points", tmp_path, partitions=3, holdout=0.25)
    assert data.kind == "numeric" and data.inputs == ("a", "b", "v") and data.input_shape == (4,)
    assert sum(data.partition_rows) + data.holdout_rows == 600 == data.fingerprint.rows
    assert max(data.partition_rows) - min(data.partition_rows) <= 1  # round robin
    assert 0.18 < data.holdout_rows / 600 < 0.32
    expected = duck.execute("SELECT count(*) FROM points WHERE hash(id, 0) % 1000000 < 250000").fetchone()[0]
    assert data.holdout_rows == expected
    again = materialized(duck, "SELECT * FROM points", tmp_path / "again", partitions=3, holdout=0.25)
    for name in data.partitions:
        with open(data.path(name), "rb") as a, open(again.path(name), "rb") as b:
            assert a.read() == b.read()  # same data and seed: same partitions, byte for byte
    other = materialized(duck, "SELECT * FROM points", tmp_path / "other", partitions=3, holdout=0.25, seed=1)
    assert other.holdout_rows != data.holdout_rows


def test_features_are_read_back_in_column_order(duck, tmp_path):
    data = materialized(duck, "SELECT id, a, b, v, label FROM points", tmp_path, partitions=2, holdout=0.0)
    rows = {}
    for name in data.partitions:
        with PartitionReader(data, name) as reader:
            batch = reader.take(np.arange(reader.rows))
            for x, y in zip(batch.x, batch.labels):
                rows[tuple(np.round(x, 5))] = data.classes[y]
    truth = duck.execute("SELECT a, b, v[1], v[2], label FROM points").fetchall()
    assert len(rows) == 600
    for a, b, v1, v2, label in truth[:50]:
        assert rows[tuple(np.round(np.array([a, b, v1, v2], dtype=np.float32), 5))] == label


def test_images_keep_their_pixels_and_give_per_channel_normalization(duck, tmp_path):
    data = materialized(duck, "SELECT * FROM images", tmp_path, architecture="small_cnn", holdout=0.0, partitions=1)
    assert data.kind == "image" and data.input_shape == (8, 8, 3) and data.classes == ("left", "red", "right")
    with PartitionReader(data, data.partitions[0]) as reader:
        pixels = reader.take(np.arange(reader.rows)).x
    source = image_table(120, size=8)
    stored = np.stack([np.frombuffer(f, dtype=np.uint8).reshape(8, 8, 3) for f in source.column("frame").to_pylist()])
    assert sorted(map(bytes, pixels)) == sorted(map(bytes, stored))
    assert np.allclose(data.mean, (stored / 255.0).reshape(-1, 3).mean(0))
    assert np.allclose(data.std, (stored / 255.0).reshape(-1, 3).std(0))


def test_fingerprint_changes_with_the_data_and_not_with_row_order(duck, tmp_path):
    first = materialized(duck, "SELECT * FROM points", tmp_path / "1").fingerprint
    shuffled = materialized(duck, "SELECT * FROM points ORDER BY b", tmp_path / "2").fingerprint
    changed = materialized(duck, "SELECT * REPLACE (a + 0.001 AS a) FROM points", tmp_path / "3").fingerprint
    assert first == shuffled and first.rows == changed.rows and first.hash != changed.hash


def test_epoch_order_is_seeded_and_rotates_per_configuration():
    assert partition_order(3, 1, 5) == partition_order(3, 1, 5)
    assert sorted(partition_order(3, 1, 5, rotation=2)) == list(range(5))
    assert partition_order(3, 1, 5, rotation=1) == partition_order(3, 1, 5)[1:] + partition_order(3, 1, 5)[:1]
    order = row_order(0, 0, 0, 103)
    assert sorted(order) == list(range(103)) and not np.array_equal(order, row_order(0, 1, 0, 103))
    assert np.array_equal(np.concatenate(batch_slices(order, 10)), order)


def test_rows_without_a_label_are_dropped_and_counted(duck, tmp_path):
    data = materialized(duck, "SELECT a, b, CASE WHEN id % 10 = 0 THEN NULL ELSE label END AS label FROM points", tmp_path)
    assert data.dropped_rows == 60 and data.fingerprint.rows == 540 and data.inputs == ("a", "b")


def test_integer_labels_are_class_ids(duck, tmp_path):
    data = materialized(duck, "SELECT a, b, (a > 0.5)::INT + (b > 0.5)::INT AS label FROM points", tmp_path)
    assert data.classes == (0, 1, 2) and data.labels == ("0", "1", "2")


@pytest.mark.parametrize("query, options, error, message", [
    ("SELECT a, b FROM points", {}, engine.ProgrammingError,
     "the training query has no label column label; its columns are a, b"),
    ("SELECT a, b, label FROM points", {"label": "truth"}, engine.ProgrammingError, "no label column truth"),
    ("SELECT a, b, a * 2.5 AS label FROM points", {}, engine.DataError,
     "label column label is DOUBLE; expected class names \\(VARCHAR\\) or class ids"),
    ("SELECT a, 'x' AS name, label FROM points", {}, engine.DataError,
     "input column name is VARCHAR; inputs must be numbers, numeric lists, or one image BLOB"),
    ("SELECT a, label FROM points", {"inputs": ["a", "c"]}, engine.ProgrammingError, "no input column c"),
    ("SELECT label FROM points", {}, engine.DataError, "no input columns besides the label"),
    ("SELECT frame, label FROM images", {"architecture": "small_cnn"}, engine.ProgrammingError,
     "needs height and width columns"),
    ("SELECT a, label FROM points", {"probs": "p"}, engine.ProgrammingError, "no probs column p"),
    ("SELECT a, label, a AS p FROM points", {"probs": "p"}, engine.DataError, "probs column p is DOUBLE"),
    ("SELECT a, label, label AS w FROM points", {"weight": "w"}, engine.DataError, "weight column w is VARCHAR"),
    ("DELETE FROM points", {}, engine.ProgrammingError, "one SELECT query"),
    ("SELECT * FROM nowhere", {}, engine.ProgrammingError, "nowhere"),
])
def test_bad_queries_fail_before_reading(duck, tmp_path, query, options, error, message):
    with pytest.raises(error, match=message):
        materialized(duck, query, tmp_path, **options)
    assert duck.execute("SELECT count(*) FROM points").fetchone()[0] == 600  # DELETE was not run


@pytest.mark.parametrize("query, message", [
    ("SELECT CASE WHEN id = 7 THEN NULL ELSE a END AS a, label FROM points", "hold NULL in some row"),
    ("SELECT CASE WHEN id = 7 THEN [1.0] ELSE [a, b] END AS f, label FROM points", "different lengths"),
    ("SELECT frame, height, width + (id = 3)::INT AS width, label FROM images", "different sizes"),
    ("SELECT frame[1:20] AS frame, height, width, label FROM images", "expected 8x8x3 = 192 bytes of RGB per row"),
    ("SELECT a, 'only' AS label FROM points", "at least two classes"),
])
def test_bad_values_are_data_errors(duck, tmp_path, query, message):
    architecture = "small_cnn" if "frame" in query else "mlp"
    with pytest.raises(engine.DataError, match=message):
        materialized(duck, query, tmp_path, architecture=architecture)


def test_probabilities_need_their_class_order(duck, tmp_path):
    query = "SELECT a, b, [1 - a, a] AS p FROM points"
    with pytest.raises(engine.DataError, match="give classes = \\[...\\] in the order of the probabilities"):
        materialized(duck, query, tmp_path, probs="p")
    data = materialized(duck, query, tmp_path / "ok", probs="p", classes=["low", "high"], holdout=0.0)
    assert data.has_probs and not data.has_label and data.classes == ("low", "high")
    with PartitionReader(data, data.partitions[0]) as reader:
        batch = reader.take(np.arange(5))
        assert np.allclose(batch.probs.sum(1), 1) and np.array_equal(batch.labels, batch.probs.argmax(1))


def test_the_label_run_a_query_reads_is_found(tmp_path):
    with engine.connect(progress="off", autocommit=True) as con:
        con.execute("""
            CREATE TABLE t AS SELECT range AS id, range % 3 AS x, range % 5 AS y FROM range(60);
            CREATE LABELING FUNCTION f1 ON t AS CASE WHEN x = 0 THEN 'no' ELSE 'yes' END;
            CREATE LABELING FUNCTION f2 ON t AS CASE WHEN y = 0 THEN 'no' END;
            CREATE LABELING FUNCTION f3 ON t AS CASE WHEN x + y > 4 THEN 'yes' END;
            LABEL t USING f1, f2, f3 WITH (classes = ['yes', 'no']) INTO t_labels;
        """)
        duck = con.duckdb_connection
        opts = parse_options({"architecture": "mlp", "probs": "probs", "weight": "weight"})
        query = "SELECT t.x, t.y, l.probs, l.weight FROM t JOIN t_labels l USING (id)"
        rel = source_relation(duck, query)
        from engine.training.source import find_label_run

        run = find_label_run(duck, query)
        data = materialize(rel, resolve_data(rel, opts), opts, str(tmp_path), run)
        assert run.target_table == "t_labels" and data.label_run == run.run_id
        assert data.classes == ("yes", "no")  # the LABEL run's order, not sorted
        assert data.has_weight and not data.has_label


def test_a_majority_vote_tie_has_no_label_but_trains_on_its_probabilities(tmp_path):
    with engine.connect(progress="off", autocommit=True) as con:
        con.execute("""
            CREATE TABLE t AS SELECT range AS id, range % 4 AS x FROM range(40);
            CREATE LABELING FUNCTION g1 ON t AS CASE WHEN x = 0 THEN 'no' WHEN x = 1 THEN 'yes' END;
            CREATE LABELING FUNCTION g2 ON t AS CASE WHEN x < 2 THEN 'yes' END;
            LABEL t USING g1, g2 WITH (classes = ['no', 'yes'], model = 'majority') INTO ties;
        """)
        duck = con.duckdb_connection
        assert duck.execute("SELECT count(*) FROM ties WHERE label IS NULL AND n_votes = 2").fetchone()[0] == 10
        opts = parse_options({"architecture": "mlp", "probs": "probs", "holdout": 0.0, "partitions": 1})
        query = "SELECT t.id, t.x, l.label, l.probs FROM t JOIN ties l USING (id)"
        rel = source_relation(duck, query)
        settle(duck)
        from engine.training.source import find_label_run

        data = materialize(rel, resolve_data(rel, opts), opts, str(tmp_path), find_label_run(duck, query))
        with PartitionReader(data, data.partitions[0]) as reader:
            batch = reader.take(np.arange(reader.rows))
        assert data.has_label and reader.rows == 40 and set(batch.labels.tolist()) <= {0, 1}
