"""Offline prediction in SQL: ``SELECT * FROM predict(<model>, (<query>))`` over frames, encoded
images and numeric columns, on the real ImageNet MobileNetV2 and vtest.avi, and on a numeric
model whose predictions are known."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

import engine
from engine.serving.offline import FASTEST, SEARCHES, prediction_statistics
from tests.conftest import data_file
from tests.serving_models import CREATE_FARES, expected_class, sum_sign_weights, synthetic_rows

FRAMES = 8


@pytest.fixture(scope="module")
def clip_database(tmp_path_factory):
    """vtest.avi, 8 frames at 96x96, and the ImageNet MobileNetV2 (any input size), made once."""
    path = tmp_path_factory.mktemp("predict") / "clip.duckdb"
    with engine.connect(path, autocommit=True, progress="off") as con:
        con.execute("LOAD VIDEO ? INTO traffic WITH (width = 96, height = 96, limit = 8)", [str(data_file("vtest.avi"))])
        con.execute("CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2', labels = ?)",
                    [str(data_file("mobilenet_v2.pth")), str(data_file("imagenet_classes.txt"))])
    return path


@pytest.fixture
def clip(clip_database, tmp_path):
    """A connection to a copy of the clip database, closed after the test."""
    copy = tmp_path / "clip.duckdb"
    shutil.copy(clip_database, copy)
    with engine.connect(copy, autocommit=True, progress="off") as connection:
        yield connection


def test_predict_over_frames_equals_the_model_function(clip):
    rows = clip.execute("SELECT frame_id, predicted_label, predicted_class_id, predicted_score "
                        "FROM predict(mobilenet, (SELECT * FROM traffic)) ORDER BY frame_id").fetchall()
    scan = clip.execute("SELECT frame_id, mobilenet(frame).label, mobilenet(frame).class_id, mobilenet(frame).score "
                        "FROM traffic ORDER BY frame_id").fetchall()
    assert len(rows) == FRAMES
    assert [r[:3] for r in rows] == [r[:3] for r in scan]
    np.testing.assert_allclose([r[3] for r in rows], [r[3] for r in scan], rtol=1e-5)  # batches of other sizes


def test_create_table_as_keeps_the_query_columns_and_adds_the_predictions(clip):
    clip.execute("CREATE TABLE scored AS SELECT * FROM predict(mobilenet, (SELECT frame_id, ts, frame, height, width "
                 "FROM traffic WHERE frame_id < 5))")
    columns = clip.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'scored' "
                           "ORDER BY ordinal_position").fetchall()
    assert columns == [("frame_id", "BIGINT"), ("ts", "DOUBLE"), ("frame", "BLOB"), ("height", "INTEGER"),
                       ("width", "INTEGER"), ("predicted_label", "VARCHAR"), ("predicted_class_id", "INTEGER"),
                       ("predicted_score", "DOUBLE")]
    assert clip.execute("SELECT count(*), count(predicted_label) FROM scored").fetchone() == (5, 5)


def test_predict_over_encoded_png_and_jpeg_images(clip):
    frames = engine.frames_to_numpy(clip, "traffic")
    blobs = []
    for i, frame in enumerate(frames):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "PNG" if i % 2 == 0 else "JPEG", quality=95)
        blobs.append(buffer.getvalue())
    clip.execute("CREATE TABLE photos AS SELECT unnest(range(?)) AS id, unnest(?::BLOB[]) AS image",
                 [len(blobs), blobs])
    rows = clip.execute("SELECT id, predicted_class_id, predicted_score FROM predict(mobilenet, photos) "
                        "ORDER BY id").fetchall()
    frame_rows = clip.execute("SELECT frame_id, predicted_class_id, predicted_score FROM "
                              "predict(mobilenet, (SELECT frame_id, frame, height, width FROM traffic)) "
                              "ORDER BY frame_id").fetchall()
    png = [i for i in range(FRAMES) if i % 2 == 0]
    assert [rows[i][1] for i in png] == [frame_rows[i][1] for i in png]  # PNG is lossless: the same pixels
    np.testing.assert_allclose([rows[i][2] for i in png], [frame_rows[i][2] for i in png], rtol=1e-5)  # other batches
    assert all(0 < r[2] <= 1 for r in rows)


def test_numeric_model_predicts_the_known_classes(con, tmp_path):
    FASTEST.clear()  # batch sizes found (and searches under way) are the process's: start from none
    SEARCHES.clear()
    con.execute(CREATE_FARES, [str(sum_sign_weights(tmp_path / "fares.safetensors"))])
    values = synthetic_rows(6000)
    con.execute("CREATE TABLE trips (id INTEGER, a DOUBLE, b DOUBLE, c DOUBLE)")
    con.executemany("INSERT INTO trips VALUES (?, ?, ?, ?)", [[i, *map(float, v)] for i, v in enumerate(values)])
    rows = con.execute("SELECT id, predicted_class_id, predicted_label FROM predict(fares, (SELECT * FROM trips)) "
                       "ORDER BY id").fetchall()
    truth = expected_class(values)
    assert [r[1] for r in rows] == truth.tolist()
    assert {r[2] for r in rows} == {"low", "high"}
    stats = prediction_statistics(con.session)[-1]
    assert stats.searched and stats.rows == 6000 and stats.predicted == 6000
    assert 1024 in stats.sizes and stats.sizes[1024] >= 4  # the search ran real batches (numeric rows: 1024, 4096, ...)
    assert stats.batch_size in stats.sizes
    # the model is also a SQL function of its inputs, in the order it reads them
    by_function = con.execute("SELECT fares(a, b, c).class_id, fares(a, b, c).label FROM trips ORDER BY id").fetchall()
    assert [r[0] for r in by_function] == truth.tolist() and [r[1] for r in by_function] == [r[2] for r in rows]



def test_an_interrupt_stops_predict_with_a_clean_error_and_keeps_nothing(con, tmp_path):
    """Connection.interrupt() reaches DuckDB's batch reader too (pyarrow raised OSError there)."""
    import threading
    import time

    con.execute(CREATE_FARES, [str(sum_sign_weights(tmp_path / "fares.safetensors"))])
    big = "(SELECT range AS id, 0.5 AS a, -1.0 AS b, 2.0 AS c FROM range(50000000))"
    timer = threading.Timer(0.5, con.interrupt)
    timer.start()
    started = time.perf_counter()
    with pytest.raises(engine.OperationalError, match="predict was interrupted"):
        con.execute(f"CREATE TABLE kept AS SELECT * FROM predict(fares, {big})")
    timer.join()
    assert time.perf_counter() - started < 30
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'kept'").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM predict(fares, (SELECT 1 AS id, 0.5 AS a, -1.0 AS b, 2.0 AS c))"
                       ).fetchone() == (1,)


