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

from dataclasses import dataclass, replace
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
    observed_cost: float | None = None   # approximate mode: mean MAC fraction of the last incremental chunk
    fallback_chunks: int = 0             # approximate mode: chunks run in full since incremental did not pay

    def rebased(self, frame: np.ndarray) -> "BaseFrame":
        """The state after ``frame`` ran in full."""
        return replace(self, composite=frame, last_true=frame, logits=None, features=None, computed_since_full=0)


@dataclass
class ChunkPlan:
    """Decisions for the first ``length`` frames of a chunk."""

    kinds: list[str]
    grids: list[np.ndarray | None]     # changed blocks of incremental frames
    composites: np.ndarray             # (length, H, W, 3): the frames the results are computed on
    macs: list[int]                    # cost-model estimate (exact propagation; an upper bound in approximate mode)
    fallback: bool = False             # approximate mode: the whole chunk runs in full (incremental did not pay)

    @property
    def length(self) -> int:
        return len(self.kinds)

    def computed(self) -> list[int]:
        return [i for i, kind in enumerate(self.kinds) if kind != "skipped"]

    def input_masks(self, block: int, frames: list[int]) -> torch.Tensor:
        """(len(frames), H, W) bool: the pixels each of the given frames changes."""
        height, width = self.composites.shape[1:3]
        masks = []
        for i in frames:
            grid = self.grids[i]
            if grid is None:
                masks.append(np.ones((height, width), bool))
            else:
                masks.append(block_mask(grid[None], block, height, width)[0])
        return torch.from_numpy(np.stack(masks))


def plan_chunk(frames: np.ndarray, base: BaseFrame | None, mode: str, config: IncrementalConfig,
               graph: LayerGraph) -> ChunkPlan:
    """Decisions for a prefix of ``frames``: incremental and skipped frames, then a run of full
    frames (the chunk ends before the first frame after a full one that is not full)."""
    plan = ChunkPlan([], [], np.empty((0, *frames.shape[1:]), np.uint8), [])
    composites: list[np.ndarray] = []
    state = base
    position = 0
    if state is None:
        _append(plan, composites, "full", None, frames[0], graph.macs_full)
        state, position = BaseFrame(frames[0], frames[0], None, None, 0), 1
    elif mode == "approximate" and _falling_back(state, config):
        plan.fallback = True
        position, state = _plan_fallback(frames, state, config, graph, plan, composites)
    elif mode == "exact":
        position, state = _plan_chain(frames, state, config, graph, plan, composites)
    else:
        position, state = _plan_common_base(frames, state, config, graph, plan, composites)
    if plan.kinds and plan.kinds[-1] == "full" and position < len(frames):
        for frame in frames[position:position + _full_run(frames[position - 1:], config, graph, mode)]:
            _append(plan, composites, "full", None, frame, graph.macs_full)
    plan.composites = np.stack(composites)
    return plan


def _append(plan: ChunkPlan, composites: list[np.ndarray], kind: str, grid: np.ndarray | None,
            composite: np.ndarray, macs: int) -> None:
    plan.kinds.append(kind)
    plan.grids.append(grid)
    plan.macs.append(int(macs))
    composites.append(composite)


def _plan_chain(frames: np.ndarray, base: BaseFrame, config: IncrementalConfig, graph: LayerGraph,
                plan: ChunkPlan, composites: list[np.ndarray]) -> tuple[int, BaseFrame]:
    """Exact mode: each frame against the composite of the frame before it, up to the first full frame."""
    grids, chained = chain_composites(frames, base.composite, config.block, config.pixel_threshold)
    estimates = _estimate(grids, config, graph, exact=True)
    since_full = base.computed_since_full
    for index, grid in enumerate(grids):
        if not grid.any():
            _append(plan, composites, "skipped", None, chained[index], 0)
        elif estimates[index] > config.rebase_ratio * graph.macs_full:
            _append(plan, composites, "full", None, frames[index], graph.macs_full)
            return index + 1, base.rebased(frames[index])
        else:
            _append(plan, composites, "incremental", grid, chained[index], estimates[index])
            since_full += 1
    return len(frames), replace(base, composite=chained[-1], last_true=frames[-1], computed_since_full=since_full)


