"""The cost model: multiply-adds of full and incremental inference, from change masks alone.

A convolution costs ``C_in / groups * K_h * K_w * C_out`` multiply-adds per output position:
``H_O * W_O`` positions in full, the changed output positions (the propagated patches)
incrementally.  Linear layers of the head run in full for every computed frame.  Pools and
adds are not counted (their cost is small next to the convolutions').

:func:`estimated_macs` is what the engine decides with (the same in ``plan`` and ``run``):
exact propagation of the changed input positions, or, in approximate mode, propagation in
which the changes past each thresholded layer stay within the footprint of the changed pixels
(activation thresholds stop changes that spread beyond it; the footprint is an estimate, the
run reports what it spent).  Frames whose running total passes ``limit`` stop early.

>>> import torch
>>> from udfs.architectures import build
>>> from engine.inference.incremental.graph import LayerGraph
>>> graph = LayerGraph.trace(build("plain_cnn", num_classes=3), 32, 32)
>>> mask = torch.zeros(2, 32, 32, dtype=torch.bool); mask[1] = True
>>> (propagated_macs(graph, mask) == torch.tensor([192, graph.macs_full])).tolist()
[True, True]
>>> mask[0, :4, :4] = True
>>> estimated_macs(graph, mask, limit=graph.macs_full // 2).tolist() == [250608, graph.macs_full]
True
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.inference.incremental.graph import LayerGraph


def footprint(mask: torch.Tensor, size: tuple[int, int], grid: torch.Tensor | None = None,
              block: int = 1) -> torch.Tensor:
    """(B, h, w): the positions of an h x w plane whose share of the (B, H, W) mask holds a true
    pixel.  When the mask is the (B, gh, gw) block ``grid`` blown up and the plane's stride
    divides the block (or the block the stride), it is read off the grid, which is cheaper."""
    height, width = mask.shape[1:]
    if (height, width) == size:
        return mask
    h, w = size
    exact = grid is not None and (grid.shape[1] * block, grid.shape[2] * block) == (height, width)
    if exact and height % h == 0 and width % w == 0 and height // h == width // w:
        stride = height // h
        if block % stride == 0:
            repeat = block // stride
            return grid.repeat_interleave(repeat, 1).repeat_interleave(repeat, 2)  # type: ignore[union-attr]
        if stride % block == 0:
            return F.max_pool2d(grid.unsqueeze(1).to(torch.float32), stride // block).squeeze(1) > 0  # type: ignore[union-attr]
    return F.adaptive_max_pool2d(mask.unsqueeze(1).to(torch.float32), size).squeeze(1) > 0


def propagated_macs(graph: LayerGraph, mask: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """(B,) multiply-adds of computing each frame's changed positions, head included."""
    return estimated_macs(graph, mask, None, tau)


def estimated_macs(graph: LayerGraph, mask: torch.Tensor, limit: int | None, tau: float = 1.0,
                   thresholded: frozenset[str] = frozenset(), grid: torch.Tensor | None = None,
                   block: int = 1, halo: bool = True) -> torch.Tensor:
    """(B,) multiply-adds of each frame's changed positions (head included), from the input
    masks (B, H, W) (``grid``: the block grid they blow up, if so).  Outputs of ``thresholded``
    layers are limited to the footprint of the input mask; windowed layers are cropped to
    ``tau``; without ``halo`` stride-1 windowed layers do not grow the changed region (as
    approximate mode runs them).  A frame whose total passes ``limit`` stops there and is charged
    full inference (``graph.macs_full``)."""
    from engine.inference.incremental.execution import projective_field_crop
    from engine.inference.incremental.layers import Conv, Pool

    head = graph.head.linear_macs
    total = torch.zeros(mask.shape[0], dtype=torch.long)
    over = torch.zeros(mask.shape[0], dtype=torch.bool)
    live = torch.arange(mask.shape[0])
    masks = {"input": mask}
    footprints: dict[tuple[int, int], torch.Tensor] = {}
    last_use = {name: index for index, node in enumerate(graph.nodes) for name in node.inputs}
    for index, node in enumerate(graph.nodes[1:], start=1):
        out = node.layer.propagate([masks[name] for name in node.inputs])  # type: ignore[union-attr]
        if tau < 1.0 and isinstance(node.layer, (Conv, Pool)) and not node.layer.window.pointwise:
            out = projective_field_crop(out, tau)
        if not halo and isinstance(node.layer, (Conv, Pool)) and node.layer.window.stride == (1, 1) \
                and out.shape == masks[node.inputs[0]].shape:
            out = masks[node.inputs[0]]
        if node.name in thresholded:
            size = (out.shape[1], out.shape[2])
            if size not in footprints:
                footprints[size] = footprint(masks["input"], size, grid, block)
            out = out & footprints[size]
        masks[node.name] = out
        for name in node.inputs:
            if last_use[name] == index and name not in (graph.output, "input"):
                del masks[name]
        per_position = graph.macs_per_position(node)
        if not per_position:
            continue
        total.index_add_(0, live, out.view(out.shape[0], -1).sum(1) * per_position)
        if limit is None:
            continue
        passed = total.index_select(0, live) > limit - head
        if passed.any():
            over[live[passed]] = True
            kept = (~passed).nonzero().squeeze(1)
            live = live.index_select(0, kept)
            if not live.numel():
                break
            masks = {name: value.index_select(0, kept) for name, value in masks.items()}
            footprints = {size: value.index_select(0, kept) for size, value in footprints.items()}
            grid = None if grid is None else grid.index_select(0, kept)
    result = total + head
    result[over] = graph.macs_full
    return result