def test_a_catalog_whose_class_count_disagrees_with_the_network_is_a_data_error(con, tmp_path):
    con.execute(CREATE_FARES, [str(sum_sign_weights(tmp_path / "fares.safetensors"))])
    rows = "(SELECT 1 AS id, 0.5 AS a, -1.0 AS b, 2.0 AS c)"
    queries = (f"SELECT * FROM predict(fares, {rows})", f"SELECT fares(a, b, c) FROM {rows}")
    # a tampered catalog: the weights no longer fit the architecture it describes ...
    con.execute("UPDATE mallard.model_versions SET num_classes = 3 WHERE model = 'fares'")
    for query in queries:
        with pytest.raises(engine.DataError, match="stored weights do not fit architecture .* with 3 classes"):
            con.execute(query)
    # ... or the network computes more class scores than the catalog names
    con.execute("UPDATE mallard.model_versions SET num_classes = 0 WHERE model = 'fares'")
    for query in queries:
        with pytest.raises(engine.DataError, match="computes 2 class scores but the catalog lists 0 classes"):
            con.execute(query)


def test_the_batch_size_found_serves_every_connection_of_the_process(tmp_path):
    FASTEST.clear()
    SEARCHES.clear()
    path = tmp_path / "trips.duckdb"
    truth = "(a - 1) / 2 + (b + 2) / 4 + (c - 0.5) / 0.5 > 0"  # SumSignNet's class, said in SQL
    found = []
    for _ in range(2):
        with engine.connect(path, autocommit=True, progress="off") as con:
            if not found:
                con.execute(CREATE_FARES, [str(sum_sign_weights(tmp_path / "fares.safetensors"))])
                con.execute("CREATE TABLE trips AS SELECT range AS id, 4 * sin(range) AS a, 3 * cos(range * 7) AS b, "
                            "sin(range * 13) AS c FROM range(600000)")
            count = con.execute("SELECT count(*) FROM predict(fares, trips) WHERE predicted_class_id = 1").fetchone()
            assert count == con.execute(f"SELECT count(*) FROM trips WHERE {truth}").fetchone()
            found.append(prediction_statistics(con.session)[-1])
    first, second = found
    assert first.searched and not second.searched  # the size is the machine's, not the connection's
    assert second.batch_size == first.batch_size and max(second.sizes, key=second.sizes.get) == first.batch_size


