"""The incremental inference engine: Krypton's update patches over the materialized activations
of the frame computed before, with CBinfer's change thresholds and NoScope's frame skipping in
approximate mode.

>>> import numpy as np, torch
>>> from udfs.architectures import build
>>> model = build("plain_cnn", num_classes=3)
>>> small_frames = IncrementalConfig(fallback_ratio=0.9)   # at 32x32 one block reaches much of the net
>>> engine = IncrementalEngine(model, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "exact", small_frames)
>>> frames = np.zeros((4, 32, 32, 3), np.uint8); frames[1:, 8:16, 8:16] = 255; frames[3, 0:8, 24:32] = 90
>>> logits, features, stats = engine.run(frames, [0, 1, 2, 3])
>>> [s.kind for s in stats], stats[1].patches, stats[3].patches
(['full', 'incremental', 'skipped', 'incremental'], [(8, 8, 8, 8)], [(0, 24, 8, 8)])
>>> x = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
>>> bool((logits - model(x)).abs().max() < 1e-4)
True
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from engine.errors import DataError, ProgrammingError
from engine.inference.incremental.changes import block_mask
from engine.inference.incremental.config import MODES, FidelityAudit, FrameStats, IncrementalConfig
from engine.inference.incremental.decisions import Decider, Decision, Reference
from engine.inference.incremental.execution import BatchForward, dense_pooled
from engine.inference.incremental.graph import LayerGraph
from engine.inference.incremental.layers import Add, Conv
from engine.inference.incremental.patches import block_patches
from engine.inference.networks import dense_batch


class IncrementalEngine:
    """Runs a model over the frames of one video in order, reusing the activations of the frame
    computed before.

    ``mode`` is 'exact' (results equal full inference: logits within 1e-4) or 'approximate'
    (thresholds and skipping from ``config``).  ``run`` may be called many times (one scan =
    many calls); a frame's result depends only on the frames passed since the last segment
    start (or since the engine began), in order, never on how they were split into calls
    (beyond float rounding: batches of other sizes sum in another order).
    ``state_dict``/``load_state_dict`` carry the engine's position across scans.
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
        self._composites: list[np.ndarray] = []     # the frames the last run computed on
        self.audit_cosines: list[float] = []
        #: Seconds spent deciding, computing incremental frames and full frames (reported only:
        #: no decision ever reads a clock).
        self.seconds = {"decide": 0.0, "incremental": 0.0, "full": 0.0}
        self._graphs: dict[tuple[int, int], LayerGraph] = {}
        self._graph: LayerGraph | None = None          # the graph of the frames being run
        self._forward: BatchForward | None = None
        self._decider: Decider | None = None
        self._reference: Reference | None = None
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None   # the last computed (logits, features)
        self._base_valid = False     # whether the stores hold the reference frame's activations

    # -- public API -------------------------------------------------------------------------
    def plan(self, frames_uint8: np.ndarray, frame_ids: Sequence[int],
             segment_start: Sequence[bool] | np.ndarray | None = None) -> list[FrameStats]:
        """What ``run`` would do with these frames, without running the CNN on them: the same
        decisions (made by the same function) and the estimated multiply-adds (in exact mode the
        ones ``run`` spends; in approximate mode an estimate).  Approximate mode's guard judges a
        segment from the multiply-adds its first frames spend, which only running tells: those
        frames (and the segment's start frame) run on a scratch engine.  Leaves the engine
        unchanged."""
        frames = self._check(frames_uint8, frame_ids)
        starts = _starts(segment_start, len(frames))
        graph = self._graph_for(frames.shape[1], frames.shape[2])
        reference = self._reference if graph is self._graph else None
        decider = self._make_decider(graph)
        scratch = IncrementalEngine(self.model, self.mean.tolist(), self.std.tolist(), self.mode, self.config) \
            if self.mode == "approximate" and self.config.guard else None
        if scratch is not None:
            scratch._graphs = self._graphs
        stats: list[FrameStats] = []
        position = 0
        while position < len(frames):
            made, reference = decider.decide(frames[position:], starts[position:], reference)
            assert made, "the decider made no decision"
            ids = list(frame_ids[position:position + len(made)])
            spent = [d.macs for d in made]
            if scratch is not None:
                spent = scratch._sample_spent(made, frames[position:position + len(made)], ids, spent)
            reference = decider.account(reference, made, spent)
            stats += [self._stats(d, frame_id, d.macs) for d, frame_id in zip(made, ids)]
            position += len(made)
        return stats

    def run(self, frames_uint8: np.ndarray, frame_ids: Sequence[int],
            segment_start: Sequence[bool] | np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor,
                                                                               list[FrameStats]]:
        """Logits (n, classes), features (n, F) and what was done, for frames (n, H, W, 3) uint8.

        ``segment_start`` flags frames that start a segment (keyframes): each is computed in
        full, so a segment's results do not depend on what ran before it."""
        frames = self._check(frames_uint8, frame_ids)
        starts = _starts(segment_start, len(frames))
        self._activate(frames.shape[1], frames.shape[2])
        decider = self._decider
        assert decider is not None
        logits: list[torch.Tensor] = []
        features: list[torch.Tensor] = []
        stats: list[FrameStats] = []
        composites: list[np.ndarray] = []
        position = 0
        with torch.inference_mode():
            while position < len(frames):
                started = time.perf_counter()
                decisions, reference = decider.decide(frames[position:], starts[position:], self._reference)
                self.seconds["decide"] += time.perf_counter() - started
                assert decisions, "the decider made no decision"
                ids = frame_ids[position:position + len(decisions)]
                more = position + len(decisions) < len(frames)
                spent = [0] * len(decisions)
                chunks = _chunks(decisions, self.config.batch_frames)
                for index, chunk in enumerate(chunks):
                    # the base activations of a full frame are kept only when the next chunk
                    # starts from them (else they are rebuilt if a later call needs them)
                    keep = any(decisions[i].kind == "incremental" for i in chunks[index + 1]) \
                        if index + 1 < len(chunks) else more
                    chunk_logits, chunk_features, macs = self._execute([decisions[i] for i in chunk], keep)
                    logits.append(chunk_logits)
                    features.append(chunk_features)
                    stats += [self._stats(decisions[i], ids[i], m) for i, m in zip(chunk, macs)]
                    for i, m in zip(chunk, macs):
                        spent[i] = m
                self._reference = decider.account(reference, decisions, spent)
                composites += [d.composite for d in decisions]
                position += len(decisions)
        self._composites = composites
        return torch.cat(logits), torch.cat(features), stats

    @property
    def computed_frames(self) -> np.ndarray | None:
        """(n, H, W, 3) uint8: the frames the last :meth:`run` computed its results on (stacked
        when asked for: a copy of every frame of a call is not free at native size)."""
        return np.stack(self._composites) if self._composites else None

    def fidelity(self) -> FidelityAudit:
        """Approximate mode's fidelity audit over everything run so far."""
        return FidelityAudit.of(self.audit_cosines, self.config.fidelity_bar)

    def reset(self) -> None:
        """Forget the reference frame: the next frame runs in full."""
        self._reference = None
        self._last = None
        self._base_valid = False

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The reference frame, its materialized activations and the last results, as tensors."""
        if self._reference is None or self._forward is None or self._last is None:
            return {}
        self._rebuild_base()
        reference = self._reference
        state = {
            "reference.composite": torch.from_numpy(reference.composite.copy()),
            "reference.last_true": torch.from_numpy(reference.last_true.copy()),
            "reference.counters": torch.tensor([reference.since_full, reference.incremental, reference.sampled,
                                                VERDICTS.index(reference.verdict)], dtype=torch.long),
            "reference.guard": torch.tensor([reference.sample_cost, reference.guard_ratio], dtype=torch.float64),
            "last.logits": self._last[0].clone(),
            "last.features": self._last[1].clone(),
        }
        for name, store in self._forward.stores.items():
            state[f"activation.{name}"] = store.base.clone()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue from a :meth:`state_dict` of an engine with the same model, mode and config."""
        if not state:
            self.reset()
            return
        if "reference.composite" not in state:
            raise DataError("incremental state: expected the keys state_dict() writes, found "
                            f"{sorted(state)[:3]}")
        composite = state["reference.composite"].numpy().copy()
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
        self._base_valid = True
        counters = [int(v) for v in state["reference.counters"]]
        since_full, incremental = counters[:2]
        # a state written before the guard: its sample starts over where the state continues
        sampled, verdict = counters[2:4] if len(counters) >= 4 else (0, 0)
        sample_cost, ratio = (float(v) for v in state.get("reference.guard", torch.zeros(2, dtype=torch.float64)))
        if not self.config.guard:
            verdict = VERDICTS.index("incremental")
        self._reference = Reference(composite, state["reference.last_true"].numpy().copy(), since_full, incremental,
                                    VERDICTS[verdict], sampled, sample_cost, ratio)
        self._last = (state["last.logits"].clone(), state["last.features"].clone())

    def graph(self, height: int, width: int) -> LayerGraph:
        """The model's layer graph for frames of this size (NotSupportedError if the engine
        does not support one of its layers)."""
        return self._graph_for(height, width)

    # -- internals ------------------------------------------------------------------------
    def _sample_spent(self, decisions: list[Decision], frames: np.ndarray, frame_ids: list[int],
                      spent: list[int]) -> list[int]:
        """``spent`` with the multiply-adds the guard's sample frames among ``decisions`` spend
        when run (with their segment's start frame) on this scratch engine; a sample continued
        from a reference this engine does not hold keeps the estimates."""
        from engine.inference.incremental.decisions import STARTS

        chosen = [i for i, d in enumerate(decisions) if d.sample or d.reason in STARTS]
        while chosen and decisions[chosen[0]].reason not in STARTS:
            chosen.pop(0)
        if not chosen:
            return spent
        flags = [decisions[i].reason in STARTS for i in chosen]
        _, _, stats = self.run(frames[chosen], [frame_ids[i] for i in chosen], flags)
        result = list(spent)
        for i, s in zip(chosen, stats):
            result[i] = s.macs
        return result

    def _check(self, frames: np.ndarray, frame_ids: Sequence[int]) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise DataError(f"expected frames as an (n, H, W, 3) uint8 array, found {frames.dtype} {frames.shape}")
        if len(frame_ids) != len(frames):
            raise DataError(f"expected one frame id per frame ({len(frames)}), found {len(frame_ids)}")
        return np.ascontiguousarray(frames)

    def _graph_for(self, height: int, width: int) -> LayerGraph:
        """The traced layer graph for frames of this size (no effect on the reference)."""
        if (height, width) not in self._graphs:
            from engine.inference.runners import dense_graph

            # the graph full mode keeps per model and size: the same prepared weights (whose
            # first use in a process costs the stock kernels a reorder each) across queries
            shared = dense_graph(self.model, height, width)
            self._graphs[(height, width)] = shared if shared is not None else \
                LayerGraph.trace(self.model, height, width)    # raises NotSupportedError, naming the layer
        return self._graphs[(height, width)]

    def _activate(self, height: int, width: int) -> LayerGraph:
        """Run frames of this size: a new size starts over without a reference frame."""
        graph = self._graph_for(height, width)
        if self._graph is not graph:
            self._graph = graph
            self._forward = BatchForward(graph, self._thresholds(graph), self._tau(), self.config.tile,
                                         halo=self.mode == "exact" or self.config.halo)
            self._decider = self._make_decider(graph)
            self.reset()
        return graph

    def _make_decider(self, graph: LayerGraph) -> Decider:
        if graph is self._graph and self._decider is not None:
            return self._decider
        return Decider(self.mode, self.config, graph, frozenset(self._thresholds(graph)))

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

    def _normalize_frames(self, frames: list[np.ndarray]) -> torch.Tensor:
        """(H, W, 3) uint8 frames -> normalized (n, H, W, 3) float, converted straight into one
        float tensor (stacking the uint8 frames first copies each into fresh memory: at native
        size 3 ms a frame)."""
        out = torch.empty((len(frames), *frames[0].shape), dtype=torch.float32)
        for row, frame in zip(out, frames):
            row.copy_(torch.from_numpy(np.ascontiguousarray(frame)))
        return out.div_(255.0).sub_(self.mean).div_(self.std)

    def _rebuild_base(self) -> None:
        """Compute the reference frame's activations (its full frame ran without keeping them)."""
        if not self._base_valid:
            assert self._forward is not None and self._reference is not None
            with torch.inference_mode():
                self._forward.run_dense(self._normalize_frames([self._reference.composite]))
            self._base_valid = True

    def _execute(self, chunk: list[Decision], keep_base: bool = True) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Run one chunk (incremental and skipped frames, then full ones): the incremental frames
        (and an audit) by patches, chained, then the full frames densely; skipped frames repeat
        the result before them.  Returns logits, features and the multiply-adds per frame."""
        assert self._forward is not None and self._graph is not None
        graph = self._graph
        incremental = [i for i, d in enumerate(chunk) if d.kind == "incremental"]
        full = [i for i, d in enumerate(chunk) if d.kind == "full"]
        pooled: dict[int, torch.Tensor] = {}
        macs = [0] * len(chunk)
        if incremental:
            self._rebuild_base()
            grids = np.stack([chunk[i].grid for i in incremental])  # type: ignore[misc]
            masks = torch.from_numpy(block_mask(grids, self.config.block, graph.height, graph.width))
            dense = self._normalize_frames([chunk[i].composite for i in incremental])
            started = time.perf_counter()
            part, conv_macs = self._forward.run_patches(dense[masks], masks, chain=True, dense_input=dense.view(-1, 3))
            self._base_valid = True
            self.seconds["incremental"] += time.perf_counter() - started
            for row, i in enumerate(incremental):
                pooled[i], macs[i] = part[row], int(conv_macs[row]) + graph.head.linear_macs
        if full:
            started = time.perf_counter()
            step = dense_batch(graph.height, graph.width)
            for first in range(0, len(full), step):   # in order: the last frame's activations stay
                some = full[first:first + step]
                keep = keep_base and first + step >= len(full)
                part, _ = self._forward.run_dense(self._normalize_frames([chunk[i].composite for i in some]), keep)
                self._base_valid = keep
                for row, i in enumerate(some):
                    pooled[i] = part[row]
                    macs[i] += graph.macs_full
            self.seconds["full"] += time.perf_counter() - started
        for i, decision in enumerate(chunk):
            if decision.kind == "skipped" and decision.audit:
                macs[i] = graph.macs_full            # its audit: full inference of the true frame
        computed = sorted(pooled)
        logits = features = None
        if computed:
            logits, features = graph.head(torch.stack([pooled[i] for i in computed]))
            for i in incremental:
                if chunk[i].audit:
                    macs[i] += graph.macs_full
                    self._audit(logits[computed.index(i)], chunk[i].frame)  # type: ignore[arg-type]
        return (*self._gather(chunk, computed, logits, features), macs)

    def _audit(self, answer: torch.Tensor, frame: np.ndarray) -> None:
        """Compare an incremental answer with full inference on the frame's true pixels (the
        dense path full frames take, leaving the materialized activations alone)."""
        assert self._graph is not None
        started = time.perf_counter()
        truth, _ = self._graph.head(dense_pooled(self._graph, self._normalize_frames([frame])))
        self.audit_cosines.append(float(torch.nn.functional.cosine_similarity(truth, answer.view(1, -1))))
        self.seconds["audit"] = self.seconds.get("audit", 0.0) + time.perf_counter() - started

    def _gather(self, chunk: list[Decision], computed: list[int], logits: torch.Tensor | None,
                features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Result rows of a chunk: computed frames their own, skipped frames the last one before."""
        parts_l, parts_f = [], []
        for i in range(len(chunk)):
            if i in computed:
                row = computed.index(i)
                assert logits is not None and features is not None
                self._last = (logits[row].clone(), features[row].clone())
            if self._last is None:
                raise DataError("a skipped frame has no computed frame before it")
            if chunk[i].kind == "skipped" and chunk[i].audit:
                self._audit(self._last[0], chunk[i].frame)  # type: ignore[arg-type]
            parts_l.append(self._last[0].view(1, -1))
            parts_f.append(self._last[1].view(1, -1))
        return torch.cat(parts_l), torch.cat(parts_f)

    def _stats(self, decision: Decision, frame_id: int, macs: int) -> FrameStats:
        graph = self._graph_for(decision.composite.shape[0], decision.composite.shape[1])
        height, width = graph.height, graph.width
        if decision.kind == "full":
            patches = [(0, 0, height, width)]
        elif decision.kind == "skipped":
            patches = []
        else:
            patches = block_patches(decision.grid, self.config.block, height, width)  # type: ignore[arg-type]
        return FrameStats(int(frame_id), decision.kind, patches, int(macs), graph.macs_full, decision.reason,
                          decision.guard_ratio)


#: The guard's verdicts on a segment, in the order a persisted state numbers them.
VERDICTS = ("sampling", "incremental", "full")


def _starts(segment_start: Sequence[bool] | np.ndarray | None, count: int) -> np.ndarray:
    if segment_start is None:
        return np.zeros(count, bool)
    starts = np.asarray(segment_start, dtype=bool)
    if starts.shape != (count,):
        raise DataError(f"expected one segment_start flag per frame ({count}), found shape {starts.shape}")
    return starts


def _chunks(decisions: list[Decision], batch: int) -> list[list[int]]:
    """Frames run together: incremental and skipped frames (at most ``batch`` incremental),
    then the full frames after them (at most ``batch``).  A segment start begins a chunk, so a
    segment's batches (and so its answers, to the bit) are those of a run that starts with it."""
    chunks = []
    position = 0
    while position < len(decisions):
        start, incremental, full = position, 0, 0
        while position < len(decisions) and decisions[position].kind != "full" and incremental < batch:
            incremental += decisions[position].kind == "incremental"
            position += 1
        while (position < len(decisions) and decisions[position].kind == "full" and full < batch
               and not (position > start and decisions[position].reason == "segment start")):
            position += 1
            full += 1
        chunks.append(list(range(start, position)))
    return chunks
