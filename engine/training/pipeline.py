"""GPipe: the network cut into ``K`` stages of consecutive layers (balanced by their
multiply-adds), each batch cut into ``M`` micro-batches that flow through the stages in
GPipe's clock order, gradients accumulated over the micro-batches (the loss of a micro-batch
is its rows' summed loss over the whole batch's row count, so the accumulated gradient is
the batch's), and activations inside a stage re-materialized in the backward pass
(``torch.utils.checkpoint``): only the stage boundaries are kept.

Stages are balanced by the measured time of each layer's forward and backward pass (on a
probe micro-batch; multiply-adds misjudge the memory-bound layers: group norm, ReLU, pooling).
This machine has one device, so the stages run one after another; each forward and backward
task is timed, and the *bubble* is measured on the timeline those tasks make when each stage
has a device of its own (a task starts when its input is ready and its device is free):
``1 - busy / (K * makespan)``, against GPipe's ``(K-1)/(M+K-1)`` for equal stages.

>>> import torch
>>> from engine.training.architectures import build_network
>>> net = build_network("small_cnn", num_classes=10)
>>> pipe = Pipeline(net, stages=2, micro_batches=4, sample_shape=(3, 28, 28))
>>> len(pipe.stages), sum(len(s) for s in pipe.stages), round(expected_bubble(2, 4), 3)
(2, 13, 0.2)
>>> loss = pipe.step(torch.randn(8, 3, 28, 28), torch.randint(0, 10, (8,)), None, rows=8)
>>> 0 <= pipe.bubble() < 1
True
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from engine.errors import DataError
from engine.training.architectures import training_layers
from engine.training.objective import row_losses


def expected_bubble(stages: int, micro_batches: int) -> float:
    """GPipe's bubble fraction for equal stages: (K-1)/(M+K-1)."""
    return (stages - 1) / (micro_batches + stages - 1)


