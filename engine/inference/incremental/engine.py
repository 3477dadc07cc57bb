"""The incremental inference engine: Krypton's update patches over a base frame's
materialized activations, with CBinfer's change thresholds and NoScope's frame skipping in
approximate mode.

>>> import numpy as np, torch
>>> from udfs.architectures import build
>>> model = build("plain_cnn", num_classes=3)
>>> engine = IncrementalEngine(model, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "exact")
>>> frames = np.zeros((4, 32, 32, 3), np.uint8); frames[1:, 8:16, 8:16] = 255; frames[3, 0:8, 24:32] = 90
>>> logits, features, stats = engine.run(frames, [0, 1, 2, 3])
>>> [s.kind for s in stats], stats[1].patches, stats[3].patches
(['full', 'incremental', 'skipped', 'incremental'], [(8, 8, 8, 8)], [(0, 24, 8, 8)])
>>> x = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
>>> bool((logits - model(x)).abs().max() < 1e-4)
True
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from engine.errors import DataError, ProgrammingError
from engine.inference.incremental.config import MODES, FrameStats, IncrementalConfig
from engine.inference.incremental.execution import BatchForward
from engine.inference.incremental.graph import LayerGraph
from engine.inference.incremental.layers import Add, Conv
from engine.inference.incremental.patches import block_patches
from engine.inference.incremental.planner import BaseFrame, ChunkPlan, advance_cost, plan_chunk


class IncrementalEngine:
    """Runs a model over the frames of one video in order, reusing the base frame's activations.

    ``mode`` is 'exact' (results equal full inference on the frame computed on: the base frame
    with the changed blocks pasted, within float tolerance) or 'approximate' (thresholds and
    skipping from ``config``).  ``run`` may be called many times; the base frame carries over
    (one scan = many calls), and ``state_dict``/``load_state_dict`` carry it across scans.
    After ``run``, ``computed_frames`` holds the frames the results were computed on.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], mode: str = "exact",
                 config: IncrementalConfig | None = None) -> None:
        if mode not in MODES:
            raise ProgrammingError(f"expected an incremental mode in {MODES}, found {mode!r}")
        self.model = model.eval()
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.mode = mode
        self.config = config or IncrementalConfig()
        self.computed_frames: np.ndarray | None = None
        self._graph: LayerGraph | None = None          # the graph of the frames being run
        self._graphs: dict[tuple[int, int], LayerGraph] = {}
        self._forward: BatchForward | None = None
        self._base: BaseFrame | None = None

    # -- public API -------------------------------------------------------------------------
    def plan(self, frames_uint8: np.ndarray, frame_ids: Sequence[int]) -> list[FrameStats]:
        """Decisions and estimated multiply-adds per frame, without running the CNN.

        Continues from the engine's current base frame and leaves it unchanged.  Exact mode's
        estimate is the cost model on the propagated patches (what ``run`` reports); approximate
        mode charges every layer the input's changed fraction, since how far changes spread
        past the thresholds is only known by running.
        """
        frames = self._check(frames_uint8, frame_ids)
        graph = self._graph_for(frames.shape[1], frames.shape[2])
        base = self._base if self._fits(frames) else None
        stats: list[FrameStats] = []
        position = 0
        while position < len(frames):
            chunk = frames[position:position + self.config.batch_frames]
            plan = plan_chunk(chunk, base, self.mode, self.config, graph)
            stats += self._stats(plan, frame_ids[position:position + plan.length], plan.macs, graph)
            base = self._advance(base, plan, chunk[:plan.length], None, None, plan.macs, graph)
            position += plan.length
        return stats

    def run(self, frames_uint8: np.ndarray, frame_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor,
                                                                                 list[FrameStats]]:
        """Logits (n, classes), features (n, F) and what was done, for frames (n, H, W, 3) uint8."""
        frames = self._check(frames_uint8, frame_ids)
        graph = self._activate(frames.shape[1], frames.shape[2])
        if not self._fits(frames):
            self._base = None
        logits, features, stats, computed = [], [], [], []
        position = 0
        with torch.inference_mode():
            while position < len(frames):
                chunk = frames[position:position + self.config.batch_frames]
                plan = plan_chunk(chunk, self._base, self.mode, self.config, graph)
                chunk_logits, chunk_features, macs = self._execute(plan)
                stats += self._stats(plan, frame_ids[position:position + plan.length], macs, graph)
                logits.append(chunk_logits)
                features.append(chunk_features)
                computed.append(plan.composites)
                self._base = self._advance(self._base, plan, chunk[:plan.length], chunk_logits, chunk_features,
                                           macs, graph)
                position += plan.length
        self.computed_frames = np.concatenate(computed)
        return torch.cat(logits), torch.cat(features), stats

    def reset(self) -> None:
        """Forget the base frame: the next frame runs in full."""
        self._base = None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The base frame, its materialized activations and the last results, as tensors."""
        if self._base is None or self._forward is None:
            return {}
        base = self._base
        state = {
            "base.composite": torch.from_numpy(base.composite.copy()),
            "base.last_true": torch.from_numpy(base.last_true.copy()),
            "base.logits": base.logits.clone(),  # type: ignore[union-attr]
            "base.features": base.features.clone(),  # type: ignore[union-attr]
            "base.computed_since_full": torch.tensor([base.computed_since_full], dtype=torch.long),
            "base.observed_cost": torch.tensor([float("nan") if base.observed_cost is None else base.observed_cost]),
            "base.fallback_chunks": torch.tensor([base.fallback_chunks], dtype=torch.long),
        }
        for name, store in self._forward.stores.items():
            state[f"activation.{name}"] = store.base.clone()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue from a :meth:`state_dict` of an engine with the same model, mode and config."""
        if not state:
            self._base = None
            return
        composite = state["base.composite"].numpy().copy()
        self._activate(composite.shape[0], composite.shape[1])
        assert self._forward is not None
        expected = {f"activation.{name}" for name in self._forward.stores}
        found = {key for key in state if key.startswith("activation.")}
        if expected != found:
            missing = sorted(expected - found)[:3] or sorted(found - expected)[:3]
            raise DataError(f"incremental state does not match this model, mode and config: expected "
                            f"{len(expected)} activations, found {len(found)} (first difference: {missing})")
        for name, store in self._forward.stores.items():
            tensor = state[f"activation.{name}"]
            if tuple(tensor.shape) != tuple(store.base.shape):
                raise DataError(f"incremental state: activation {name} has shape {tuple(tensor.shape)}, "
                                f"expected {tuple(store.base.shape)}")
            store.base.copy_(tensor)
        observed = float(state["base.observed_cost"][0])
        self._base = BaseFrame(composite, state["base.last_true"].numpy().copy(), state["base.logits"].clone(),
                               state["base.features"].clone(), int(state["base.computed_since_full"][0]),
                               observed_cost=None if observed != observed else observed,
                               fallback_chunks=int(state["base.fallback_chunks"][0]))

    # -- internals ------------------------------------------------------------------------
    def _check(self, frames: np.ndarray, frame_ids: Sequence[int]) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise DataError(f"expected frames as an (n, H, W, 3) uint8 array, found {frames.dtype} {frames.shape}")
        if len(frame_ids) != len(frames):
            raise DataError(f"expected one frame id per frame ({len(frames)}), found {len(frame_ids)}")
        return np.ascontiguousarray(frames)

    def _fits(self, frames: np.ndarray) -> bool:
        return self._base is not None and self._base.composite.shape == frames.shape[1:]

    def _graph_for(self, height: int, width: int) -> LayerGraph:
        """The traced layer graph for frames of this size (no effect on the base frame)."""
        if (height, width) not in self._graphs:
            self._graphs[(height, width)] = LayerGraph.trace(self.model, height, width)
        return self._graphs[(height, width)]

    def _activate(self, height: int, width: int) -> LayerGraph:
        """Run frames of this size: a new size starts over without a base frame."""
        graph = self._graph_for(height, width)
        if self._graph is not graph:
            self._graph = graph
            self._forward = BatchForward(graph, self._thresholds(graph), self._tau(), self.config.tile)
            self._base = None
        return graph

    def _thresholds(self, graph: LayerGraph) -> dict[str, float]:
        """Approximate mode's change thresholds, on the layer outputs that are cheap to compare:
        residual sums and convolutions that narrow the channels (projections).  Widening layers
        inherit the stopped changes of their narrow inputs."""
        if self.mode != "approximate" or self.config.activation_threshold <= 0:
            return {}
        return {node.name: self.config.activation_threshold for node in graph.nodes[1:]
                if isinstance(node.layer, Add) or (isinstance(node.layer, Conv) and
                                                   node.layer.out_channels < node.layer.in_channels)}

    def _tau(self) -> float:
        return self.config.tau if self.mode == "approximate" else 1.0

    def _normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 RGB (..., 3) -> normalized float."""
        return pixels.to(torch.float32).div_(255.0).sub_(self.mean).div_(self.std)

    def _execute(self, plan: ChunkPlan) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Run the computed frames of a plan (incremental ones by patches, then the full ones
        densely); skipped frames repeat the result before them."""
        assert self._forward is not None and self._graph is not None
        incremental = [i for i, kind in enumerate(plan.kinds) if kind == "incremental"]
        full = [i for i, kind in enumerate(plan.kinds) if kind == "full"]
        pooled: dict[int, torch.Tensor] = {}
        macs = [0] * plan.length
        if incremental:
            masks = plan.input_masks(self.config.block, incremental)
            dense = self._normalize(torch.from_numpy(plan.composites[incremental]))
            part, conv_macs = self._forward.run_patches(dense[masks], masks, chain=self.mode == "exact",
                                                        dense_input=dense.view(-1, 3))
            for row, i in enumerate(incremental):
                pooled[i], macs[i] = part[row], int(conv_macs[row]) + self._graph.head.linear_macs
        if full:
            part, _ = self._forward.run_dense(self._normalize(torch.from_numpy(plan.composites[full])))
            for row, i in enumerate(full):
                pooled[i], macs[i] = part[row], self._graph.macs_full
        computed = sorted(pooled)
        rows_of: list[int] = []
        logits = features = None
        if computed:
            logits, features = self._graph.head(torch.stack([pooled[i] for i in computed]))
        previous = -1
        for i in range(plan.length):
            if i in pooled:
                previous = computed.index(i)
            rows_of.append(previous)
        return self._gather(rows_of, logits, features) + (macs,)

    def _gather(self, rows: list[int], logits: torch.Tensor | None,
                features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Result rows of a chunk; -1 means the base frame's last result."""
        base = self._base
        parts_l, parts_f = [], []
        for row in rows:
            if row < 0:
                if base is None or base.logits is None or base.features is None:
                    raise DataError("a skipped frame has no computed frame before it")
                parts_l.append(base.logits.view(1, -1))
                parts_f.append(base.features.view(1, -1))
            else:
                assert logits is not None and features is not None
                parts_l.append(logits[row:row + 1])
                parts_f.append(features[row:row + 1])
        return torch.cat(parts_l), torch.cat(parts_f)

    def _advance(self, base: BaseFrame | None, plan: ChunkPlan, frames: np.ndarray, logits: torch.Tensor | None,
                 features: torch.Tensor | None, macs: list[int], graph: LayerGraph) -> BaseFrame | None:
        """The base frame after a chunk: its last computed frame."""
        computed = plan.computed()
        if not computed:
            return base
        last = computed[-1]
        since = base.computed_since_full if base is not None else 0
        for i in computed:
            since = 0 if plan.kinds[i] == "full" else since + 1
        advanced = BaseFrame(
            composite=plan.composites[last].copy(), last_true=frames[last].copy(),
            logits=None if logits is None else logits[last].clone(),
            features=None if features is None else features[last].clone(),
            computed_since_full=since,
            observed_cost=None if base is None else base.observed_cost,
            fallback_chunks=0 if base is None else base.fallback_chunks,
        )
        if self.mode == "approximate":
            advanced = advance_cost(advanced, plan, macs, graph.macs_full)
        return advanced

    def _stats(self, plan: ChunkPlan, frame_ids: Sequence[int], macs: list[int],
               graph: LayerGraph) -> list[FrameStats]:
        height, width = graph.height, graph.width
        stats = []
        for i, frame_id in enumerate(frame_ids[:plan.length]):
            kind = plan.kinds[i]
            grid = plan.grids[i]
            if kind == "full":
                patches = [(0, 0, height, width)]
            elif grid is None:
                patches = []
            else:
                patches = block_patches(grid, self.config.block, height, width)
            stats.append(FrameStats(int(frame_id), kind, patches, int(macs[i]), graph.macs_full))
        return stats

