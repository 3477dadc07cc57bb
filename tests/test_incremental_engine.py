"""The incremental engine end to end, exact mode: results equal full inference (logits within
1e-4) with the defaults, on synthetic frames with known changed regions and on real frames of
vtest.avi and bikes.mp4; plan and run take the same decisions; segments are independent."""
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
from engine.video import decode_frames
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


def decoded(name: str, limit: int, size: tuple[int, int] | None = (224, 224), start: int = 0) -> np.ndarray:
    """Frames ``start`` .. ``start + limit`` of a clip in data/, decoded with PyAV (native size with size=None)."""
    width, height = (size[1], size[0]) if size else (None, None)
    frames = [f for _, f in decode_frames(str(data_file(name)), width=width, height=height, limit=start + limit)]
    return np.stack(frames[start:])


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
    eng = IncrementalEngine(model, MEAN, STD, "exact", IncrementalConfig(fallback_ratio=1.0))
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


@pytest.mark.parametrize("clip,size,limit", [("vtest.avi", (224, 224), 12), ("bikes.mp4", (224, 224), 12),
                                               ("vtest.avi", None, 3)])
def test_exact_mode_is_exact_on_real_video_with_the_defaults(mobilenet: nn.Module, clip: str,
                                                             size: tuple[int, int] | None, limit: int) -> None:
    frames = decoded(clip, limit, size)
    eng = IncrementalEngine(mobilenet, MEAN, STD, "exact")
    logits, _, stats = eng.run(frames, list(range(limit)))
    assert (eng.computed_frames == frames).all()          # no pixel change is ignored
    assert (logits - full_logits(mobilenet, frames)).abs().max() < 1e-4


def test_the_incremental_path_is_exact_on_real_video(mobilenet: nn.Module, vtest_frames: np.ndarray) -> None:
    # never fall back: every frame after the first is recomputed from the one before it
    eng = IncrementalEngine(mobilenet, MEAN, STD, "exact",
                            IncrementalConfig(fallback_ratio=10.0, batch_frames=5, guard=False))
    logits, _, stats = eng.run(vtest_frames, list(range(len(vtest_frames))))
    kinds = [s.kind for s in stats]
    assert kinds[0] == "full" and kinds.count("incremental") >= 9
    assert (logits - full_logits(mobilenet, vtest_frames)).abs().max() < 1e-4
    assert all(0 < s.macs <= s.macs_full for s in stats)


def test_one_scan_in_many_calls_and_persisted_state(mobilenet: nn.Module, vtest_frames: np.ndarray) -> None:
    config = IncrementalConfig(fallback_ratio=10.0)
    whole = IncrementalEngine(mobilenet, MEAN, STD, "exact", config)
    expected, _, expected_stats = whole.run(vtest_frames, list(range(12)))
    first = IncrementalEngine(mobilenet, MEAN, STD, "exact", config)
    part1, _, _ = first.run(vtest_frames[:5], list(range(5)))
    state = load_safetensors(save_safetensors(first.state_dict()))   # as the scan stores it in DuckDB
    second = IncrementalEngine(mobilenet, MEAN, STD, "exact", config)
    second.load_state_dict(state)
    part2, _, stats2 = second.run(vtest_frames[5:], list(range(5, 12)))
    assert stats2[0].kind != "full"                                  # continues from the reference frame
    assert [(s.kind, s.patches, s.macs) for s in stats2] == [(s.kind, s.patches, s.macs) for s in expected_stats[5:]]
    assert (torch.cat([part1, part2]) - expected).abs().max() < 1e-4


