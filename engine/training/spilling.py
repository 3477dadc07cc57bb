"""Hydra's model spilling: a model whose parameters, gradients and optimizer state exceed
the device memory budget (``device_memory``) trains one *shard* (consecutive layers) at a time.

Every parameter and optimizer-state tensor lives in a :class:`SpillStore`, one level down
the memory hierarchy: a memory-mapped file on the CPU (where host and device memory are the
same), host memory when the device is a GPU.  The compute device holds one
:class:`DeviceArena` of exactly the budget; a shard's parameters (and, in the backward pass,
its gradients and optimizer state) are copied into the arena, used, written back, and the
arena is emptied before the next shard.  So the peak of resident bytes is the arena's
high-water mark, which is measured as tensors are carved out of it and can never exceed the
budget.  (Activations at shard boundaries and the temporaries of a kernel are working
memory, as in Hydra, and are not counted.)

A step: the forward pass runs shard by shard without gradients, keeping only each shard's
input; the backward pass goes through the shards in reverse, re-running each shard's
forward from its saved input (re-materialization), back-propagating the gradient from the
shard after it, and applying the optimizer to that shard at once.  With torch's
single-tensor optimizers this is the same arithmetic as plain training: the same weights,
bit for bit.  Several models of a grid interleave their shards (shard alternation): each
model is a generator that pauses after every shard.

>>> from engine.training.architectures import build_network
>>> from engine.training.options import parse_options
>>> config = parse_options({"architecture": "small_cnn", "optimizer": "adam"}).configurations[0]
>>> net = build_network("small_cnn", num_classes=10)
>>> shards = plan_shards(training_layers(net), config, budget=1 << 20, frozen=set())
Traceback (most recent call last):
...
engine.errors.DataError: device_memory = 1.0 MiB is smaller than the largest layer, features.10 (Linear), which needs 3.1 MiB for its parameters, gradients and optimizer state; give at least 3.1 MiB
>>> [len(s.layers) for s in plan_shards(training_layers(net), config, budget=3200 << 10, frozen=set())]
[10, 3]
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from engine.errors import DataError, OperationalError
from engine.training.architectures import training_layers
from engine.training.objective import row_losses
from engine.training.optimizers import initial_state, make_optimizer, state_slots
from engine.training.options import Configuration
from engine.training.trainer import EpochMetrics, Setup, Steps, build_initial, check_device

_FLOAT = 4  # bytes of a float32


def format_bytes(n: float) -> str:
    """``3.1 MiB`` and the like."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


def layer_bytes(layer: nn.Module, prefix: str, configuration: Configuration, frozen: set[str]) -> int:
    """Resident bytes of a layer in its backward pass: parameters, plus for trainable ones
    their gradients and optimizer state."""
    total = 0
    slots = len(state_slots(configuration))
    for name, p in layer.named_parameters():
        size = p.numel() * _FLOAT
        total += size
        if f"{prefix}.{name}" not in frozen:
            total += size * (1 + slots) + (_FLOAT if configuration.optimizer == "adam" else 0)
    return total


@dataclass(frozen=True)
class Shard:
    """Consecutive layers resident together."""

    layers: tuple[tuple[str, nn.Module], ...]
    bytes: int


def plan_shards(layers: list[tuple[str, nn.Module]], configuration: Configuration, budget: int,
                frozen: set[str]) -> list[Shard]:
    """Pack consecutive layers into shards that fit ``budget``; DataError naming the largest
    layer when it alone does not fit."""
    needs = [layer_bytes(layer, name, configuration, frozen) for name, layer in layers]
    largest = max(range(len(layers)), key=lambda i: needs[i]) if layers else 0
    if layers and needs[largest] > budget:
        name, layer = layers[largest]
        raise DataError(
            f"device_memory = {format_bytes(budget)} is smaller than the largest layer, {name} "
            f"({type(layer).__name__}), which needs {format_bytes(needs[largest])} for its parameters, gradients "
            f"and optimizer state; give at least {format_bytes(needs[largest])}"
        )
    shards: list[Shard] = []
    current: list[tuple[str, nn.Module]] = []
    size = 0
    for (name, layer), need in zip(layers, needs):
        if current and size + need > budget:
            shards.append(Shard(tuple(current), size))
            current, size = [], 0
        current.append((name, layer))
        size += need
    shards.append(Shard(tuple(current), size))
    return shards


