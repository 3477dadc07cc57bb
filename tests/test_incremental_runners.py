"""The runner interface the inference scan calls: FullRunner and IncrementalRunner, their plans
against their runs, segment starts, models the incremental engine does not support (run in
full, with the reason), and when engine state persists between queries."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.inference.incremental import IncrementalConfig
from engine.inference.runners import FullRunner, IncrementalRunner
from engine.video import decode_frames
from tests.conftest import data_file, imagenet_mobilenet
from tests.efficientnet_lite import EfficientNetLite0, random_weights
from udfs.architectures import IMAGENET_MEAN, IMAGENET_STD

MEAN, STD = IMAGENET_MEAN, IMAGENET_STD


class PooledEfficientNetLite0(EfficientNetLite0):
    """The third-party model with the pooled ``forward_features`` model functions expect."""

    def forward_features(self, x):  # type: ignore[no-untyped-def]
        return self.global_pool(super().forward_features(x)).flatten(1)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.classifier(self.forward_features(x))


@pytest.fixture(scope="module")
def mobilenet() -> nn.Module:
    return imagenet_mobilenet()


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Real frames of vtest.avi at 224x224 whose changes stay in one rectangle over frame 0's background
    (exact mode has incremental work), and two repeats (skipped)."""
    real = np.stack([f for _, f in decode_frames(str(data_file("vtest.avi")), width=224, height=224, limit=10)])
    out = np.repeat(real[:1], 10, axis=0)
    out[:, 104:128, 48:176] = real[:, 104:128, 48:176]
    out[4], out[8] = out[3], out[7]
    return out


def plain_logits(model: nn.Module, frames: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.inference_mode():
        return model(x)


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_plan_and_run_agree_frame_by_frame(mobilenet: nn.Module, frames: np.ndarray, mode: str) -> None:
    ids = np.arange(100, 110)
    starts = np.zeros(10, bool)
    starts[6] = True
    # at 224x224 one changed block reaches half of MobileNetV2's multiply-adds: allow up to 90%
    runner = IncrementalRunner(mobilenet, MEAN, STD, mode, IncrementalConfig(fallback_ratio=0.9))
    planned = runner.plan(ids, frames, starts)
    results, decisions = runner.run(ids, frames, starts)
    assert decisions == planned if mode == "exact" else \
        [(d.frame_id, d.kind, d.reason, d.patches) for d in decisions] == \
        [(d.frame_id, d.kind, d.reason, d.patches) for d in planned]
    assert [d.kind for d in decisions][:5] == ["full", "incremental", "incremental", "incremental", "skipped"]
    assert decisions[6].reason == "segment start" and decisions[0].reason == "first frame"
    assert results.frame_ids.tolist() == ids.tolist() and results.kinds.tolist() == [d.kind for d in decisions]
    assert (results.macs == [d.macs for d in decisions]).all()
    if mode == "exact":
        assert np.abs(results.logits - plain_logits(mobilenet, frames).numpy()).max() < 1e-4


def test_full_runner_plans_what_it_runs(mobilenet: nn.Module, frames: np.ndarray) -> None:
    runner = FullRunner(mobilenet, MEAN, STD)
    results, decisions = runner.run(np.arange(4), frames[:4])
    assert decisions == runner.plan(np.arange(4), 224, 224)
    assert {(d.kind, d.reason) for d in decisions} == {("full", "")}
    assert np.abs(results.logits - plain_logits(mobilenet, frames[:4]).numpy()).max() < 1e-4


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_a_model_the_engine_does_not_support_runs_in_full(frames: np.ndarray, mode: str) -> None:
    model = random_weights(PooledEfficientNetLite0(num_classes=10))
    runner = IncrementalRunner(model, MEAN, STD, mode, IncrementalConfig())
    assert "ZeroPad2d" in runner.full_reason(224, 224)
    planned = runner.plan(np.arange(5), frames[:5])
    results, decisions = runner.run(np.arange(5), frames[:5])
    assert decisions == planned
    assert {(d.kind, d.reason) for d in decisions} == {("full", "unsupported model")}
    expected, _ = FullRunner(model, MEAN, STD).run(np.arange(5), frames[:5])
    np.testing.assert_array_equal(results.logits, expected.logits)
    assert np.abs(results.logits - plain_logits(model, frames[:5]).numpy()).max() < 1e-4


def test_engine_state_persists_only_where_it_cannot_change_answers(mobilenet: nn.Module, frames: np.ndarray) -> None:
    ids = np.arange(10)
    default = IncrementalRunner(mobilenet, MEAN, STD, "exact", IncrementalConfig())
    default.run(ids[:3], frames[:3])
    assert not default.persists and default.state_dict() == {}
    persisting = IncrementalConfig(persist_state=True, fallback_ratio=0.9)
    first = IncrementalRunner(mobilenet, MEAN, STD, "exact", persisting)
    whole, _ = IncrementalRunner(mobilenet, MEAN, STD, "exact", persisting).run(ids, frames)
    first.run(ids[:3], frames[:3])
    state = first.state_dict()
    assert first.persists and state
    second = IncrementalRunner(mobilenet, MEAN, STD, "exact", persisting, state)
    results, decisions = second.run(ids[3:], frames[3:])
    assert decisions[0].kind == "incremental"                 # continued from frame 2
    assert np.abs(results.logits - whole.logits[3:]).max() < 1e-4
    fresh, _ = IncrementalRunner(mobilenet, MEAN, STD, "exact", persisting).run(ids[3:], frames[3:])
    assert np.abs(fresh.logits - results.logits).max() < 1e-4   # the same answers without the state
    approximate = IncrementalRunner(mobilenet, MEAN, STD, "approximate", persisting, state)
    assert not approximate.persists and approximate.run(ids[3:4], frames[3:4])[1][0].reason == "first frame"
    stale = IncrementalRunner(mobilenet, MEAN, STD, "exact", persisting, {"base.composite": torch.zeros(2)})
    assert stale.run(ids[:1], frames[:1])[1][0].reason == "first frame"    # another version's state: ignored
