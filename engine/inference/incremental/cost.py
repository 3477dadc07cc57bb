"""The cost model: multiply-adds of full and incremental inference, from change masks alone.

A convolution costs ``C_in / groups * K_h * K_w * C_out`` multiply-adds per output position:
``H_O * W_O`` positions in full, the changed output positions (the propagated patches)
incrementally.  Linear layers of the head run in full for every computed frame.  Pools and
adds are not counted (their cost is small next to the convolutions').

>>> import torch
>>> from udfs.architectures import build
>>> from engine.inference.incremental.graph import LayerGraph
>>> graph = LayerGraph.trace(build("plain_cnn", num_classes=3), 32, 32)
>>> mask = torch.zeros(2, 32, 32, dtype=torch.bool); mask[1] = True
>>> (propagated_macs(graph, mask) == torch.tensor([192, graph.macs_full])).tolist()
[True, True]
"""
from __future__ import annotations

import torch

from engine.inference.incremental.graph import LayerGraph


def propagated_masks(graph: LayerGraph, mask: torch.Tensor, tau: float = 1.0):  # type: ignore[no-untyped-def]
    """Yield (node, output mask) for every layer, given the input masks (B, H, W)."""
    from engine.inference.incremental.execution import projective_field_crop
    from engine.inference.incremental.layers import Conv, Pool

    masks = {"input": mask}
    last_use = {name: index for index, node in enumerate(graph.nodes) for name in node.inputs}
    for index, node in enumerate(graph.nodes[1:], start=1):
        out = node.layer.propagate([masks[name] for name in node.inputs])  # type: ignore[union-attr]
        if tau < 1.0 and isinstance(node.layer, (Conv, Pool)) and not node.layer.window.pointwise:
            out = projective_field_crop(out, tau)
        masks[node.name] = out
        yield node, out
        for name in node.inputs:
            if last_use[name] == index and name != graph.output:
                del masks[name]


def propagated_macs(graph: LayerGraph, mask: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """(B,) multiply-adds of computing each frame's changed positions, head included."""
    total = torch.zeros(mask.shape[0], dtype=torch.long)
    for node, out in propagated_masks(graph, mask, tau):
        per_position = graph.macs_per_position(node)
        if per_position:
            total += out.view(out.shape[0], -1).sum(1) * per_position
    return total + graph.head.linear_macs
