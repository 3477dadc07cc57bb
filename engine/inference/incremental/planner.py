"""Per-frame decisions, made from pixels and the cost model without running the CNN.

For each frame of a chunk the planner decides:

- ``full``: no base frame yet, a forced refresh is due, or the cost model says the changed
  area makes full inference cheaper (incremental multiply-adds above ``rebase_ratio`` of full);
  the frame becomes the new base frame.
- ``skipped``: in exact mode, nothing changed (the result is the previous one, exactly); in
  approximate mode also when NoScope's difference to the last computed frame is at most
  ``skip_threshold``.
- ``incremental``: the changed blocks are pasted onto the base and propagated.  In exact mode
  the base of a frame is the frame computed before it (chain); in approximate mode every frame
  of a chunk compares against the chunk's base frame (thresholds need one reference).

>>> import numpy as np
>>> from udfs.architectures import build
>>> from engine.inference.incremental.config import IncrementalConfig
>>> from engine.inference.incremental.graph import LayerGraph
>>> graph = LayerGraph.trace(build("plain_cnn", num_classes=3), 32, 32)
>>> frames = np.zeros((3, 32, 32, 3), np.uint8); frames[2, :4, :4] = 200
>>> plan = plan_chunk(frames, None, "exact", IncrementalConfig(), graph)
>>> plan.kinds, plan.length
(['full'], 1)
>>> base = BaseFrame(frames[0], frames[0], None, None, 0)
>>> plan_chunk(frames[1:], base, "exact", IncrementalConfig(), graph).kinds
['skipped', 'incremental']
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import torch

from engine.inference.incremental.changes import (
    block_mask,
    chain_composites,
    changed_blocks,
    frame_difference,
    paste_blocks,
)
from engine.inference.incremental.config import IncrementalConfig
from engine.inference.incremental.cost import propagated_macs
from engine.inference.incremental.graph import LayerGraph


@dataclass
class BaseFrame:
    """The frame the materialized activations belong to, and what the skip detector needs."""

    composite: np.ndarray          # (H, W, 3) uint8: the frame the base activations were computed on
    last_true: np.ndarray          # (H, W, 3) uint8: the true pixels of the last computed frame
    logits: torch.Tensor | None    # the last computed frame's results (answers for skipped frames)
    features: torch.Tensor | None
    computed_since_full: int


@dataclass
class ChunkPlan:
    """Decisions for the first ``length`` frames of a chunk."""

    kinds: list[str]
    grids: list[np.ndarray | None]     # changed blocks of incremental frames
    composites: np.ndarray             # (length, H, W, 3): the frames the results are computed on
    macs: list[int]                    # cost-model estimate (exact propagation; an upper bound in approximate mode)

    @property
    def length(self) -> int:
        return len(self.kinds)

    def computed(self) -> list[int]:
        return [i for i, kind in enumerate(self.kinds) if kind != "skipped"]

    def input_masks(self, block: int) -> torch.Tensor:
        """(computed frames, H, W) bool: the pixels each computed frame changes."""
        height, width = self.composites.shape[1:3]
        masks = []
        for i in self.computed():
            grid = self.grids[i]
            if grid is None:
                masks.append(np.ones((height, width), bool))
            else:
                masks.append(block_mask(grid[None], block, height, width)[0])
        return torch.from_numpy(np.stack(masks))


def plan_chunk(frames: np.ndarray, base: BaseFrame | None, mode: str, config: IncrementalConfig,
               graph: LayerGraph) -> ChunkPlan:
    """Decisions for a prefix of ``frames`` (one frame when there is no base yet, else all)."""
    if base is None:
        return ChunkPlan(["full"], [None], frames[:1].copy(), [graph.macs_full])
    if mode == "exact":
        return _plan_chain(frames, base, config, graph)
    return _plan_common_base(frames, base, config, graph)


def _plan_chain(frames: np.ndarray, base: BaseFrame, config: IncrementalConfig, graph: LayerGraph) -> ChunkPlan:
    n = len(frames)
    kinds: list[str] = []
    grids: list[np.ndarray | None] = []
    composites: list[np.ndarray] = []
    macs: list[int] = []
    composite, since_full = base.composite, base.computed_since_full
    start = 0
    while start < n:
        chunk_grids, chunk_composites = chain_composites(frames[start:], composite, config.block,
                                                         config.pixel_threshold)
        estimates = _estimate(chunk_grids, config, graph)
        rebase = None
        for offset, grid in enumerate(chunk_grids):
            if not grid.any():
                kinds.append("skipped"); grids.append(None); macs.append(0)
                composites.append(chunk_composites[offset])
                continue
            if _due(since_full, config) or estimates[offset] > config.rebase_ratio * graph.macs_full:
                rebase = start + offset
                break
            kinds.append("incremental"); grids.append(grid); macs.append(int(estimates[offset]))
            composites.append(chunk_composites[offset])
            since_full += 1
        if rebase is None:
            break
        kinds.append("full"); grids.append(None); macs.append(graph.macs_full)
        composites.append(frames[rebase])
        composite, since_full, start = frames[rebase], 0, rebase + 1
    return ChunkPlan(kinds, grids, np.stack(composites), macs)


def _plan_common_base(frames: np.ndarray, base: BaseFrame, config: IncrementalConfig,
                      graph: LayerGraph) -> ChunkPlan:
    grids = changed_blocks(frames, base.composite, config.block, config.pixel_threshold)
    estimates = _estimate(grids, config, graph)
    kinds: list[str] = []
    plan_grids: list[np.ndarray | None] = []
    composites: list[np.ndarray] = []
    macs: list[int] = []
    last_true, last_composite, since_full = base.last_true, base.composite, base.computed_since_full
    for frame, grid, estimate in zip(frames, grids, estimates):
        if not grid.any() or (config.skip_threshold > 0 and
                              frame_difference(frame[None], last_true)[0] <= config.skip_threshold):
            kinds.append("skipped"); plan_grids.append(None); macs.append(0)
            composites.append(last_composite)
            continue
        if _due(since_full, config) or estimate > config.rebase_ratio * graph.macs_full:
            kinds.append("full"); plan_grids.append(None); macs.append(graph.macs_full)
            last_composite, since_full = frame, 0
        else:
            kinds.append("incremental"); plan_grids.append(grid); macs.append(int(estimate))
            last_composite, since_full = paste_blocks(base.composite, frame, grid, config.block), since_full + 1
        composites.append(last_composite)
        last_true = frame
    return ChunkPlan(kinds, plan_grids, np.stack(composites), macs)


def _due(since_full: int, config: IncrementalConfig) -> bool:
    every = config.refresh_every
    return every is not None and since_full + 1 >= every


def _estimate(grids: np.ndarray, config: IncrementalConfig, graph: LayerGraph) -> np.ndarray:
    """Cost-model multiply-adds of each frame's changed blocks."""
    masks = torch.from_numpy(block_mask(grids, config.block, graph.height, graph.width))
    return propagated_macs(graph, masks, config.tau).numpy()
