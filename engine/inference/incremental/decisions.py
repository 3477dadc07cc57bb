"""Per-frame decisions (full, incremental or skipped), made from the pixels and the cost model
without running the CNN.  ``IncrementalEngine.plan`` and ``run`` both call
:meth:`Decider.decide`, so what EXPLAIN shows is what runs.

Every frame is compared with the frame the engine's activations hold (the *reference*: the
composite of the frame computed before it).  A frame is

- ``full`` when the runner has no reference yet (``first frame``), when it starts a segment
  (``segment start``: a keyframe; a segment's answers never depend on what ran before it),
  every ``refresh`` computed frames in approximate mode (``refresh``), or when the estimated
  multiply-adds of its changed region exceed ``fallback_ratio`` of full inference (``cost``);
  The guard (:mod:`~engine.inference.incremental.guard`) judges each segment on its first
  frames from the multiply-adds they spent (reported back by :meth:`Decider.account`): when
  incremental inference would not be cheaper, the rest of the segment is ``full`` (``guard``),
  decided without change detection;
- ``skipped`` when no block changed (``unchanged``; in exact mode the frame is identical to the
  one before, so the answer is exactly the previous one) or, in approximate mode, when
  NoScope's difference to the last computed frame is at most ``skip_threshold`` (``similar``);
- ``incremental`` otherwise: its changed blocks are pasted on the reference and propagated.

Exact mode finds changed blocks with threshold 0 (any pixel difference), so the frame it
computes on is the true frame; approximate mode with ``pixel_threshold``.  Decisions depend only
on the frames, the segment starts, the model's graph and the configuration: never on time.

>>> import numpy as np
>>> from udfs.architectures import build
>>> from engine.inference.incremental.config import IncrementalConfig
>>> from engine.inference.incremental.graph import LayerGraph
>>> graph = LayerGraph.trace(build("plain_cnn", num_classes=3), 32, 32)
>>> frames = np.zeros((4, 32, 32, 3), np.uint8); frames[2, :4, :4] = 200; frames[3] = 90
>>> decisions, reference = Decider("exact", IncrementalConfig(), graph).decide(frames, np.zeros(4, bool), None)
>>> [(d.kind, d.reason) for d in decisions]
[('full', 'first frame'), ('skipped', 'unchanged'), ('incremental', ''), ('full', 'cost')]
>>> reference.since_full
0
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from engine.inference.incremental.changes import block_mask, chain_composites, changed_blocks, grey_cells
from engine.inference.incremental.config import IncrementalConfig
from engine.inference.incremental.cost import estimated_macs
from engine.inference.incremental.graph import LayerGraph
from engine.inference.incremental.guard import SAMPLE, frame_cost

#: The reasons a frame starts a segment (a full base frame; the guard's sample starts after it).
STARTS = ("first frame", "segment start")

#: Frames whose changes are estimated together.
WINDOW = 16


@dataclass(frozen=True)
class Reference:
    """Where a runner stands: the frame its activations hold, and the counters decisions read."""

    composite: np.ndarray      # (H, W, 3) uint8: the frame the held activations were computed on
    last_true: np.ndarray      # (H, W, 3) uint8: the true pixels of the last computed frame (NoScope)
    since_full: int = 0        # frames computed incrementally since the last full one
    incremental: int = 0       # frames computed incrementally or skipped as similar in this segment
    #                            (every audit_every-th is audited)
    verdict: str = "sampling"  # the guard on this segment: 'sampling', 'incremental' or 'full'
    sampled: int = 0           # frames of the guard's sample decided so far
    sample_cost: float = 0.0   # their cost in dense multiply-add equivalents (guard.frame_cost)
    guard_ratio: float = 0.0   # the sample's cost against full inference of it (once judged)


@dataclass(frozen=True)
class Decision:
    """What happens to one frame.  ``composite`` is the frame the result is computed on (the
    true frame for full frames; for skipped frames the reference).  An ``audit`` frame (approximate
    mode, incremental) is also computed in full from its true pixels ``frame``, to measure fidelity."""

    kind: str
    reason: str
    grid: np.ndarray | None
    composite: np.ndarray
    macs: int
    audit: bool = False
    frame: np.ndarray | None = None
    sample: bool = False           # one of the frames the guard judges the segment on
    guard_ratio: float = 0.0       # (reason 'guard') the sample's cost against full inference


class Decider:
    """The decision function of one mode, configuration and layer graph (one frame size).

    ``thresholded`` names the layer outputs approximate mode thresholds (the cost estimate keeps
    their changes within the changed pixels' footprint).
    """

    def __init__(self, mode: str, config: IncrementalConfig, graph: LayerGraph,
                 thresholded: frozenset[str] = frozenset()) -> None:
        self.mode = mode
        self.config = config
        self.graph = graph
        self.thresholded = thresholded if mode == "approximate" else frozenset()
        self.threshold = config.pixel_threshold_of(mode)
        self.limit = int(config.fallback_ratio * graph.macs_full)
        self.approximate = mode == "approximate"
        self._known_cells: dict[int, np.ndarray] = {}     # grey cells by frame data address, per decide()

    def decide(self, frames: np.ndarray, segment_start: np.ndarray,
               reference: Reference | None) -> tuple[list[Decision], Reference | None]:
        """Decisions for a prefix of ``frames`` (n, H, W, 3) in order, continuing from ``reference``;
        and the reference after them.  All of them, unless the guard's sample of a segment is
        complete: then the decisions end there, and the caller reports what the sample spent
        (:meth:`account`) before deciding the rest."""
        decisions: list[Decision] = []
        position, window = 0, WINDOW
        self._known_cells = {}
        while position < len(frames):
            if reference is None or segment_start[position]:
                frame = frames[position]
                reason = "segment start" if segment_start[position] else "first frame"
                decisions.append(Decision("full", reason, None, frame, self.graph.macs_full))
                reference = Reference(frame, frame, verdict="sampling" if self.config.guard else "incremental")
                position += 1
                continue
            if reference.verdict == "full":
                made, reference = self._guarded(frames[position:], segment_start[position:], reference)
                decisions += made
                position += len(made)
                continue
            if reference.verdict == "sampling" and reference.sampled >= SAMPLE:
                break                                # the caller judges the sample first
            end = self._window_end(frames, segment_start, position, reference, window)
            made, reference = self._decide_window(frames[position:end], reference)
            if reference.verdict == "sampling":
                made = [replace(d, sample=True) for d in made]
                reference = replace(reference, sampled=reference.sampled + len(made))
            decisions += made
            position += len(made)
            # a window cut short wasted the changes found after the cut: try fewer next time
            window = min(WINDOW, 2 * window) if len(made) == end - (position - len(made)) else max(2, len(made))
        return decisions, reference

    def account(self, reference: Reference | None, decisions: list[Decision],
                spent: list[int]) -> Reference | None:
        """The reference after the guard priced the sample frames of ``decisions`` (the current
        segment's: those after its start) with the multiply-adds they ``spent`` (audits
        excluded); once the sample is complete, with its verdict."""
        if reference is None or reference.verdict != "sampling":
            return reference
        first = max((i + 1 for i, d in enumerate(decisions) if d.reason in STARTS), default=0)
        full = self.graph.macs_full
        cost = sum(frame_cost(self.graph, d.kind, m - (full if d.audit else 0))
                   for d, m in zip(decisions[first:], spent[first:]) if d.sample)
        reference = replace(reference, sample_cost=reference.sample_cost + cost)
        if reference.sampled < SAMPLE:
            return reference
        ratio = reference.sample_cost / (reference.sampled * full)
        return replace(reference, verdict="full" if ratio >= 1.0 else "incremental", guard_ratio=ratio)

    def _guarded(self, frames: np.ndarray, segment_start: np.ndarray,
                 reference: Reference) -> tuple[list[Decision], Reference]:
        """The frames up to the next segment start, in full: the guard found incremental
        inference would not pay on this segment."""
        starts = np.flatnonzero(segment_start)
        end = int(starts[0]) if len(starts) else len(frames)
        made = [Decision("full", "guard", None, frame, self.graph.macs_full, guard_ratio=reference.guard_ratio)
                for frame in frames[:end]]
        last = frames[end - 1]
        return made, replace(reference, composite=last, last_true=last, since_full=0)

    def _window_end(self, frames: np.ndarray, segment_start: np.ndarray, position: int,
                    reference: Reference, window: int = WINDOW) -> int:
        """The frames decided together: up to ``window``, the next segment start, and
        (approximate mode) the next forced refresh."""
        end = min(len(frames), position + window)
        starts = np.flatnonzero(segment_start[position + 1:end])
        if len(starts):
            end = position + 1 + int(starts[0])
        every = self.config.refresh_every
        if self.approximate and every is not None:
            end = min(end, position + max(1, every - reference.since_full))
        if reference.verdict == "sampling":
            end = min(end, position + max(1, SAMPLE - reference.sampled))
        return end

    def _decide_window(self, frames: np.ndarray, reference: Reference) -> tuple[list[Decision], Reference]:
        """Decisions for a prefix of ``frames`` (all of them unless a decision changes the
        reference in a way later frames' change masks depend on)."""
        similar = self._similar(frames, reference.last_true)
        computed = np.flatnonzero(~similar)
        # a similar frame leaves the reference as it is: the others chain from one another
        grids = composites = estimates = over = np.empty(0)
        if len(computed):
            grids, composites = self._changes(frames[computed], reference.composite)
            estimates, over = self._estimates(grids)
        decisions: list[Decision] = []
        rank = np.cumsum(~similar) - 1          # each computed frame's row in grids, composites, estimates
        for position, frame in enumerate(frames):
            if similar[position]:
                audit = self._audited(reference)     # a skipped frame's answer is audited too
                decisions.append(Decision("skipped", "similar", None, reference.composite,
                                          self.graph.macs_full if audit else 0, audit, frame if audit else None))
                reference = replace(reference, incremental=reference.incremental + 1)
                continue
            index = int(rank[position])
            grid = grids[index]
            if not grid.any():
                decisions.append(Decision("skipped", "unchanged", None, reference.composite, 0))
                if similar.any():
                    return decisions, reference      # later frames were judged similar to this one
                continue
            if self._refresh_due(reference):
                decisions.append(Decision("full", "refresh", None, frame, self.graph.macs_full))
                return decisions, replace(reference, composite=frame, last_true=frame, since_full=0)
            if over[index]:
                decisions.append(Decision("full", "cost", None, frame, self.graph.macs_full))
                reference = replace(reference, composite=frame, last_true=frame, since_full=0)
                if self.approximate:
                    return decisions, reference      # later composites chained from the pasted blocks
                continue
            audit = self._audited(reference)
            macs = int(estimates[index]) + (self.graph.macs_full if audit else 0)
            decisions.append(Decision("incremental", "", grid, composites[index], macs, audit,
                                      frame if audit else None))
            reference = replace(reference, composite=composites[index], last_true=frame,
                                since_full=reference.since_full + 1, incremental=reference.incremental + 1)
        return decisions, reference

    def _similar(self, frames: np.ndarray, last_true: np.ndarray) -> np.ndarray:
        """(n,) bool: approximate mode's frames skipped as ``similar``: NoScope's difference to
        the last computed frame (the frame before that is not skipped) at most ``skip_threshold``."""
        similar = np.zeros(len(frames), bool)
        if not (self.approximate and self.config.skip_threshold > 0) or not len(frames):
            return similar
        cells = self._cells(frames)
        held = self._cells(last_true[None])[0]
        for index, frame_cells in enumerate(cells):
            if float(np.square(frame_cells - held).mean()) <= self.config.skip_threshold:
                similar[index] = True
            else:
                held = frame_cells
        return similar

    def _cells(self, frames: np.ndarray) -> np.ndarray:
        """``grey_cells`` of frames (n, H, W, 3), each frame's computed once per :meth:`decide` (a
        window cut short decides its later frames again, against the same last frame).  Frames
        are known by their data address, which is theirs alone while :meth:`decide` runs (every
        frame it sees is alive: the call's frames and the reference's)."""
        addresses = [frame.__array_interface__["data"][0] for frame in frames]
        missing = [i for i, address in enumerate(addresses) if address not in self._known_cells]
        if missing:
            for i, row in zip(missing, grey_cells(frames[missing])):
                self._known_cells[addresses[i]] = row
        return np.stack([self._known_cells[address] for address in addresses])

    def _refresh_due(self, reference: Reference) -> bool:
        every = self.config.refresh_every
        return self.approximate and every is not None and reference.since_full + 1 >= every

    def _audited(self, reference: Reference) -> bool:
        """Approximate mode audits every ``audit_every``-th frame of a segment computed
        incrementally or skipped as similar (the last of each run of that many, so positions in
        the refresh cycle vary)."""
        every = self.config.audit_every
        return self.approximate and every > 0 and (reference.incremental + 1) % every == 0

    def _changes(self, frames: np.ndarray, composite: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Changed blocks of each frame against the composite before it, and the composites.
        With threshold 0 (exact mode) the composite of a frame is the frame itself."""
        if self.threshold > 0:
            return chain_composites(frames, composite, self.config.block, self.threshold)
        before = np.concatenate([composite[None], frames[:-1]])
        return changed_blocks(frames, before, self.config.block, 0.0), frames

    def _estimates(self, grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Estimated multiply-adds per frame (``macs_full`` where incremental is not worth it),
        and whether it is not (the estimate passed ``fallback_ratio`` of full inference).

        A frame whose changed area alone passes ``fallback_ratio`` is charged full inference
        without propagating (propagation only grows the changed area)."""
        graph = self.graph
        area = grids.reshape(len(grids), -1).mean(axis=1)
        over = area > self.config.fallback_ratio
        estimates = np.where(area > 0, graph.macs_full, 0).astype(np.int64)
        candidates = np.flatnonzero((area > 0) & ~over)
        if len(candidates):
            chosen = grids[candidates]
            masks = torch.from_numpy(block_mask(chosen, self.config.block, graph.height, graph.width))
            tau = self.config.tau if self.approximate else 1.0
            estimated = estimated_macs(graph, masks, self.limit, tau, self.thresholded, torch.from_numpy(chosen),
                                       self.config.block, halo=not self.approximate or self.config.halo).numpy()
            over[candidates] = estimated > self.limit
            estimates[candidates] = np.where(over[candidates], graph.macs_full, estimated)
        return estimates, over
