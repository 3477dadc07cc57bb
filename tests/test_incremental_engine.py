"""The incremental engine end to end, exact mode: results equal full inference on the frame it
computed on, on synthetic frames with known changed regions and on real frames of vtest.avi."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

import engine
from engine.errors import DataError, ProgrammingError
from engine.inference.incremental import FrameStats, IncrementalConfig, IncrementalEngine
from tests.conftest import data_file, imagenet_mobilenet
from tests.test_incremental_layers import randomize_batch_norms
from udfs.architectures import IMAGENET_MEAN, IMAGENET_STD, build

MEAN, STD = IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(scope="module")
def mobilenet() -> nn.Module:
    return imagenet_mobilenet()


@pytest.fixture(scope="module")
def vtest_frames() -> np.ndarray:
    """12 real frames of the surveillance clip at 224x224, through LOAD VIDEO."""
    con = engine.connect(progress="off", autocommit=True)
    try:
        con.execute(f"LOAD VIDEO '{data_file('vtest.avi')}' INTO clip WITH (width = 224, height = 224, limit = 12)")
        return engine.frames_to_numpy(con, "clip")
    finally:
        con.close()


def full_logits(model: nn.Module, frames: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.inference_mode():
        return model(x)


def synthetic_clip(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, list[list[tuple[int, int, int, int]]]]:
    """A still background and frames that change known 8x8-aligned regions (borders, several per frame)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    changes = [
        [],                                                               # frame 0: the base, full
        [(0, 0, 8, 16)],                                                  # top-left border
        [(height - height % 8 or height - 8, width - width % 8 or width - 8, 8, 8)],  # bottom-right partial block
        [(16, 24, 8, 8), (40, 0, 16, 8), (0, width - width % 8 - 8, 8, 8)],  # several patches
        [],                                                               # unchanged: skipped
    ]
    frames, current = [], base.copy()
    for regions in changes:
        for y, x, h, w in regions:
            current[y:y + h, x:x + w] = rng.integers(0, 256, (min(h, height - y), min(w, width - x), 3))
        frames.append(current.copy())
    patches = [[(y, x, min(h, height - y), min(w, width - x)) for y, x, h, w in regions] for regions in changes]
    return np.stack(frames), patches


@pytest.mark.parametrize("architecture,height,width", [("mobilenet_v2", 225, 223), ("resnet_small", 70, 61),
                                                       ("plain_cnn", 45, 37)])
def test_exact_mode_equals_full_inference_on_synthetic_changes(architecture: str, height: int, width: int,
                                                               mobilenet: nn.Module) -> None:
    model = mobilenet if architecture == "mobilenet_v2" else randomize_batch_norms(build(architecture))
    frames, patches = synthetic_clip(height, width)
    eng = IncrementalEngine(model, MEAN, STD, "exact", IncrementalConfig(rebase_ratio=1.0))
    logits, features, stats = eng.run(frames, list(range(len(frames))))
    assert [s.kind for s in stats] == ["full", "incremental", "incremental", "incremental", "skipped"]
    for stat, expected in zip(stats[1:4], patches[1:4]):
        assert sorted(stat.patches) == sorted(expected)
        assert 0 < stat.macs < stat.macs_full
    # every change exceeds the threshold, so the frames computed on are the true frames
    assert (eng.computed_frames == frames).all()
    assert (logits - full_logits(model, frames)).abs().max() < 1e-4
    with torch.inference_mode():
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)
        x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        assert (features - model.forward_features(x)).abs().max() < 1e-4


def test_exact_mode_on_real_frames(mobilenet: nn.Module, vtest_frames: np.ndarray) -> None:
    eng = IncrementalEngine(mobilenet, MEAN, STD, "exact", IncrementalConfig(batch_frames=5))
    logits, _, stats = eng.run(vtest_frames, list(range(len(vtest_frames))))
    kinds = [s.kind for s in stats]
    assert kinds[0] == "full" and kinds.count("incremental") >= 8
    assert (logits - full_logits(mobilenet, eng.computed_frames)).abs().max() < 1e-4
    # the computed frames differ from the true ones only by sub-threshold pixels
    assert np.abs(eng.computed_frames.astype(int) - vtest_frames.astype(int)).max() <= 8
    saving = 1 - sum(s.macs for s in stats) / sum(s.macs_full for s in stats)
    assert saving > 0.1


