"""Model hopping (Cerebro) and data-parallel training (DDP) in worker processes: the hopper's
models equal sequential training over the same partition order bit for bit (same thread
count), with successive halving stopping the same models; two data-parallel workers give
one worker's weights within 1e-5."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

import engine
from engine.training.api import train
from engine.training.hopper import HopperSchedule
from engine.training.options import parse_options
from engine.training.processes import threads_per_worker
from tests.training_data import create_table, points_table

DDP_TOLERANCE = 1e-5


@pytest.fixture
def duck(con):
    connection = con.duckdb_connection
    create_table(connection, "points", points_table(500))
    return connection


def test_the_hopper_equals_sequential_training_and_halves_the_same_way(duck):
    grid = {"architecture": "mlp", "hidden": [32], "epochs": 2, "batch_size": 16, "lr": [0.2, 0.05],
            "optimizer": ["sgd", "adam"], "successive_halving": True, "partitions": 4}
    hopped = train(duck, "SELECT * FROM points", parse_options({**grid, "workers": 2}))
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_worker(2))  # what each worker ran with
    try:
        sequential = train(duck, "SELECT * FROM points", parse_options({**grid, "workers": 1}))
    finally:
        torch.set_num_threads(threads)
    assert hopped.strategy == "model hopping" and sequential.strategy == "plain"
    assert [r.stopped_early for r in hopped.results] == [r.stopped_early for r in sequential.results]
    assert sum(r.stopped_early for r in hopped.results) == 2 and hopped.best == sequential.best  # rungs {1: 2}
    for a, b in zip(sequential.results, hopped.results):
        assert all(torch.equal(v, b.state[k]) for k, v in a.state.items())
        assert [m.train_loss for m in a.history] == [m.train_loss for m in b.history]
        assert [m.val_accuracy for m in a.history] == [m.val_accuracy for m in b.history]
    schedule = hopped.schedule
    assert schedule["workers"] == 2 and sum(schedule["visits"]) == 4 * 4 + 2 * 4  # 4 models x epoch 1, the best 2 x epoch 2
    assert all(h > 0 for h in schedule["hops"]) and sum(schedule["data_bytes_read"]) > 0


def test_the_models_left_by_halving_get_the_idle_workers_cores_and_the_same_result(duck):
    import os

    grid = {"architecture": "mlp", "hidden": [32], "epochs": 3, "batch_size": 16, "lr": [0.2, 0.05, 0.01, 0.002],
            "optimizer": "adam", "successive_halving": True, "partitions": 4}  # rungs {1: 2, 2: 1}: epoch 3 alone
    hopped = train(duck, "SELECT * FROM points", parse_options({**grid, "workers": 2}))
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_worker(2))
    try:
        sequential = train(duck, "SELECT * FROM points", parse_options({**grid, "workers": 1}))
    finally:
        torch.set_num_threads(threads)
    assert [r.stopped_early for r in hopped.results] == [r.stopped_early for r in sequential.results]
    assert sum(r.stopped_early for r in hopped.results) == 3 and hopped.best == sequential.best
    winner, alone = sequential.results[sequential.best], hopped.results[hopped.best]
    for key, value in winner.state.items():  # its last epoch ran on more threads: equal within float tolerance
        assert torch.allclose(value, alone.state[key], rtol=0, atol=DDP_TOLERANCE), key
    # the lone model's 4 visits of epoch 3 got the idle worker's core (where there is one)
    assert hopped.schedule["wide_visits"] == (4 if (os.cpu_count() or 1) >= 2 else 0)


def test_the_hopper_schedule_keeps_cerebros_rules():
    grid = parse_options({"architecture": "mlp", "lr": [0.1, 0.2, 0.3, 0.4, 0.5], "epochs": 3}).configurations
    schedule = HopperSchedule(grid, partitions=4, workers=2, survivors={})
    visits, running = [], {}
    while not schedule.finished():
        for worker in (0, 1):
            if worker not in running:
                visit = schedule.next_for(worker)
                if visit is not None:
                    assert schedule.owner(visit.partition) == worker  # data stays where it is
                    assert visit.model not in [v.model for v in running.values()]  # one place at a time
                    running[worker] = visit
        worker = min(running)
        schedule.complete(running.pop(worker))
        visits.append(worker)
    done = Counter((v.model, v.epoch, v.partition) for plan in schedule.plans.values() for v in plan)
    assert set(done.values()) == {1} and len(done) == 5 * 3 * 4  # every model, every epoch, every partition once
    assert set(visits) == {0, 1}


def test_two_data_parallel_workers_give_one_workers_weights(duck):
    base = {"architecture": "mlp", "hidden": [32, 16], "epochs": 2, "batch_size": 15, "lr": 0.1}  # odd batches split unevenly
    one = train(duck, "SELECT * FROM points", parse_options(base))
    two = train(duck, "SELECT * FROM points", parse_options({**base, "workers": 2}))
    assert two.strategy == "data parallel" and len(two.best_result.history) == 2
    for key, value in one.best_result.state.items():
        assert torch.allclose(value, two.best_result.state[key], rtol=0, atol=DDP_TOLERANCE), key
    for a, b in zip(one.best_result.history, two.best_result.history):
        assert a.rows == b.rows and a.train_loss == pytest.approx(b.train_loss, abs=1e-5)
        assert a.val_accuracy == b.val_accuracy


def test_a_workers_error_comes_back_as_its_own_class(duck):
    record_parent = train(duck, "SELECT a, b, label FROM points", parse_options({"architecture": "mlp", "epochs": 1}))
    from engine.training.lineage import record

    record(duck, "parent", record_parent)
    with pytest.raises(engine.ProgrammingError, match="has no submodule 'nope'"):
        train(duck, "SELECT a, b, label FROM points",
              parse_options({"from_model": "parent", "freeze": "nope", "workers": 2, "epochs": 1}))