class DeviceArena:
    """The device memory spilled models may hold: one block of ``budget`` bytes.

    :meth:`take` carves a tensor out of the block (its own tensor over the block's storage,
    so autograd sees it as independent); :meth:`release` empties the block.  ``peak_bytes``
    is the most ever taken at once.
    """

    def __init__(self, budget: int, device: torch.device) -> None:
        self.budget = budget
        self.block = torch.empty(budget // _FLOAT, dtype=torch.float32, device=device)
        self.used = 0
        self.peak_bytes = 0

    def take(self, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        """A float32 tensor of ``shape`` carved out of the block."""
        numel = int(np.prod(shape)) if len(shape) else 1
        if (self.used + numel) * _FLOAT > self.budget:
            raise OperationalError(f"device arena of {format_bytes(self.budget)} exhausted (a shard was planned too large)")
        tensor = torch.empty(0, dtype=torch.float32, device=self.block.device)
        tensor.set_(self.block.untyped_storage(), self.used, tuple(shape), _contiguous_strides(tuple(shape)))
        self.used += numel
        self.peak_bytes = max(self.peak_bytes, self.used * _FLOAT)
        return tensor

    def release(self) -> None:
        """Empty the block (every tensor taken is dead by now)."""
        self.used = 0

    def contains(self, tensor: torch.Tensor) -> bool:
        """True when ``tensor``'s data lies in this memory."""
        start = self.block.data_ptr()
        return start <= tensor.data_ptr() < start + self.budget


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


class SpillStore:
    """A model's parameters and optimizer state in one float32 block: a memory-mapped file
    (CPU device) or pinned host memory (GPU)."""

    def __init__(self, path: str, entries: list[tuple[str, tuple[int, ...]]], device: torch.device) -> None:
        total = sum(int(np.prod(shape)) if shape else 1 for _, shape in entries)
        if device.type == "cpu":
            self.array: np.memmap[Any, Any] | None = np.memmap(path, dtype=np.float32, mode="w+",
                                                               shape=(max(total, 1),))
            self.flat = torch.from_numpy(self.array)
        else:
            self.array = None
            self.flat = torch.empty(max(total, 1), dtype=torch.float32, pin_memory=True)
        self.path = path
        self.tensors: dict[str, torch.Tensor] = {}
        offset = 0
        for key, shape in entries:
            n = int(np.prod(shape)) if shape else 1
            self.tensors[key] = self.flat[offset:offset + n].view(shape)
            offset += n

    def contains(self, tensor: torch.Tensor) -> bool:
        """True when ``tensor``'s data lies in this memory."""
        start = self.flat.data_ptr()
        return start <= tensor.data_ptr() < start + self.flat.numel() * _FLOAT

    def close(self) -> None:
        """Delete the store (and its file)."""
        self.tensors = {}
        self.flat = torch.empty(0)
        if self.array is not None:
            del self.array
            self.array = None
            if os.path.exists(self.path):
                os.remove(self.path)


class SpilledRun:
    """One configuration trained shard by shard within a device arena (see the module docstring).
    It has :class:`engine.training.trainer.ModelRun`'s steps, so the same loop drives it."""

    def __init__(self, configuration: Configuration, setup: Setup, arena: DeviceArena, rotation: int = 0) -> None:
        self.configuration = configuration
        self.setup = setup
        self.rotation = rotation
        self.arena = arena
        self.device = check_device(setup.device)
        with torch.random.fork_rng(devices=[]):
            self.network = build_initial(configuration, setup)
            self.rng = torch.get_rng_state()
        self.frozen = {n for n, p in self.network.named_parameters() if not p.requires_grad}
        self.shards = plan_shards(training_layers(self.network), configuration, arena.budget, self.frozen)
        self.store = SpillStore(os.path.join(setup.data.folder, f"spill_{configuration.index}.bin"),
                                self._entries(), self.device)
        self._move_parameters_to_store()
        self.history: list[EpochMetrics] = []
        self.bytes_read = 0
        self.bytes_moved = 0
        self.stopped_early = False
        self.network.train()

    def _entries(self) -> list[tuple[str, tuple[int, ...]]]:
        entries = []
        for name, p in self.network.named_parameters():
            entries.append((f"param.{name}", tuple(p.shape)))
            if name not in self.frozen:
                for slot, value in initial_state(p, self.configuration).items():
                    entries.append((f"state.{name}.{slot}", tuple(value.shape)))
        return entries

    def _move_parameters_to_store(self) -> None:
        with torch.no_grad():
            for name, p in self.network.named_parameters():
                self.store.tensors[f"param.{name}"].copy_(p)
                p.data = self.store.tensors[f"param.{name}"]
                if name not in self.frozen:
                    for slot, value in initial_state(p, self.configuration).items():
                        self.store.tensors[f"state.{name}.{slot}"].copy_(value)

    # Moving a shard in and out --------------------------------------------------------
    def _load(self, shard: Shard, training: bool) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
        params: dict[str, torch.Tensor] = {}
        states: dict[str, dict[str, torch.Tensor]] = {}
        for layer_name, layer in shard.layers:
            for local, p in layer.named_parameters():
                name = f"{layer_name}.{local}"
                resident = self.arena.take(p.shape)
                resident.copy_(self.store.tensors[f"param.{name}"], non_blocking=True)
                self.bytes_moved += p.numel() * _FLOAT
                if training and name not in self.frozen:
                    resident.requires_grad_(True)
                    resident.grad = self.arena.take(p.shape).zero_()
                    states[name] = {}
                    for slot in (*state_slots(self.configuration), *(("step",) if self.configuration.optimizer == "adam" else ())):
                        stored = self.store.tensors[f"state.{name}.{slot}"]
                        states[name][slot] = self.arena.take(stored.shape).copy_(stored)
                        self.bytes_moved += stored.numel() * _FLOAT
                params[name] = resident
        return params, states

    def _write_back(self, params: dict[str, torch.Tensor], states: dict[str, dict[str, torch.Tensor]]) -> None:
        with torch.no_grad():
            for name, state in states.items():
                self.store.tensors[f"param.{name}"].copy_(params[name])
                self.bytes_moved += params[name].numel() * _FLOAT
                for slot, value in state.items():
                    self.store.tensors[f"state.{name}.{slot}"].copy_(value)
                    self.bytes_moved += value.numel() * _FLOAT

    @staticmethod
    def _run(shard: Shard, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        for layer_name, layer in shard.layers:
            own = {k[len(layer_name) + 1:]: v for k, v in params.items() if k.startswith(layer_name + ".")}
            x = functional_call(layer, own, (x,)) if own else layer(x)
        return x

    def _optimizer_step(self, params: dict[str, torch.Tensor], states: dict[str, dict[str, torch.Tensor]]) -> None:
        trainable = [params[name] for name in states]
        if not trainable:
            return
        optimizer = make_optimizer(trainable, self.configuration)  # type: ignore[arg-type]  # the arena's views
        for name, state in states.items():
            optimizer.state[params[name]] = state
        optimizer.step()

    # The steps of the training loop ---------------------------------------------------
    def rows_to_read(self, index: np.ndarray) -> tuple[np.ndarray, int]:
        """Every row of the batch (one process)."""
        return index, len(index)

    def step(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, rows: int) -> Steps:
        """One gradient step, a shard at a time; pauses after each shard."""
        boundary = [x]
        for shard in self.shards[:-1]:
            params, _ = self._load(shard, training=False)
            with torch.no_grad():
                boundary.append(self._run(shard, params, boundary[-1]))
            self.arena.release()
            yield
        grad: torch.Tensor | None = None
        total = 0.0
        for i in range(len(self.shards) - 1, -1, -1):
            params, states = self._load(self.shards[i], training=True)
            inp = boundary[i].detach().requires_grad_(i > 0)
            out = self._run(self.shards[i], params, inp)
            if i == len(self.shards) - 1:
                summed = row_losses(out, target, weight).sum()
                total = float(summed.detach())
                (summed / rows).backward()
            else:
                out.backward(grad)
            grad = inp.grad
            self._optimizer_step(params, states)
            self._write_back(params, states)
            del params, states, out, inp
            boundary.pop()
            self.arena.release()
            yield
        return total

    def predict(self, x: torch.Tensor) -> Steps:
        """Logits of ``x``, a shard at a time, without gradients."""
        for shard in self.shards:  # grad mode is set per shard: other models run between the yields
            self.network.eval()
            with torch.no_grad():
                params, _ = self._load(shard, training=False)
                x = self._run(shard, params, x)
            self.network.train()
            self.arena.release()
            yield
        return x

    def with_own_rng(self) -> Any:
        """Run with this model's own random stream."""
        from engine.training.trainer import RngStream

        return RngStream(self)

    def final_state(self) -> dict[str, torch.Tensor]:
        """The trained weights (copied out of the store)."""
        return {k: v.detach().to("cpu").clone() for k, v in self.network.state_dict().items()}

    def close(self) -> None:
        """Delete the store (and its file)."""
        self.store.close()