def _plan_common_base(frames: np.ndarray, base: BaseFrame, config: IncrementalConfig, graph: LayerGraph,
                      plan: ChunkPlan, composites: list[np.ndarray]) -> tuple[int, BaseFrame]:
    """Approximate mode: every frame against the chunk's base frame, up to the first full frame."""
    grids = changed_blocks(frames, base.composite, config.block, config.pixel_threshold)
    estimates = _estimate(grids, config, graph, exact=False)
    last_true, last_composite, since_full = base.last_true, base.composite, base.computed_since_full
    for index, (frame, grid) in enumerate(zip(frames, grids)):
        if not grid.any() or (config.skip_threshold > 0 and
                              frame_difference(frame[None], last_true)[0] <= config.skip_threshold):
            _append(plan, composites, "skipped", None, last_composite, 0)
            continue
        if _due(since_full, config) or estimates[index] > config.rebase_ratio * graph.macs_full:
            _append(plan, composites, "full", None, frame, graph.macs_full)
            return index + 1, base.rebased(frame)
        last_composite = paste_blocks(base.composite, frame, grid, config.block)
        _append(plan, composites, "incremental", grid, last_composite, estimates[index])
        last_true, since_full = frame, since_full + 1
    return len(frames), replace(base, composite=last_composite, last_true=last_true, computed_since_full=since_full)


#: Approximate mode retries incremental inference after this many chunks in full.
RETRY_AFTER_CHUNKS = 8


def _falling_back(base: BaseFrame, config: IncrementalConfig) -> bool:
    """Whether the last incremental chunk cost more than ``fallback_ratio`` of full inference
    (a moving camera) and the retry is not due yet."""
    return base.observed_cost is not None and base.observed_cost > config.fallback_ratio and \
        base.fallback_chunks < RETRY_AFTER_CHUNKS


def advance_cost(base: BaseFrame, plan: ChunkPlan, macs: list[int], macs_full: int) -> BaseFrame:
    """Approximate mode's record of what incremental inference cost, after a chunk."""
    if plan.fallback:
        if base.fallback_chunks + 1 >= RETRY_AFTER_CHUNKS:
            return replace(base, observed_cost=None, fallback_chunks=0)
        return replace(base, fallback_chunks=base.fallback_chunks + 1)
    costs = [m / macs_full for m, kind in zip(macs, plan.kinds) if kind == "incremental"]
    if not costs:
        return base
    return replace(base, observed_cost=float(np.mean(costs)), fallback_chunks=0)


def _plan_fallback(frames: np.ndarray, base: BaseFrame, config: IncrementalConfig, graph: LayerGraph,
                   plan: ChunkPlan, composites: list[np.ndarray]) -> tuple[int, BaseFrame]:
    """Approximate mode when incremental inference did not pay: every frame in full (or skipped)."""
    last_true, last_composite = base.last_true, base.composite
    for frame in frames:
        if config.skip_threshold > 0 and frame_difference(frame[None], last_true)[0] <= config.skip_threshold:
            _append(plan, composites, "skipped", None, last_composite, 0)
            continue
        _append(plan, composites, "full", None, frame, graph.macs_full)
        last_true = last_composite = frame
    return len(frames), replace(base, composite=last_composite, last_true=last_true, computed_since_full=0)


def _full_run(frames: np.ndarray, config: IncrementalConfig, graph: LayerGraph, mode: str) -> int:
    """How many frames after ``frames[0]`` (computed in full) are each cheaper in full against
    the one before them (estimated in one batch)."""
    grids = changed_blocks(frames[1:], frames[:-1], config.block, config.pixel_threshold)
    worth = _estimate(grids, config, graph, exact=mode == "exact") > config.rebase_ratio * graph.macs_full
    return len(worth) if worth.all() else int(np.argmin(worth))


def _due(since_full: int, config: IncrementalConfig) -> bool:
    every = config.refresh_every
    return every is not None and since_full + 1 >= every


def _estimate(grids: np.ndarray, config: IncrementalConfig, graph: LayerGraph, exact: bool) -> np.ndarray:
    """Cost-model multiply-adds of each frame's changed blocks.

    Exact mode propagates the changed positions through every layer.  Approximate mode
    charges every layer the input's changed fraction (thresholds keep changes from spreading).
    A frame whose changed fraction alone exceeds ``rebase_ratio`` is charged full inference
    without propagating (propagation only grows the changed area).
    """
    head = graph.head.linear_macs
    area = grids.reshape(len(grids), -1).mean(axis=1)
    estimates = area * (graph.macs_full - head) + head
    if exact:
        small = np.flatnonzero(area <= config.rebase_ratio)
        if len(small):
            masks = torch.from_numpy(block_mask(grids[small], config.block, graph.height, graph.width))
            estimates[small] = propagated_macs(graph, masks).numpy()
        estimates[area > config.rebase_ratio] = graph.macs_full
    return estimates