def test_one_scan_in_many_calls_and_persisted_state(mobilenet: nn.Module, vtest_frames: np.ndarray) -> None:
    whole = IncrementalEngine(mobilenet, MEAN, STD, "exact")
    expected, _, expected_stats = whole.run(vtest_frames, list(range(12)))
    first = IncrementalEngine(mobilenet, MEAN, STD, "exact")
    part1, _, _ = first.run(vtest_frames[:5], list(range(5)))
    state = load_safetensors(save_safetensors(first.state_dict()))   # as engine A stores it in DuckDB
    second = IncrementalEngine(mobilenet, MEAN, STD, "exact")
    second.load_state_dict(state)
    part2, _, stats2 = second.run(vtest_frames[5:], list(range(5, 12)))
    assert stats2[0].kind != "full"                                  # continues from the base frame
    assert [s.kind for s in stats2] == [s.kind for s in expected_stats[5:]]
    assert (torch.cat([part1, part2]) - expected).abs().max() < 1e-4


def test_plan_predicts_run_without_changing_state(mobilenet: nn.Module, vtest_frames: np.ndarray) -> None:
    eng = IncrementalEngine(mobilenet, MEAN, STD, "exact")
    eng.run(vtest_frames[:3], [0, 1, 2])
    before = eng.state_dict()
    planned = eng.plan(vtest_frames[3:], list(range(3, 12)))
    assert eng.plan(vtest_frames[3:], list(range(3, 12))) == planned
    assert eng.plan(np.zeros((2, 64, 64, 3), np.uint8), [0, 1])[0].kind == "full"   # another size: no base
    torch.testing.assert_close(eng.state_dict(), before, rtol=0, atol=0, equal_nan=True)
    _, _, stats = eng.run(vtest_frames[3:], list(range(3, 12)))
    assert [(s.frame_id, s.kind, s.patches) for s in stats] == [(s.frame_id, s.kind, s.patches) for s in planned]
    assert [s.macs for s in stats] == [s.macs for s in planned]
    fresh = IncrementalEngine(mobilenet, MEAN, STD, "exact").plan(vtest_frames[:2], [0, 1])
    assert fresh[0] == FrameStats(0, "full", [(0, 0, 224, 224)], fresh[0].macs_full, fresh[0].macs_full)


def test_batching_does_not_change_exact_results(vtest_frames: np.ndarray) -> None:
    model = randomize_batch_norms(build("resnet_small", num_classes=7))
    frames = vtest_frames[:, :96, :80].copy()
    results = []
    for batch_frames in (1, 4, 16):
        eng = IncrementalEngine(model, MEAN, STD, "exact", IncrementalConfig(batch_frames=batch_frames))
        logits, _, stats = eng.run(frames, list(range(12)))
        results.append(logits)
        assert (logits - full_logits(model, eng.computed_frames)).abs().max() < 1e-4
    assert (results[0] - results[2]).abs().max() < 1e-4


def test_rebase_when_the_change_is_large(mobilenet: nn.Module, vtest_frames: np.ndarray) -> None:
    frames = vtest_frames[:4].copy()
    frames[2] = 255 - frames[2]                      # everything changes: full inference is cheaper
    eng = IncrementalEngine(mobilenet, MEAN, STD, "exact")
    logits, _, stats = eng.run(frames, [0, 1, 2, 3])
    assert [s.kind for s in stats][2] == "full"
    assert stats[2].patches == [(0, 0, 224, 224)]
    assert (logits - full_logits(mobilenet, eng.computed_frames)).abs().max() < 1e-4


def test_bad_input_is_reported(mobilenet: nn.Module) -> None:
    with pytest.raises(ProgrammingError, match="mode"):
        IncrementalEngine(mobilenet, MEAN, STD, "fast")
    eng = IncrementalEngine(mobilenet, MEAN, STD, "exact")
    with pytest.raises(DataError, match="uint8"):
        eng.run(np.zeros((2, 32, 32, 3), np.float32), [0, 1])
    with pytest.raises(DataError, match="one frame id per frame"):
        eng.run(np.zeros((2, 32, 32, 3), np.uint8), [0])
    with pytest.raises(DataError, match="block"):
        IncrementalConfig(block=0)
    other = IncrementalEngine(build("plain_cnn"), MEAN, STD, "exact")
    other.run(np.zeros((1, 32, 32, 3), np.uint8), [0])
    with pytest.raises(DataError, match="does not match"):
        eng.load_state_dict(other.state_dict())


def test_state_dict_is_plain_tensors(mobilenet: nn.Module, vtest_frames: np.ndarray) -> None:
    eng = IncrementalEngine(mobilenet, MEAN, STD, "exact")
    assert eng.state_dict() == {}
    eng.run(vtest_frames[:2], [0, 1])
    state = eng.state_dict()
    assert all(isinstance(v, torch.Tensor) and v.is_contiguous() for v in state.values())
    buffer = io.BytesIO(save_safetensors(state))
    assert len(buffer.getvalue()) > 0