def test_columns_are_matched_by_name_and_null_inputs_get_null_predictions(con, tmp_path):
    con.execute(CREATE_FARES, [str(sum_sign_weights(tmp_path / "fares.safetensors"))])
    rows = con.execute("SELECT x, predicted_label FROM predict(fares, (SELECT 10 AS C, x, 1.5::DECIMAL(4, 2) AS A, "
                       "CASE WHEN x = 2 THEN NULL ELSE x END AS b FROM range(3) t(x))) ORDER BY x").fetchall()
    assert rows == [(0, "high"), (1, "high"), (2, None)]


def test_an_older_version_and_a_given_batch_size(con, tmp_path):
    con.execute(CREATE_FARES, [str(sum_sign_weights(tmp_path / "v1.safetensors"))])
    con.execute(CREATE_FARES, [str(sum_sign_weights(tmp_path / "v2.safetensors", scale=-1.0))])
    query = "SELECT predicted_class_id FROM predict(fares, (SELECT 3.0 AS a, 0.0 AS b, 1.0 AS c){}) "
    assert con.execute(query.format("")).fetchone() == (0,)            # version 2 flips the sign
    assert con.execute(query.format(", version => 1")).fetchone() == (1,)
    con.execute("SELECT * FROM predict(fares, (SELECT range::DOUBLE AS a, 0.0 AS b, 0.0 AS c FROM range(100)), "
                "batch_size => 32)").fetchall()
    stats = prediction_statistics(con.session)[-1]
    assert stats.sizes == {32: 3, 4: 1} and not stats.searched


def test_parameters_in_the_query_and_a_nested_predict(clip):
    rows = clip.execute("SELECT count(*) FROM predict(mobilenet, (SELECT * FROM traffic WHERE frame_id < ?))",
                        [3]).fetchone()
    assert rows == (3,)
    nested = clip.execute(
        "SELECT frame_id, first, predicted_label FROM predict(mobilenet, (SELECT frame_id, frame, height, width, "
        "predicted_label AS first FROM predict(mobilenet, (SELECT * FROM traffic WHERE frame_id < 2)))) ORDER BY 1"
    ).fetchall()
    assert len(nested) == 2 and all(first == second for _, first, second in nested)


def test_model_calls_inside_the_predicted_query(clip):
    rows = clip.execute("SELECT frame_id, scan_label, predicted_label FROM predict(mobilenet, (SELECT *, "
                        "mobilenet(frame).label AS scan_label FROM traffic WHERE frame_id < 3)) ORDER BY 1").fetchall()
    assert len(rows) == 3 and all(scan == predicted for _, scan, predicted in rows)


def test_explain_shows_the_step_and_analyze_runs_it(clip):
    rows = dict(clip.execute("EXPLAIN SELECT * FROM predict(mobilenet, (SELECT * FROM traffic), batch_size => 4)")
                .fetchall())
    assert "PREDICT mobilenet (version 1, mobilenet_v2) OVER" in rows["predict"]
    assert "frames in column frame (height x width RGB bytes)" in rows["predict"]
    assert "rows         8" in rows["predict"] and "batch size   4 (given)" in rows["predict"]
    assert "__mallard_predict_1" in rows["rewritten_query"]
    analyzed = dict(clip.execute("EXPLAIN ANALYZE SELECT * FROM predict(mobilenet, traffic)").fetchall())
    assert "ANALYZED: 8 of 8 rows predicted" in analyzed["predict"]


def test_a_progress_bar_follows_the_rows(clip, capsys):
    clip.execute("SET progress = 'on'")
    clip.execute("SELECT * FROM predict(mobilenet, traffic)").fetchall()
    assert "predict mobilenet (version 1)" in capsys.readouterr().err


