"""How a scan computes frames in each inference mode.

``full`` runs every frame through the whole network, batched (:class:`FullRunner`: batch-norm
folded, channels-last, as a tuned plain-PyTorch deployment does).  ``exact`` and
``approximate`` run the :class:`~engine.inference.incremental.IncrementalEngine`
(:class:`IncrementalRunner`), which recomputes only the regions that changed since the frame
before (exact: any pixel change, answers equal full inference's within 1e-4), with change
thresholds and frame skipping on top (approximate).

Both runners offer the same two calls:

- ``run(frame_ids, frames, segment_start=None) -> (FrameResults, list[FrameDecision])``
- ``plan(...) -> list[FrameDecision]``: the decisions ``run`` takes, made by the same function,
  without running the network (what EXPLAIN shows).  ``FullRunner.plan(frame_ids, height,
  width)`` needs no pixels; ``IncrementalRunner.plan(frame_ids, frames, segment_start=None)``.

``frames`` is (n, H, W, 3) uint8 in frame order; ``segment_start`` flags the frames that start
a segment (keyframes): the incremental runner computes each of them in full, so a segment's
answers do not depend on what ran before it.  Answers depend only on the frames, the model and
the configuration, never on time or load.

>>> import numpy as np, torch
>>> from udfs.architectures import build
>>> net = build("plain_cnn", num_classes=3)
>>> runner = FullRunner(net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
>>> results, decisions = runner.run(np.array([0, 1]), np.zeros((2, 8, 8, 3), np.uint8))
>>> results.kinds.tolist(), bool(results.macs[0] == results.macs_full[0] > 0), decisions[0].patches
(['full', 'full'], True, ((0, 0, 8, 8),))
>>> exact = IncrementalRunner(net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "exact", None)
>>> frames = np.zeros((3, 16, 16, 3), np.uint8); frames[2, :8, :8] = 9
>>> [(d.kind, d.reason) for d in exact.plan(np.arange(3), frames, segment_start=[False, False, True])]
[('full', 'first frame'), ('skipped', 'unchanged'), ('full', 'segment start')]
"""
from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import DataError, NotSupportedError
from engine.inference.frame_results import FrameResults

if TYPE_CHECKING:
    import torch
    from torch import nn

    from engine.inference.incremental import FidelityAudit, IncrementalConfig


@dataclass(frozen=True)
class FrameDecision:
    """What a scan does with one frame: kind is 'cached' | 'shared' | 'skipped' | 'incremental' | 'full'.

    ``reason`` says why a frame is full or skipped (see
    :data:`engine.inference.incremental.config.REASONS`), empty otherwise.
    """

    frame_id: int
    kind: str
    macs: int
    macs_full: int
    patches: tuple[tuple[int, int, int, int], ...] = ()   # (y, x, h, w) at input resolution
    reason: str = ""
    guard_ratio: float = 0.0    # (reason 'guard') what the guard found incremental would cost against full


_MACS: dict[tuple[type, int, int, int], int] = {}


def full_macs(network: nn.Module, height: int, width: int) -> int:
    """Multiply-adds of full inference on one height x width frame (counted once per network shape)."""
    from engine.inference.networks import count_macs

    parameters = sum(p.numel() for p in network.parameters())
    key = (type(network), parameters, height, width)
    if key not in _MACS:
        _MACS[key] = count_macs(network, (height, width))
    return _MACS[key]


_GRAPHS: weakref.WeakKeyDictionary[Any, dict[tuple[int, int], Any]] = weakref.WeakKeyDictionary()


def dense_graph(network: nn.Module, height: int, width: int) -> Any:
    """The incremental engine's layer graph of ``network`` for this size (batch-norm and
    activations folded into the convolutions), or None when the engine does not support a layer;
    built once per network and size."""
    from engine.inference.incremental.graph import LayerGraph

    graphs = _GRAPHS.setdefault(network, {})
    if (height, width) not in graphs:
        try:
            graphs[(height, width)] = LayerGraph.trace(network, height, width)
        except NotSupportedError:
            graphs[(height, width)] = None
    return graphs[(height, width)]


