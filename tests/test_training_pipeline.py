"""GPipe: micro-batched, re-materialized, pipelined steps compute the gradients of plain
training (float tolerance: 1e-6 absolute on one step), and the bubble is measured on the
timeline of the measured tasks against (K-1)/(M+K-1)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import engine
from engine.training.api import train
from engine.training.architectures import build_network
from engine.training.objective import row_losses
from engine.training.options import parse_options
from engine.training.pipeline import Pipeline, balance, expected_bubble, pipeline_makespan
from tests.training_data import create_table, image_table, one_thread  # noqa: F401

GRAD_TOLERANCE = 1e-6


def plain_gradients(network, x, y, rows):
    network.zero_grad()
    (row_losses(network(x), y, None).sum() / rows).backward()
    return {n: p.grad.clone() for n, p in network.named_parameters()}


@pytest.mark.parametrize("architecture, shape, stages, micro", [
    ("mlp", (6,), 2, 4), ("mlp", (6,), 3, 5), ("small_cnn", (3, 16, 16), 2, 3), ("small_cnn", (3, 16, 16), 4, 1),
    ("tiny_cnn", (3, 32, 32), 3, 4),
])
def test_pipelined_gradients_equal_plain_gradients(architecture, shape, stages, micro):
    torch.manual_seed(0)
    network = build_network(architecture, num_classes=4, in_features=shape[0] if len(shape) == 1 else None)
    x, y = torch.randn(11, *shape), torch.randint(0, 4, (11,))  # 11 rows: micro-batches of unequal size
    expected = plain_gradients(network, x, y, 11)
    network.zero_grad(set_to_none=True)
    pipeline = Pipeline(network, stages, micro, sample_shape=shape)
    pipeline.step(x, y, None, rows=11)
    for name, p in network.named_parameters():
        assert torch.allclose(p.grad, expected[name], rtol=0, atol=GRAD_TOLERANCE), name
    assert len(pipeline.stages) == stages and pipeline.timelines[-1].micro_batches == min(micro, 11)


def test_equal_tasks_give_gpipes_bubble_exactly():
    for stages in (1, 2, 3, 4, 8):
        for micro in (1, 2, 4, 8, 32):
            forward, backward = np.full((stages, micro), 1.0), np.full((stages, micro), 2.0)
            makespan = pipeline_makespan(forward, backward)
            measured = 1 - (forward.sum() + backward.sum()) / (stages * makespan)
            assert measured == pytest.approx(expected_bubble(stages, micro))


def test_a_slow_stage_makes_a_larger_bubble():
    forward = np.array([[1.0] * 4, [3.0] * 4])
    makespan = pipeline_makespan(forward, 2 * forward)
    assert 1 - 3 * forward.sum() / (2 * makespan) > expected_bubble(2, 4)


def test_stages_are_balanced_by_cost():
    assert balance([1, 1, 1, 1, 10, 1], 2) == [(0, 4), (4, 6)]
    assert balance([5, 5, 5, 5], 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_pipelined_training_keeps_plain_trainings_weights(con):
    duck = con.duckdb_connection
    create_table(duck, "images", image_table(160, size=12))
    base = {"architecture": "small_cnn", "epochs": 2, "batch_size": 16, "lr": 0.05}
    plain = train(duck, "SELECT * FROM images", parse_options(base))
    piped = train(duck, "SELECT * FROM images", parse_options({**base, "pipeline_stages": 3, "micro_batches": 4}))
    assert piped.strategy == "pipeline" and piped.schedule["expected_bubble"] == pytest.approx(expected_bubble(3, 4))
    assert 0 < piped.schedule["bubble"] < 1 and piped.schedule["pipeline_stages"] == 3
    for key, value in plain.best_result.state.items():
        assert torch.allclose(value, piped.best_result.state[key], rtol=0, atol=1e-4), key
    with pytest.raises(engine.DataError, match="pipeline_stages = 20, but the network has only 13 layers"):
        train(duck, "SELECT * FROM images", parse_options({**base, "pipeline_stages": 20, "epochs": 1}))