@pytest.mark.parametrize("sql, error, message", [
    ("SELECT predict(mobilenet, (SELECT * FROM traffic))", engine.ProgrammingError, "predict(...) is a table function"),
    ("SELECT * FROM predict(mobilenet)", engine.ProgrammingError, "predict takes a model and a query"),
    ("SELECT * FROM predict(nosuch, traffic)", engine.ProgrammingError, "unknown model 'nosuch'"),
    ("SELECT * FROM predict(mobilenet, traffic, batch_size => 2, batch_size => 3)", engine.ProgrammingError,
     "predict option batch_size is given twice; give it once"),
    ("SELECT * FROM predict(mobilenet, traffic, batch => 3)", engine.ProgrammingError, "unknown predict option 'batch'"),
    ("SELECT * FROM predict(mobilenet, traffic, batch_size => 0)", engine.DataError,
     "predict option batch_size: expected a whole number in [1, 1000000], found 0"),
    ("SELECT * FROM predict(mobilenet, traffic, version => 7)", engine.ProgrammingError,
     "model mobilenet has no version 7; its versions: 1"),
    ("SELECT * FROM predict(mobilenet, (SELECT frame_id FROM traffic))", engine.ProgrammingError,
     "an image model needs a BLOB column"),
    ("SELECT * FROM predict(mobilenet, (SELECT frame, frame AS other FROM traffic), input => 'nope')",
     engine.ProgrammingError, "predict option input: expected a BLOB column of the query, found 'nope'"),
    ("SELECT * FROM predict(mobilenet, (SELECT frame, 'x' AS predicted_label FROM traffic))", engine.ProgrammingError,
     "predict adds the column predicted_label, which the query already has"),
    ("SELECT * FROM predict(mobilenet, (SELECT frame, height, width + 1 AS width FROM traffic))", engine.DataError,
     "a frame of 96x97 needs 27936 bytes"),
    ("SELECT * FROM predict(mobilenet, (SELECT 'not an image'::BLOB AS image))", engine.DataError,
     "expected a PNG or JPEG image, found 12 bytes that are neither"),
    ("SELECT * FROM predict(mobilenet, 42)", engine.ProgrammingError, "predict expects a query in parentheses"),
])
def test_bad_calls_are_clear_errors_and_create_nothing(clip, sql, error, message):
    with pytest.raises(error) as raised:
        clip.execute(f"CREATE TABLE out AS {sql}" if sql.startswith("SELECT *") else sql).fetchall()
    assert message in str(raised.value)
    assert clip.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'out'").fetchone() == (0,)


def test_numeric_models_need_their_columns_and_refuse_frames(clip, tmp_path):
    clip.execute(CREATE_FARES, [str(sum_sign_weights(tmp_path / "fares.safetensors"))])
    with pytest.raises(engine.ProgrammingError, match="the model reads column c, which the query lacks"):
        clip.execute("SELECT * FROM predict(fares, (SELECT 1.0 AS a, 2.0 AS b))")
    with pytest.raises(engine.ProgrammingError, match="the model reads column a as a number; the query gives it as string"):
        clip.execute("SELECT * FROM predict(fares, (SELECT 'x' AS a, 2.0 AS b, 1 AS c))")
    with pytest.raises(engine.ProgrammingError, match=r"model fares takes numeric columns \(a, b, c\), not frames"):
        clip.execute("SELECT fares(frame) FROM traffic").fetchall()


def test_create_model_checks_the_numeric_options(con, tmp_path):
    weights = str(sum_sign_weights(tmp_path / "fares.safetensors"))
    with pytest.raises(engine.DataError, match=r"option mean: expected 3 numbers \(one per input column a, b, c\)"):
        con.execute("CREATE MODEL m FROM ? WITH (architecture = 'tiny_sum_sign', inputs = ['a', 'b', 'c'], "
                    "mean = [1, 2])", [weights])
    with pytest.raises(engine.DataError, match="a column is named twice"):
        con.execute("CREATE MODEL m FROM ? WITH (architecture = 'tiny_sum_sign', inputs = ['a', 'A', 'c'])", [weights])
    with pytest.raises(engine.ProgrammingError, match="input_size is for image models"):
        con.execute("CREATE MODEL m FROM ? WITH (architecture = 'tiny_sum_sign', inputs = ['a', 'b', 'c'], "
                    "input_size = 8)", [weights])
    with pytest.raises(engine.ProgrammingError, match="'predict' cannot name a model"):
        con.execute("CREATE MODEL predict FROM ? WITH (architecture = 'tiny_sum_sign')", [weights])
    assert con.execute("SELECT count(*) FROM mallard.models").fetchone() == (0,)
