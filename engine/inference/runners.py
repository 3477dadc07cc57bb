"""How a scan computes frames in each inference mode.

``full`` runs every frame through the whole network, batched (plain torch).  ``exact`` and
``approximate`` run engine B's :class:`~engine.inference.incremental.IncrementalEngine`,
which keeps a base frame's activations and recomputes only changed regions (exact), with
change thresholds and frame skipping on top (approximate).  Every runner offers
``run(frame_ids, frames) -> (FrameResults, decisions)`` and ``plan(frame_ids, frames) -> decisions``
(what it would do, without running the network; EXPLAIN shows it).

>>> import numpy as np, torch
>>> from udfs.architectures import build
>>> net = build("plain_cnn", num_classes=3)
>>> runner = FullRunner(net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
>>> results, decisions = runner.run(np.array([0, 1]), np.zeros((2, 8, 8, 3), np.uint8))
>>> results.kinds.tolist(), bool(results.macs[0] == results.macs_full[0] > 0), decisions[0].patches
(['full', 'full'], True, ((0, 0, 8, 8),))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from engine.inference.frame_results import FrameResults

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class FrameDecision:
    """What a scan does with one frame: kind is 'cached' | 'skipped' | 'incremental' | 'full'."""

    frame_id: int
    kind: str
    macs: int
    macs_full: int
    patches: tuple[tuple[int, int, int, int], ...] = ()   # (y, x, h, w) at input resolution


_MACS: dict[tuple[type, int, int, int], int] = {}


def full_macs(network: "nn.Module", height: int, width: int) -> int:
    """Multiply-adds of full inference on one height x width frame (counted once per network shape)."""
    from udfs.models import count_macs

    classes = sum(p.numel() for p in network.parameters())
    key = (type(network), classes, height, width)
    if key not in _MACS:
        _MACS[key] = count_macs(network, (height, width))
    return _MACS[key]


@dataclass
class FullRunner:
    """Full inference, batched: what plain PyTorch does, on the network with batch-norm folded
    into its convolutions and channels-last weights (:func:`udfs.models.inference_network`)."""

    network: "nn.Module"
    mean: Sequence[float]
    std: Sequence[float]

    def macs_full(self, height: int, width: int) -> int:
        return full_macs(self.network, height, width)

    def run(self, frame_ids: np.ndarray, frames: np.ndarray) -> tuple[FrameResults, list[FrameDecision]]:
        from udfs.models import forward_frames, inference_network

        logits, features = forward_frames(inference_network(self.network), frames, self.mean, self.std)
        height, width = frames.shape[1], frames.shape[2]
        cost = self.macs_full(height, width)
        results = FrameResults.from_arrays(frame_ids, logits.numpy(), features.numpy(), ["full"] * len(frame_ids),
                                           [cost] * len(frame_ids), [cost] * len(frame_ids))
        return results, [FrameDecision(int(i), "full", cost, cost, ((0, 0, height, width),)) for i in frame_ids]

    def plan(self, frame_ids: np.ndarray, height: int, width: int) -> list[FrameDecision]:
        cost = self.macs_full(height, width)
        return [FrameDecision(int(i), "full", cost, cost) for i in frame_ids]


class IncrementalRunner:
    """Engine B's incremental engine behind the runner interface; its state persists per video."""

    def __init__(self, network: "nn.Module", mean: Sequence[float], std: Sequence[float], mode: str,
                 config: Any, state: dict[str, Any] | None) -> None:
        from engine.inference.incremental import IncrementalEngine

        self.engine = IncrementalEngine(network, mean, std, mode, config)
        if state is not None:
            self.engine.load_state_dict(state)

    def run(self, frame_ids: np.ndarray, frames: np.ndarray) -> tuple[FrameResults, list[FrameDecision]]:
        logits, features, stats = self.engine.run(frames, [int(i) for i in frame_ids])
        results = FrameResults.from_arrays(
            frame_ids, logits.detach().numpy(), features.detach().numpy(), [s.kind for s in stats],
            [int(s.macs) for s in stats], [int(s.macs_full) for s in stats],
        )
        return results, [_decision(s) for s in stats]

    def plan(self, frame_ids: np.ndarray, frames: np.ndarray) -> list[FrameDecision]:
        return [_decision(s) for s in self.engine.plan(frames, [int(i) for i in frame_ids])]

    def state_dict(self) -> dict[str, Any]:
        return self.engine.state_dict()


def _decision(stats: Any) -> FrameDecision:
    """A FrameDecision from the engine's FrameStats."""
    patches = tuple(tuple(int(v) for v in p) for p in stats.patches)
    return FrameDecision(int(stats.frame_id), stats.kind, int(stats.macs), int(stats.macs_full), patches)  # type: ignore[arg-type]
