"""Numeric networks that are a chain of linear layers and activations, run into kept buffers.

A numeric model's forward pass over a batch of 16k rows allocates one output matrix per layer
(16k x 64 floats: 4 MB), and glibc serves blocks that large by mapping fresh pages, which the
kernel then faults in one by one on first write: at 1M rows of an 8-64-2 MLP the faults cost
more than the multiply-adds (bench/RESULTS.md, issue 12).  Plain PyTorch pays them too.  When
the traced network is a chain of ``nn.Linear`` layers and element-wise activations
(ReLU, Identity, Dropout in eval mode), :class:`LinearChain` runs it with ``torch.addmm(...,
out=)`` and in-place activations into buffers it keeps per thread, grown to the largest batch
seen: the same arithmetic (``F.linear`` is ``addmm``), no allocation after the first batch.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
>>> chain = LinearChain.of(net)
>>> x = torch.randn(5, 3)
>>> bool(torch.equal(chain(x), net(x)))
True
>>> LinearChain.of(nn.Sequential(nn.Linear(3, 4), nn.Sigmoid())) is None   # not a supported step
True
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

_FUNCTIONS: dict[object, Callable[[torch.Tensor], object]] = {
    torch.relu: torch.relu_,
    torch.nn.functional.relu: torch.relu_,
}


@dataclass(frozen=True)
class _Linear:
    weight_t: torch.Tensor  # (in, out): the transposed weight, as addmm reads it
    bias: torch.Tensor | None


class LinearChain:
    """Linear layers and in-place activations, run into per-thread buffers (module docstring)."""

    def __init__(self, steps: list[_Linear | Callable[[torch.Tensor], object]]) -> None:
        self.steps = steps
        self._local = threading.local()

    @classmethod
    def of(cls, network: nn.Module) -> LinearChain | None:
        """The chain ``network`` computes, or None when its traced graph is anything else (a
        branch, another layer, a training-mode dropout)."""
        import torch.fx

        try:
            graph = torch.fx.symbolic_trace(network).graph
        except Exception:
            return None
        modules = dict(network.named_modules())
        steps: list[_Linear | Callable[[torch.Tensor], object]] = []
        previous = None
        for node in graph.nodes:
            if node.op == "placeholder":
                if previous is not None:
                    return None
                previous = node
                continue
            if node.op == "output":
                return cls(steps) if node.args[0] is previous and any(isinstance(s, _Linear) for s in steps) else None
            if len(node.args) != 1 or node.args[0] is not previous or node.kwargs:
                return None
            try:
                step = _step(node, modules)
            except _NotAStep:
                return None
            if step is not None and not isinstance(step, _Linear) and not steps:
                return None  # an in-place activation first would write the caller's input
            if step is not None:
                steps.append(step)
            previous = node
        return None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output for ``x`` (rows, inputs): a view of a kept buffer, valid until
        this thread's next call."""
        buffers: list[torch.Tensor] = getattr(self._local, "buffers", [])
        rows = x.shape[0]
        h = x
        index = 0
        for step in self.steps:
            if not isinstance(step, _Linear):
                step(h)
                continue
            width = step.weight_t.shape[1]
            if index == len(buffers) or buffers[index].shape[0] < rows or buffers[index].shape[1] != width:
                buffer = torch.empty((rows, width), dtype=step.weight_t.dtype)
                buffers[index:index + 1] = [buffer]
            out = buffers[index][:rows]
            if step.bias is None:
                torch.mm(h, step.weight_t, out=out)
            else:
                torch.addmm(step.bias, h, step.weight_t, out=out)
            h = out
            index += 1
        self._local.buffers = buffers
        return h


class _NotAStep(Exception):
    """A graph node the chain cannot run."""


def _step(node: torch.fx.Node, modules: dict[str, nn.Module]) -> _Linear | Callable[[torch.Tensor], object] | None:
    """A graph node as a chain step; None for the identity; :class:`_NotAStep` when it is not one."""
    if node.op == "call_module":
        module = modules.get(str(node.target))
        if type(module) is nn.Linear:
            bias = module.bias.detach() if module.bias is not None else None
            return _Linear(module.weight.detach().t(), bias)
        if type(module) is nn.ReLU:
            return torch.relu_
        if type(module) is nn.Identity or (type(module) is nn.Dropout and not module.training):
            return None
        raise _NotAStep(node.target)
    if node.op == "call_function" and node.target in _FUNCTIONS:
        return _FUNCTIONS[node.target]
    raise _NotAStep(node.target)