@dataclass
class FullRunner:
    """Full inference, batched.  Through the incremental engine's layer graph when it supports
    the model (batch-norm and activations folded into the convolutions, channels-last, 1x1
    convolutions as matrix products: on CPUs faster than the torch.fx-fused network), else the
    network with batch-norm folded wherever the traced graph shows a convolution feeding one
    (:func:`engine.inference.networks.inference_network`).  ``reason`` is set when a mode asked for
    incremental inference and the model runs in full instead (every decision carries it)."""

    network: nn.Module
    mean: Sequence[float]
    std: Sequence[float]
    reason: str = ""

    def macs_full(self, height: int, width: int) -> int:
        return full_macs(self.network, height, width)

    def forward(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, features) of full inference of (n, H, W, 3) uint8 frames."""
        import torch

        from engine.inference.incremental.execution import dense_pooled
        from engine.inference.networks import dense_batch, forward_frames, inference_network

        graph = dense_graph(self.network, frames.shape[1], frames.shape[2])
        if graph is None:
            return forward_frames(inference_network(self.network), frames, self.mean, self.std)
        mean, std = torch.tensor(self.mean, dtype=torch.float32), torch.tensor(self.std, dtype=torch.float32)
        step = dense_batch(frames.shape[1], frames.shape[2])
        logits, features = [], []
        with torch.inference_mode():
            for start in range(0, len(frames), step):
                x = torch.from_numpy(np.ascontiguousarray(frames[start:start + step])).to(torch.float32)
                part_logits, part_features = graph.head(dense_pooled(graph, x.div_(255.0).sub_(mean).div_(std)))
                logits.append(part_logits)
                features.append(part_features)
        return torch.cat(logits), torch.cat(features)

    def run(self, frame_ids: np.ndarray, frames: np.ndarray,
            segment_start: Sequence[bool] | np.ndarray | None = None) -> tuple[FrameResults, list[FrameDecision]]:
        logits, features = self.forward(frames)
        height, width = frames.shape[1], frames.shape[2]
        cost = self.macs_full(height, width)
        results = FrameResults.from_arrays(frame_ids, logits.numpy(), features.numpy(), ["full"] * len(frame_ids),
                                           [cost] * len(frame_ids), [cost] * len(frame_ids))
        return results, self._decisions(frame_ids, height, width)

    def plan(self, frame_ids: np.ndarray, height: int, width: int,
             segment_start: Sequence[bool] | np.ndarray | None = None) -> list[FrameDecision]:
        return self._decisions(frame_ids, height, width)

    def _decisions(self, frame_ids: np.ndarray, height: int, width: int) -> list[FrameDecision]:
        cost = self.macs_full(height, width)
        reason = "unsupported model" if self.reason else ""
        return [FrameDecision(int(i), "full", cost, cost, ((0, 0, height, width),), reason) for i in frame_ids]


class IncrementalRunner:
    """The incremental engine behind the runner interface, in mode 'exact' or 'approximate'.

    A model with a layer the engine does not support runs in full (``full_reason`` says which
    layer; its decisions have reason 'unsupported model').  ``state`` (from an earlier scan's
    :meth:`state_dict`) is used only when ``config.persist_state`` is on and the mode is exact,
    where it cannot change answers; an unusable state is ignored.
    """

    def __init__(self, network: nn.Module, mean: Sequence[float], std: Sequence[float], mode: str,
                 config: IncrementalConfig | None, state: dict[str, Any] | None = None) -> None:
        from engine.inference.incremental import IncrementalConfig, IncrementalEngine

        self.config = config or IncrementalConfig()
        self.mode = mode
        self.engine = IncrementalEngine(network, mean, std, mode, self.config)
        self.full = FullRunner(network, mean, std)
        self._unsupported: dict[tuple[int, int], str] = {}
        if state and self.persists:
            try:
                self.engine.load_state_dict(state)
            except (DataError, NotSupportedError):   # written by another version or model: start over
                self.engine.reset()

    @property
    def persists(self) -> bool:
        """Whether the scan should keep this runner's :meth:`state_dict` for the next query."""
        return self.config.persist_state and self.mode == "exact"

    def full_reason(self, height: int, width: int) -> str:
        """Why frames of this size run in full ('' when the engine supports the model)."""
        key = (height, width)
        if key not in self._unsupported:
            try:
                self.engine.graph(height, width)
                self._unsupported[key] = ""
            except NotSupportedError as e:
                self._unsupported[key] = str(e)
        return self._unsupported[key]

    def run(self, frame_ids: np.ndarray, frames: np.ndarray,
            segment_start: Sequence[bool] | np.ndarray | None = None) -> tuple[FrameResults, list[FrameDecision]]:
        reason = self.full_reason(frames.shape[1], frames.shape[2])
        if reason:
            self.full.reason = reason
            return self.full.run(frame_ids, frames)
        logits, features, stats = self.engine.run(frames, [int(i) for i in frame_ids], segment_start)
        results = FrameResults.from_arrays(
            frame_ids, logits.detach().numpy(), features.detach().numpy(), [s.kind for s in stats],
            [int(s.macs) for s in stats], [int(s.macs_full) for s in stats],
        )
        return results, [_decision(s) for s in stats]

    def plan(self, frame_ids: np.ndarray, frames: np.ndarray,
             segment_start: Sequence[bool] | np.ndarray | None = None) -> list[FrameDecision]:
        reason = self.full_reason(frames.shape[1], frames.shape[2])
        if reason:
            self.full.reason = reason
            return self.full.plan(frame_ids, frames.shape[1], frames.shape[2])
        return [_decision(s) for s in self.engine.plan(frames, [int(i) for i in frame_ids], segment_start)]

    def fidelity(self) -> FidelityAudit | None:
        """Approximate mode's fidelity audit of what this runner ran (None in exact mode)."""
        return self.engine.fidelity() if self.mode == "approximate" else None

    def state_dict(self) -> dict[str, Any]:
        """The engine's state to persist: empty unless :attr:`persists`."""
        return self.engine.state_dict() if self.persists else {}


def _decision(stats: Any) -> FrameDecision:
    """A FrameDecision from the engine's FrameStats."""
    patches = tuple(tuple(int(v) for v in p) for p in stats.patches)
    return FrameDecision(int(stats.frame_id), stats.kind, int(stats.macs), int(stats.macs_full), patches,  # type: ignore[arg-type]
                         stats.reason, float(stats.guard_ratio))