def layer_costs(layers: list[tuple[str, nn.Module]], sample_shape: tuple[int, ...]) -> list[int]:
    """Multiply-adds of each layer on one input row (element-wise layers: their outputs); an
    estimate of cost that needs no run (the stages themselves are balanced by measured time)."""
    costs = []
    x = torch.zeros((1, *sample_shape), device="meta")
    with torch.no_grad():
        for _, layer in layers:
            total = 0
            meta = copy.deepcopy(layer).to("meta")

            def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
                """Add a leaf module's cost to the layer's."""
                nonlocal total
                if isinstance(module, nn.Conv2d):
                    kh, kw = module.kernel_size
                    total += output.numel() * (module.in_channels // module.groups) * kh * kw
                elif isinstance(module, nn.Linear):
                    total += output.numel() * module.in_features
                else:
                    total += output.numel()

            leaves = [m for m in meta.modules() if not list(m.children())]
            handles = [m.register_forward_hook(hook) for m in leaves]
            x = meta(x)
            for h in handles:
                h.remove()
            costs.append(max(total, 1))
    return costs


def layer_times(layers: list[tuple[str, nn.Module]], sample_shape: tuple[int, ...], rows: int,
                repeats: int = 3) -> list[float]:
    """Measured seconds of each layer's forward and backward pass on ``rows`` rows (the best
    of ``repeats``), on copies of the layers (the network's gradients are not touched)."""
    times = []
    x = torch.randn((rows, *sample_shape))
    for _, layer in layers:
        probe = copy.deepcopy(layer)
        best = float("inf")
        for _ in range(repeats):
            inp = x.detach().requires_grad_()
            started = time.perf_counter()
            out = probe(inp)
            out.backward(torch.ones_like(out))
            best = min(best, time.perf_counter() - started)
        times.append(best)
        with torch.no_grad():
            x = probe(x)
    return times


def balance(costs: list[float], stages: int) -> list[tuple[int, int]]:
    """Cut ``costs`` into ``stages`` consecutive non-empty runs minimizing the largest run's sum."""
    n = len(costs)
    prefix = np.concatenate([[0], np.cumsum(costs)])
    best = np.full((stages + 1, n + 1), np.inf)
    cut = np.zeros((stages + 1, n + 1), dtype=int)
    best[0, 0] = 0
    for k in range(1, stages + 1):
        for end in range(k, n + 1):
            for start in range(k - 1, end):
                value = max(best[k - 1, start], prefix[end] - prefix[start])
                if value < best[k, end]:
                    best[k, end], cut[k, end] = value, start
    bounds, end = [], n
    for k in range(stages, 0, -1):
        bounds.append((int(cut[k, end]), end))
        end = int(cut[k, end])
    return bounds[::-1]


@dataclass(frozen=True)
class StepTimeline:
    """The measured tasks of one pipelined step, laid on K devices."""

    stages: int
    micro_batches: int
    busy: float        # seconds of work, all tasks
    makespan: float    # seconds from the first task's start to the last task's end


def pipeline_makespan(forward: np.ndarray, backward: np.ndarray) -> float:
    """Makespan of GPipe's schedule with task times ``forward[k, m]``, ``backward[k, m]``
    when stage k has a device of its own: forwards in micro-batch order, a flush, then
    backwards in reverse micro-batch order."""
    stages, micro = forward.shape
    end_f = np.zeros((stages, micro))
    for k in range(stages):
        for m in range(micro):
            ready = max(end_f[k - 1, m] if k else 0.0, end_f[k, m - 1] if m else 0.0)
            end_f[k, m] = ready + forward[k, m]
    end_b = np.zeros((stages, micro))
    for k in range(stages - 1, -1, -1):
        for m in range(micro - 1, -1, -1):
            after_next_stage = end_b[k + 1, m] if k < stages - 1 else end_f[stages - 1, m]
            after_previous = end_b[k, m + 1] if m < micro - 1 else end_f[k, micro - 1]
            end_b[k, m] = max(after_next_stage, after_previous) + backward[k, m]
    return float(end_b.max())


class Pipeline:
    """A network's layers cut into stages; runs GPipe steps and measures their bubbles."""

    def __init__(self, network: nn.Module, stages: int, micro_batches: int, sample_shape: tuple[int, ...]) -> None:
        layers = training_layers(network)
        if stages > len(layers):
            raise DataError(f"pipeline_stages = {stages}, but the network has only {len(layers)} layers to cut")
        rows = 8  # a typical micro-batch
        costs = layer_times(layers, sample_shape, rows) if stages > 1 else [1.0] * len(layers)
        bounds = balance(costs, stages)
        self.stages = [nn.Sequential(*[m for _, m in layers[a:b]]) for a, b in bounds]
        self.stage_names = [[n for n, _ in layers[a:b]] for a, b in bounds]
        self.micro_batches = micro_batches
        self.timelines: list[StepTimeline] = []
        self.stage_seconds = np.zeros(len(self.stages))  # forward and backward work per stage, all steps
        self._tasks: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}  # micro-batches -> task times per step

    def step(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, rows: int) -> float:
        """Forward and backward of one batch through the stages; accumulates the parameters'
        gradients (the caller steps the optimizer); returns the sum of the rows' losses."""
        chunks = [c for c in torch.tensor_split(torch.arange(len(x), device=x.device), self.micro_batches) if len(c)]
        k_count, m_count = len(self.stages), len(chunks)
        inputs: list[list[torch.Tensor]] = [[None] * m_count for _ in range(k_count)]  # type: ignore[list-item]
        outputs: list[list[torch.Tensor]] = [[None] * m_count for _ in range(k_count)]  # type: ignore[list-item]
        forward = np.zeros((k_count, m_count))
        backward = np.zeros((k_count, m_count))
        total = 0.0
        for k, m in _clock_order(k_count, m_count):
            started = time.perf_counter()
            inp = x[chunks[m]] if k == 0 else outputs[k - 1][m].detach().requires_grad_()
            out = checkpoint(self.stages[k], inp, use_reentrant=False)
            if k == k_count - 1:
                rows_m = chunks[m]
                losses = row_losses(out, target[rows_m], weight[rows_m] if weight is not None else None)
                out = losses.sum()
                total += float(out.detach())
                out = out / rows
            inputs[k][m], outputs[k][m] = inp, out
            forward[k, m] = time.perf_counter() - started
        for k, m in _reverse_clock_order(k_count, m_count):
            started = time.perf_counter()
            if k == k_count - 1:
                outputs[k][m].backward()
            else:
                torch.autograd.backward(outputs[k][m], inputs[k + 1][m].grad)
            outputs[k][m] = None  # type: ignore[call-overload]
            backward[k, m] = time.perf_counter() - started
        self.timelines.append(StepTimeline(k_count, m_count, float(forward.sum() + backward.sum()),
                                           pipeline_makespan(forward, backward)))
        self.stage_seconds += forward.sum(1) + backward.sum(1)
        self._tasks.setdefault(m_count, []).append((forward, backward))
        return total

    def balance_efficiency(self) -> float:
        """Mean over largest stage work: 1 for balanced stages (then the bubble is GPipe's)."""
        return float(self.stage_seconds.mean() / self.stage_seconds.max()) if self.stage_seconds.max() else 1.0

    def bubble(self) -> float:
        """Measured bubble fraction over the steps so far: idle device time over all device time,
        on the timeline of each task's median time over the steps (a task the machine preempted
        once does not stretch the schedule)."""
        busy = capacity = 0.0
        for steps in self._tasks.values():
            forward = np.median(np.stack([f for f, _ in steps]), axis=0)
            backward = np.median(np.stack([b for _, b in steps]), axis=0)
            busy += len(steps) * float(forward.sum() + backward.sum())
            capacity += len(steps) * len(self.stages) * pipeline_makespan(forward, backward)
        return 1.0 - busy / capacity if capacity else 0.0


def _clock_order(stages: int, micro: int) -> list[tuple[int, int]]:
    return [(k, t - k) for t in range(micro + stages - 1) for k in range(stages) if 0 <= t - k < micro]


def _reverse_clock_order(stages: int, micro: int) -> list[tuple[int, int]]:
    order = []
    for t in range(micro + stages - 1):
        for k in range(stages - 1, -1, -1):
            m = micro - 1 - (t - (stages - 1 - k))
            if 0 <= m < micro:
                order.append((k, m))
    return order