def localized(frames: np.ndarray) -> np.ndarray:
    """Real frames whose changes stay in one band (rows 80-128 of each frame over frame 0's
    background; every fourth frame repeats the one before): exact mode has incremental work."""
    out = np.repeat(frames[:1], len(frames), axis=0)
    out[:, 80:128] = frames[:, 80:128]
    out[3::4] = out[2::4][:len(out[3::4])]
    return out


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_plan_takes_the_decisions_run_takes(mobilenet: nn.Module, mode: str) -> None:
    frames = decoded("vtest.avi", 20)
    if mode == "exact":
        frames = localized(frames)
    starts = np.zeros(20, bool)
    starts[13] = True
    config = IncrementalConfig(fallback_ratio=0.9)          # a mix of incremental frames and fallbacks
    eng = IncrementalEngine(mobilenet, MEAN, STD, mode, config)
    eng.run(frames[:3], [0, 1, 2])
    before = eng.state_dict()
    planned = eng.plan(frames[3:], list(range(3, 20)), starts[3:])
    assert eng.plan(frames[3:], list(range(3, 20)), starts[3:]) == planned
    torch.testing.assert_close(eng.state_dict(), before, rtol=0, atol=0, equal_nan=True)
    assert eng.plan(np.zeros((2, 64, 64, 3), np.uint8), [0, 1])[0].reason == "first frame"   # another size
    _, _, stats = eng.run(frames[3:], list(range(3, 20)), starts[3:])
    assert [(s.frame_id, s.kind, s.reason, s.patches) for s in stats] == \
        [(s.frame_id, s.kind, s.reason, s.patches) for s in planned]
    assert stats[10].reason == "segment start"
    assert {s.kind for s in stats} >= {"full", "incremental"}
    if mode == "exact":
        assert [s.macs for s in stats] == [s.macs for s in planned]   # the estimate is what is spent
    fresh = IncrementalEngine(mobilenet, MEAN, STD, mode).plan(frames[:2], [0, 1])
    assert fresh[0] == FrameStats(0, "full", [(0, 0, 224, 224)], fresh[0].macs_full, fresh[0].macs_full, "first frame")


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_a_segment_does_not_depend_on_what_ran_before_it(mobilenet: nn.Module, mode: str) -> None:
    frames = decoded("vtest.avi", 16)
    frames = localized(frames) if mode == "exact" else frames
    starts = np.zeros(16, bool)
    starts[7] = True
    config = IncrementalConfig(fallback_ratio=0.9, batch_frames=4)
    together = IncrementalEngine(mobilenet, MEAN, STD, mode, config)
    logits, _, stats = together.run(frames, list(range(16)), starts)
    alone = IncrementalEngine(mobilenet, MEAN, STD, mode, config)
    logits_alone, _, stats_alone = alone.run(frames[7:], list(range(7, 16)), starts[7:])
    assert [(s.kind, s.patches, s.macs) for s in stats[7:]] == [(s.kind, s.patches, s.macs) for s in stats_alone]
    assert torch.equal(logits[7:], logits_alone)
    # the same frames in other calls (another machine's batches): the same answers
    split = IncrementalEngine(mobilenet, MEAN, STD, mode, config)
    parts = [split.run(frames[a:b], list(range(a, b)), starts[a:b])[0] for a, b in ((0, 5), (5, 11), (11, 16))]
    assert (torch.cat(parts) - logits).abs().max() < 1e-4


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
    frames = np.repeat(vtest_frames[:1], 4, axis=0)
    frames[1, 100:108, 40:48] = 0                    # one block: incremental
    frames[2] = 255 - frames[2]                      # everything changes: full inference is cheaper
    eng = IncrementalEngine(mobilenet, MEAN, STD, "exact", IncrementalConfig(fallback_ratio=0.9))
    logits, _, stats = eng.run(frames, [0, 1, 2, 3])
    assert [(s.kind, s.reason) for s in stats] == [("full", "first frame"), ("incremental", ""), ("full", "cost"),
                                                   ("full", "cost")]
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
    with pytest.raises(DataError, match="segment_start"):
        eng.run(np.zeros((2, 32, 32, 3), np.uint8), [0, 1], segment_start=[True])
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
