"""Hydra's spilling: a model larger than the device-memory budget trains shard by shard to the
same weights as plain training (bit for bit), never holding more than the budget of
parameters, gradients and optimizer state (measured), and a grid's models alternate shards."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import engine
from engine.training.api import train
from engine.training.options import parse_options
from engine.training.trainer import interleave
from tests.training_data import create_table, image_table, one_thread, points_table  # noqa: F401


@pytest.fixture
def duck(con):
    connection = con.duckdb_connection
    create_table(connection, "points", points_table(400))
    create_table(connection, "images", image_table(120, size=12))
    return connection


WIDE = {"architecture": "mlp", "hidden": [64] * 5, "epochs": 2, "batch_size": 16}
BUDGET = 70_000  # bytes: a third to a quarter of the parameters, gradients and optimizer state


def state_bytes(outcome):
    return sum(v.numel() * 4 for v in outcome.best_result.state.values())


@pytest.mark.parametrize("optimizer", [
    {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.01},
    {"optimizer": "adam", "weight_decay": 0.001},
])
def test_spilled_training_gives_plain_trainings_weights_within_the_budget(duck, optimizer):
    plain = train(duck, "SELECT * FROM points", parse_options({**WIDE, **optimizer}))
    budget = BUDGET
    spilled = train(duck, "SELECT * FROM points", parse_options({**WIDE, **optimizer, "device_memory": budget}))
    assert spilled.strategy == "spilling" and spilled.schedule["shards"] >= 3
    slots = 3 if optimizer["optimizer"] == "sgd" else 4
    assert state_bytes(plain) * slots > 2.5 * budget
    assert 0 < spilled.schedule["peak_resident_bytes"] <= budget
    for key, value in plain.best_result.state.items():
        assert torch.equal(value, spilled.best_result.state[key]), key
    assert [m.train_loss for m in plain.best_result.history] == [m.train_loss for m in spilled.best_result.history]


def test_a_spilled_cnn_matches_too(duck):
    base = {"architecture": "small_cnn", "epochs": 1, "batch_size": 16, "optimizer": "adam", "lr": 0.01}
    plain = train(duck, "SELECT * FROM images", parse_options(base))
    spilled = train(duck, "SELECT * FROM images", parse_options({**base, "device_memory": "3200KiB"}))
    assert spilled.schedule["shards"] == 2 and spilled.schedule["peak_resident_bytes"] <= 3200 * 1024
    assert all(torch.equal(v, spilled.best_result.state[k]) for k, v in plain.best_result.state.items())


class StoreReads(TorchDispatchMode):
    """Counts the operators that read a spilled tensor other than by copying it."""

    def __init__(self, store):
        super().__init__()
        self.store, self.offending, self.copies = store, [], 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        if any(t.numel() and self.store.contains(t) for t in tensors):
            if func is torch.ops.aten.copy_.default:
                self.copies += 1
            elif func not in (torch.ops.aten.detach.default, torch.ops.aten.alias.default):
                self.offending.append(str(func))
        return func(*args, **(kwargs or {}))


def test_computation_reads_only_the_arena_never_the_spill_file(duck):
    from engine.training.batches import PartitionReader, to_tensors
    from engine.training.grid import Setup
    from engine.training.materialize import materialize
    from engine.training.source import resolve_data, settle, source_relation
    from engine.training.spilling import DeviceArena, SpilledRun
    from engine.training.trainer import drain

    options = parse_options({**WIDE, "optimizer": "adam", "device_memory": BUDGET})
    relation = source_relation(duck, "SELECT * FROM points")
    settle(duck)
    folder = os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "spill_probe")
    data = materialize(relation, resolve_data(relation, options), options, folder)
    arena = DeviceArena(BUDGET, torch.device("cpu"))
    run = SpilledRun(options.configurations[0], Setup.of(data, options), arena)
    with PartitionReader(data, data.partitions[0]) as reader:
        batch = to_tensors(reader.take(np.arange(16)), data)
    watcher = StoreReads(run.store)
    with watcher:
        drain(run.step(batch.x, batch.target, batch.weight, 16))
    run.close()
    assert watcher.offending == [] and watcher.copies > 0 and os.path.exists(run.store.path) is False
    assert 0 < arena.peak_bytes <= BUDGET


def test_an_impossible_budget_names_the_largest_layer(duck):
    with pytest.raises(engine.DataError, match=r"device_memory = 10.0 KiB is smaller than the largest layer, features.2 \(Linear\), "
                                               r"which needs 65.0 KiB for its parameters, gradients and optimizer state"):
        train(duck, "SELECT * FROM points", parse_options({**WIDE, "optimizer": "adam", "device_memory": "10KiB"}))


def test_a_grid_alternates_shards_and_each_model_keeps_its_weights(duck):
    grid = {**WIDE, "lr": [0.05, 0.01], "optimizer": ["sgd", "adam"], "workers": 1, "epochs": 1}
    plain = train(duck, "SELECT * FROM points", parse_options(grid))
    spilled = train(duck, "SELECT * FROM points", parse_options({**grid, "device_memory": BUDGET}))
    assert spilled.best == plain.best and spilled.schedule["peak_resident_bytes"] <= BUDGET
    for a, b in zip(plain.results, spilled.results):
        assert all(torch.equal(v, b.state[k]) for k, v in a.state.items())


def test_interleave_runs_generators_round_robin():
    trace = []

    class Run:
        def __init__(self, index):
            self.configuration = type("C", (), {"index": index})

        def with_own_rng(self):
            return torch.random.fork_rng(devices=[])

    def steps(name, count):
        for i in range(count):
            trace.append((name, i))
            yield
        return name

    results = interleave([(Run(0), steps("a", 3)), (Run(1), steps("b", 2))])
    assert results == ["a", "b"] and trace == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]
