"""Optimizers, and their state as named tensors (so a model's whole training state can hop
between processes as safetensors, or be spilled to a file).

Every optimizer is torch's own single-tensor implementation (``foreach=False``): its update
of a parameter depends only on that parameter's tensors, so updating a shard of the model at
a time (Hydra) gives bit-for-bit the update of the whole model.

>>> import torch
>>> from engine.training.options import parse_options
>>> net = torch.nn.Linear(2, 2)
>>> config = parse_options({"architecture": "mlp", "optimizer": "adam"}).configurations[0]
>>> opt = make_optimizer(net.parameters(), config)
>>> net(torch.ones(1, 2)).sum().backward(); opt.step()
>>> sorted(optimizer_tensors(opt, net))
['optimizer.bias.exp_avg', 'optimizer.bias.exp_avg_sq', 'optimizer.bias.step', 'optimizer.weight.exp_avg', 'optimizer.weight.exp_avg_sq', 'optimizer.weight.step']
>>> state_slots(config)
('exp_avg', 'exp_avg_sq')
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from engine.training.options import Configuration

PREFIX = "optimizer."


def make_optimizer(parameters: Iterable[torch.nn.Parameter], configuration: Configuration) -> torch.optim.Optimizer:
    """torch's SGD (with momentum) or Adam, single-tensor implementation."""
    params = list(parameters)
    if configuration.optimizer == "adam":
        return torch.optim.Adam(params, lr=configuration.lr, weight_decay=configuration.weight_decay, foreach=False)
    return torch.optim.SGD(params, lr=configuration.lr, momentum=configuration.momentum,
                           weight_decay=configuration.weight_decay, foreach=False)


def state_slots(configuration: Configuration) -> tuple[str, ...]:
    """The per-parameter state tensors the optimizer keeps (each the parameter's shape)."""
    if configuration.optimizer == "adam":
        return ("exp_avg", "exp_avg_sq")
    return ("momentum_buffer",) if configuration.momentum > 0 else ()


def initial_state(parameter: torch.Tensor, configuration: Configuration) -> dict[str, torch.Tensor]:
    """The state torch's optimizer would create at its first step, made in advance (zeros:
    SGD's first momentum update ``0 * momentum + grad`` equals its ``clone(grad)`` exactly)."""
    state = {slot: torch.zeros_like(parameter) for slot in state_slots(configuration)}
    if configuration.optimizer == "adam":
        state["step"] = torch.tensor(0.0)
    return state


def optimizer_tensors(optimizer: torch.optim.Optimizer, network: nn.Module) -> dict[str, torch.Tensor]:
    """The optimizer's state as ``optimizer.<parameter name>.<slot>`` tensors."""
    names = {id(p): name for name, p in network.named_parameters()}
    out: dict[str, torch.Tensor] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            for slot, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor):
                    out[f"{PREFIX}{names[id(p)]}.{slot}"] = value
    return out


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, network: nn.Module,
                           tensors: Mapping[str, torch.Tensor]) -> None:
    """Put state saved by :func:`optimizer_tensors` back (copies, on the parameters' device)."""
    parameters = dict(network.named_parameters())
    for key, value in tensors.items():
        if not key.startswith(PREFIX):
            continue
        name, slot = key[len(PREFIX):].rsplit(".", 1)
        p = parameters[name]
        target = value.clone() if slot == "step" else value.to(device=p.device, dtype=p.dtype).clone()
        optimizer.state.setdefault(p, {})[slot] = target
