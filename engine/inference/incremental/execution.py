"""Running the layer graph on a batch of frames: dense, or by update patches on the base frame.

:class:`BatchForward` holds the materialized activations (one :class:`MaterializedActivation`
per layer output that some consumer reads outside its changed positions, or that approximate
mode compares against) and runs a batch either

- densely (every frame computed in full: the stock layers on channels-last tensors, keeping
  the last frame's activations as the new base), or
- by patches: each frame's changed input positions propagate layer by layer; every layer is
  called once for all patches of all frames of the batch.

It returns the globally pooled vectors and the multiply-adds spent per frame.

>>> import torch
>>> from udfs.architectures import build
>>> from engine.inference.incremental.graph import LayerGraph
>>> graph = LayerGraph.trace(build("plain_cnn", num_classes=3), 16, 16)
>>> forward = BatchForward(graph, thresholds={})
>>> x = torch.rand(2, 16, 16, 3)
>>> pooled, macs = forward.run_dense(x)
>>> mask = torch.zeros(2, 16, 16, dtype=torch.bool); mask[:, 2:5, 3:9] = True
>>> x2 = x[1:].repeat(2, 1, 1, 1); x2[mask] = 0.0
>>> pooled2, macs2 = forward.run_patches(x2[mask], mask, chain=True)
>>> bool((pooled2 - forward.run_dense(x2)[0]).abs().max() < 1e-5), bool((macs2 < macs).all())
(True, True)
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from engine.inference.incremental.activations import Activation, MaterializedActivation
from engine.inference.incremental.graph import GraphNode, LayerGraph
from engine.inference.incremental.layers import Conv, Pool


class BatchForward:
    """The engine's materialized activations and the two ways of running a batch over them.

    ``thresholds`` maps a layer output name to its change threshold (approximate mode);
    ``tau`` is the projective-field threshold; ``tile`` the output tile side of windowed layers;
    ``route`` forces how windowed layers compute ('tiles', 'shifts' or 'dense'; 'auto' picks per
    layer); without ``halo`` (approximate mode) a stride-1 windowed layer recomputes only the
    positions that changed in its input, not the ring around them its window reaches.
    """

    def __init__(self, graph: LayerGraph, thresholds: Mapping[str, float], tau: float = 1.0, tile: int = 8,
                 route: str = "auto", halo: bool = True) -> None:
        self.graph = graph
        self.thresholds = dict(thresholds)
        self.tau = tau
        self.halo = halo
        self.tile = tile
        self.route = route
        self.stores: dict[str, MaterializedActivation] = {
            node.name: MaterializedActivation(*node.shape)
            for node in graph.nodes
            if graph.reads_context(node.name) or node.name in self.thresholds
        }
        self._last_use = self._last_uses()
        self._in_order = self._sole_context_readers()
        self._pool_in_order = not graph.users.get(graph.output)    # nothing but the global pool reads it

    def _sole_context_readers(self) -> dict[str, bool]:
        """Per layer, whether it is the only layer reading its inputs' context (so, with chain
        semantics, it may advance their bases frame by frame as it reads them)."""
        by_name = self.graph.by_name
        readers = {name: [user for user in users if by_name[user].layer.reads_context]  # type: ignore[union-attr]
                   for name, users in self.graph.users.items()}
        return {node.name: all(readers.get(name) == [node.name] for name in node.inputs)
                for node in self.graph.nodes[1:]}

    def _last_uses(self) -> dict[str, int]:
        last = {}
        for index, node in enumerate(self.graph.nodes):
            for name in node.inputs:
                last[name] = index
        last[self.graph.output] = len(self.graph.nodes)
        return last


    # -- dense ----------------------------------------------------------------------------
    def run_dense(self, x: torch.Tensor, keep_base: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Full inference of (B, H, W, 3) normalized frames; with ``keep_base`` the last frame
        becomes the base (copying its activations costs a pass over them: large frames)."""
        pooled = dense_pooled(self.graph, x, self._keep_base if keep_base else None)
        macs = torch.full((x.shape[0],), self.graph.macs_full - self.graph.head.linear_macs, dtype=torch.long)
        return pooled, macs

    def _keep_base(self, name: str, y: torch.Tensor) -> None:
        store = self.stores.get(name)
        if store is not None:
            store.base.copy_(y[-1].permute(1, 2, 0).reshape(store.hw, -1))

    # -- patches --------------------------------------------------------------------------
    def run_patches(self, rows: torch.Tensor, mask: torch.Tensor, chain: bool, advance_base: bool = True,
                    dense_input: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames that differ from the base frame (or, with ``chain``, from the frame before them)
        only where ``mask`` (B, H, W) is true; ``rows`` (P, 3) are their normalized pixels there,
        in row-major (frame, y, x) order.  With ``advance_base`` the last frame becomes the base;
        without, the base stays (many modified copies of one image: occlusion maps).  ``dense_input``
        (B*H*W, 3), the frames' every normalized pixel, spares the first layer its gathers."""
        retire = Activation.retire if advance_base else (lambda act: None)
        in_order = chain and advance_base
        b = mask.shape[0]
        full_input = bool(mask.all())
        acts = {"input": Activation.write(self.stores["input"], mask, rows, chain, full=full_input)}
        acts["input"].dense = dense_input
        counts, costs = [], []
        for index, node in enumerate(self.graph.nodes[1:], start=1):
            act = self._patch_layer(node, [acts[name] for name in node.inputs], chain,
                                    in_order and self._in_order[node.name])
            if self.graph.macs_per_position(node):
                counts.append(act.counts())
                costs.append(self.graph.macs_per_position(node))
            acts[node.name] = act
            for name in node.inputs:
                if self._last_use[name] == index:
                    retire(acts.pop(name))
        final = acts.pop(self.graph.output)
        channels, height, width = self.graph.by_name[self.graph.output].shape
        if in_order and self._pool_in_order and final.advanceable and not final.full:
            pooled = torch.empty(b, channels)
            for frame in range(b):     # the base advanced frame by frame: no look-ups
                final.advance(frame)
                torch.mean(final.store.base, dim=0, out=pooled[frame])  # type: ignore[union-attr]
        else:
            pooled = final.full_rows().view(b, height * width, channels).mean(dim=1)
        retire(final)
        macs = torch.stack(counts, dim=1) @ torch.tensor(costs) if counts else torch.zeros(b, dtype=torch.long)
        return pooled, macs

    def _patch_layer(self, node: GraphNode, inputs: list[Activation], chain: bool, in_order: bool = False
                     ) -> Activation:
        layer = node.layer
        full = all(act.full for act in inputs)
        if full:
            out_mask = torch.ones(inputs[0].frames, node.shape[1], node.shape[2], dtype=torch.bool)
        else:
            out_mask = layer.propagate([act.mask for act in inputs])  # type: ignore[union-attr]
            if self.tau < 1.0 and isinstance(layer, (Conv, Pool)) and not layer.window.pointwise:
                out_mask = projective_field_crop(out_mask, self.tau)
            if not self.halo and isinstance(layer, (Conv, Pool)) and layer.window.stride == (1, 1) \
                    and out_mask.shape == inputs[0].mask.shape:
                out_mask = inputs[0].mask     # approximate: a stride-1 window does not grow the region
            # deep layers often change everywhere: then rows are whole frames and need no index tables
            full = isinstance(layer, (Conv, Pool)) and not layer.window.pointwise and bool(out_mask.all())
        same_mask = out_mask is inputs[0].mask
        store = self.stores.get(node.name)
        threshold = self.thresholds.get(node.name, 0.0)
        out = None
        if store is not None and threshold == 0:
            out = store.rows(inputs[0].rows.shape[0] if same_mask else int(out_mask.sum()))
        rows = layer.forward(inputs, out_mask, self.tile, out, self.route, in_order)  # type: ignore[union-attr]
        if threshold > 0:
            return _threshold(rows, out_mask, store, threshold, chain)  # type: ignore[arg-type]
        act = Activation.write(store, out_mask, rows, chain, full=full)
        if same_mask:
            act._positions, act._counts = inputs[0]._positions, inputs[0]._counts
        return act


def dense_pooled(graph: LayerGraph, x: torch.Tensor,
                 keep: Callable[[str, torch.Tensor], None] | None = None) -> torch.Tensor:
    """The globally pooled vectors (B, C) of full inference of (B, H, W, 3) normalized frames
    through the graph's layers (batch-norm folded, channels-last, 1x1 convolutions as matrix
    products); ``keep(name, output)`` sees every layer output."""
    last_use = {name: index for index, node in enumerate(graph.nodes) for name in node.inputs}
    values: dict[str, torch.Tensor] = {"input": x.permute(0, 3, 1, 2)}
    if keep is not None:
        keep("input", values["input"])
    for index, node in enumerate(graph.nodes[1:], start=1):
        y = node.layer.dense(*[values[name] for name in node.inputs])  # type: ignore[union-attr]
        values[node.name] = y
        if keep is not None:
            keep(node.name, y)
        for name in node.inputs:
            if last_use[name] == index and name != graph.output:
                del values[name]
    return values[graph.output].mean(dim=(2, 3))


def _threshold(rows: torch.Tensor, mask: torch.Tensor, store: MaterializedActivation, threshold: float,
               chain: bool) -> Activation:
    """Keep only changed positions whose largest change over channels exceeds ``threshold``
    against the value the frame would read there otherwise (CBinfer): the base frame's, or with
    ``chain`` the value held after the frames before it (so a frame's answer does not depend on
    which frames share its batch).  The other positions keep that value."""
    positions = mask.view(-1).nonzero().squeeze(1)
    hw = mask.shape[1] * mask.shape[2]
    if chain:
        keep = _kept_in_order(rows, positions % hw, mask.view(mask.shape[0], -1).sum(1).tolist(), store, threshold)
    else:
        keep = store.base.index_select(0, positions % hw).sub_(rows).abs_().amax(dim=1) > threshold
    kept = keep.nonzero().squeeze(1)
    if kept.numel() == positions.numel():
        act = Activation.write(store, mask, rows, chain)
        act._positions = positions
        return act
    mask = torch.zeros_like(mask)
    kept_positions = positions.index_select(0, kept)
    mask.view(-1)[kept_positions] = True
    act = Activation(mask, torch.index_select(rows, 0, kept, out=store.rows(kept.numel())), store, chain)
    act._positions = kept_positions
    return act


def _kept_in_order(rows: torch.Tensor, places: torch.Tensor, counts: list[int], store: MaterializedActivation,
                   threshold: float) -> torch.Tensor:
    """(P,) bool: which rows (frame by frame, ``counts`` rows each, at positions ``places``)
    differ by more than ``threshold`` from the value held there after the frames before."""
    slot = torch.full((store.hw,), -1, dtype=torch.long)
    slot[places] = 0
    union = (slot == 0).nonzero().squeeze(1)
    slot[union] = torch.arange(union.numel())
    local = slot.index_select(0, places)
    held = store.base.index_select(0, union)
    keep = torch.empty(places.numel(), dtype=torch.bool)
    start = 0
    for count in counts:
        if count:
            where, new = local[start:start + count], rows[start:start + count]
            kept = held.index_select(0, where).sub_(new).abs_().amax(dim=1) > threshold
            keep[start:start + count] = kept
            chosen = kept.nonzero().squeeze(1)
            held.index_copy_(0, where.index_select(0, chosen), new.index_select(0, chosen))
        start += count
    return keep


def projective_field_crop(mask: torch.Tensor, tau: float) -> torch.Tensor:
    """Krypton's projective-field threshold: centre-crop each frame's changed region to at most
    ``tau`` of the plane's height and width.

    >>> import torch
    >>> m = torch.zeros(1, 4, 10, dtype=torch.bool); m[0, 1, 1:9] = True
    >>> projective_field_crop(m, 0.5)[0, 1].int().tolist()
    [0, 0, 1, 1, 1, 1, 1, 0, 0, 0]
    """
    _b, height, width = mask.shape
    keep_rows = _centre_range(mask.any(dim=2), max(1, round(tau * height)))
    keep_cols = _centre_range(mask.any(dim=1), max(1, round(tau * width)))
    return mask & keep_rows.unsqueeze(2) & keep_cols.unsqueeze(1)


def _centre_range(present: torch.Tensor, cap: int) -> torch.Tensor:
    """(B, L) bool of the at most ``cap`` positions centred on each row's [first, last] true span."""
    length = present.shape[1]
    index = torch.arange(length)
    first = torch.where(present, index, length).amin(dim=1)
    last = torch.where(present, index, -1).amax(dim=1)
    span = last - first + 1
    start = torch.where(span > cap, first + (span - cap) // 2, first)
    stop = torch.where(span > cap, start + cap, last + 1)
    return (index >= start.view(-1, 1)) & (index < stop.view(-1, 1))

