"""predict(...) over numeric rows: the torch thread count measured per model (ThreadTrial), the
inputs decoded column by column (Fortran order), and predictors kept per process."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

import engine
from engine.serving import offline
from engine.serving.batch_size import THREAD_ORDER, THREAD_ROUNDS, ThreadTrial
from engine.serving.input_columns import input_reader
from engine.serving.model_inputs import ModelInput
from engine.serving.offline import prediction_statistics
from engine.serving.predictor import Predictor
from tests.serving_models import CREATE_FARES, sum_sign_weights

TRUTH = "(a - 1) / 2 + (b + 2) / 4 + (c - 0.5) / 0.5 > 0"  # SumSignNet's class, said in SQL
TRIPS = ("CREATE TABLE trips AS SELECT range AS id, 4 * sin(range) AS a, 3 * cos(range * 7) AS b, "
         "sin(range * 13) AS c FROM range(400000)")


def run_trial(per_row: dict[int, float], threads: int = 2) -> ThreadTrial:
    trial = ThreadTrial(threads)
    order = []
    while not trial.done:
        n = trial.next_threads()
        order.append(n)
        trial.record(n, 1000, per_row[n] * 1000)
    assert order == [n or threads for n in THREAD_ORDER for _ in range(THREAD_ROUNDS)]
    return trial


def test_the_trial_picks_one_thread_only_when_clearly_faster():
    assert run_trial({1: 1.0, 2: 1.5}).best == 1
    assert run_trial({1: 1.5, 2: 1.0}).best == 2
    assert run_trial({1: 0.99, 2: 1.0}).best == 2  # within the tolerance: a tie keeps every core


def test_the_first_round_of_each_block_is_not_counted():
    trial = ThreadTrial(2)
    while not trial.done:
        n = trial.next_threads()
        first = trial.rounds % THREAD_ROUNDS == 0
        trial.record(n, 1000, 100.0 if first and n == 2 else 1.0)  # all threads: a slow start each block
    assert trial.best == 2 and trial.per_row(2) == trial.per_row(1)


def test_a_trial_on_one_thread_is_done_at_once_and_a_wrong_round_is_ignored():
    assert ThreadTrial(1).done and ThreadTrial(1).next_threads() == 1
    trial = ThreadTrial(4)
    trial.record(1, 1000, 1.0)  # not the count asked for: ignored
    assert trial.rounds == 0 and trial.next_threads() == 4


@pytest.fixture
def trips(tmp_path):
    for table in (offline.FASTEST, offline.SEARCHES, offline.FASTEST_THREADS, offline.THREAD_TRIALS):
        table.clear()  # what the process has found so far: start from nothing
    path = tmp_path / "trips.duckdb"
    with engine.connect(path, autocommit=True, progress="off") as con:
        con.execute(CREATE_FARES, [str(sum_sign_weights(tmp_path / "fares.safetensors"))])
        con.execute(TRIPS)
    return path


def predict_high(path) -> tuple[int, int, offline.PredictionStats]:
    with engine.connect(path, autocommit=True, progress="off") as con:
        high = con.execute("SELECT count(*) FROM predict(fares, trips) WHERE predicted_class_id = 1").fetchone()[0]
        truth = con.execute(f"SELECT count(*) FROM trips WHERE {TRUTH}").fetchone()[0]
        return high, truth, prediction_statistics(con.session)[-1]


def test_the_thread_trial_runs_on_the_query_and_the_process_keeps_its_threads(trips):
    threads = torch.get_num_threads()
    for _ in range(3):  # the batch size search, then the trial (it may span statements), then its choice
        high, truth, stats = predict_high(trips)
        assert high == truth and stats.rows == 400_000
        assert torch.get_num_threads() == threads  # put back after each statement
    if threads > 1:
        assert list(offline.FASTEST_THREADS.values()) in ([1], [threads])
        assert stats.threads == offline.FASTEST_THREADS[next(iter(offline.FASTEST_THREADS))]
    else:
        assert stats.threads == 1 and not offline.THREAD_TRIALS


def test_one_thread_when_chosen_gives_the_same_predictions_and_an_error_restores_the_count(trips):
    threads = torch.get_num_threads()
    while not offline.FASTEST:  # the batch size search, over as many statements as it takes
        predict_high(trips)
    key = next(iter(offline.FASTEST))
    offline.FASTEST_THREADS[key] = 1  # as a trial that found one thread faster leaves it
    high, truth, stats = predict_high(trips)
    assert high == truth and stats.threads == 1 and not stats.searched
    assert torch.get_num_threads() == threads
    with engine.connect(trips, autocommit=True, progress="off") as con:  # an error midway: the count is put back
        with pytest.raises(engine.Error):
            con.execute("SELECT * FROM predict(fares, (SELECT id, a, b, CASE WHEN id = 300000 THEN error('boom') "
                        "ELSE c END AS c FROM trips))")
    assert torch.get_num_threads() == threads


def test_numeric_inputs_decode_column_by_column_with_nulls_and_any_number_type():
    batch = pa.record_batch({"a": pa.array([1.5, None, 3.0, 4.0]), "b": pa.array([1, 2, 3, None], pa.int16()),
                             "c": pa.array([0.25, 0.5, 0.75, 1.0], pa.float32()),
                             "d": pa.array([True, False, True, True])})
    reader = input_reader(batch.schema, ModelInput("numeric", columns=("c", "a", "b", "d")), None, np.float32)
    [(rows, values)] = reader.decode(batch)
    assert rows.tolist() == [0, 2]
    assert values.dtype == np.float32 and values.flags.f_contiguous and values.shape == (2, 4)
    np.testing.assert_array_equal(values, [[0.25, 1.5, 1.0, 1.0], [0.75, 3.0, 3.0, 1.0]])
    assert np.shares_memory(values[:1], values)  # a slice of rows stays a view


def test_predictors_are_kept_per_process_by_version_weights_and_architecture(tmp_path):
    from engine.inference.model_catalog import current_version
    from tests.serving_models import SumSignNet
    from udfs.architectures import architecture

    weights = str(sum_sign_weights(tmp_path / "fares.safetensors"))
    loaded = []
    for _ in range(2):
        with engine.connect(tmp_path / "kept.duckdb", autocommit=True, progress="off") as con:
            if not loaded:
                con.execute(CREATE_FARES, [weights])
            loaded.append(Predictor.load(con.session, current_version(con.session, "fares")))
    assert loaded[0] is loaded[1]  # a connection per query builds the network once
    with engine.connect(tmp_path / "kept.duckdb", autocommit=True, progress="off") as con:
        con.execute(CREATE_FARES, [str(sum_sign_weights(tmp_path / "scaled.safetensors", scale=2.0))])
        newer = Predictor.load(con.session, current_version(con.session, "fares"))
        assert newer is not loaded[0] and newer.version.version == 2
        try:  # the architecture declared again: its new builder, not the kept network
            architecture("tiny_sum_sign", num_classes=2, replace=True)(lambda num_classes=2: SumSignNet(num_classes))
            again = Predictor.load(con.session, current_version(con.session, "fares"))
            assert again is not newer
        finally:
            import importlib

            import tests.serving_models

            importlib.reload(tests.serving_models)


def test_the_batch_size_search_ends_when_no_batch_can_fill_its_size(trips):
    """A fifth of the inputs NULL: no 16,384-row Arrow batch holds 16,384 inputs, so a call at
    that size is always short. The search still ends (a short call counts at its own time per
    row), and the thread trial after it."""
    with engine.connect(trips, autocommit=True, progress="off") as con:
        con.execute("CREATE TABLE holes AS SELECT id, CASE WHEN id % 5 = 0 THEN NULL ELSE a END AS a, b, c FROM trips")
    searched = []
    for _ in range(6):
        with engine.connect(trips, autocommit=True, progress="off") as con:
            counted = con.execute("SELECT count(*), count(predicted_label) FROM predict(fares, holes)").fetchone()
            assert counted == (400_000, 320_000)
            searched.append(prediction_statistics(con.session)[-1].searched)
    assert offline.FASTEST and searched[-1] is False
    if torch.get_num_threads() > 1:
        assert offline.FASTEST_THREADS  # the trial ran too
