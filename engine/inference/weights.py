"""Model weights: read a weights file without unpickling, check it against an architecture,
and keep it as safetensors bytes.

A weights file is either safetensors (``*.safetensors``) or a PyTorch state dict read with
``torch.load(weights_only=True)`` (tensors and plain containers only, never code).  The
check is strict: every key of the architecture's state dict must be present with the same
shape, and no other key may be; the first difference is reported with both shapes.

>>> import torch
>>> from torch import nn
>>> net = nn.Linear(3, 2)
>>> check_state_dict(net, {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}, "linear")
Traceback (most recent call last):
...
engine.errors.DataError: weights do not match architecture linear: key weight has shape (2, 4) in the weights file, expected (2, 3)
>>> state = {"weight": torch.ones(2, 3), "bias": torch.zeros(2)}
>>> check_state_dict(net, state, "linear")
>>> from_safetensors(to_safetensors(state))["weight"].shape
torch.Size([2, 3])
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.errors import DataError

if TYPE_CHECKING:
    import torch
    from torch import nn


def read_weights_file(path: str) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (safetensors, or a tensors-only torch file)."""
    import torch

    if not os.path.exists(path):
        raise DataError(f"weights file not found: {path}")
    if not os.path.isfile(path):
        raise DataError(f"expected a weights file, found a directory: {path}")
    if path.endswith(".safetensors"):
        return _read_safetensors_file(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, zip errors, refused globals: all mean "not a state dict"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(
            f"expected a PyTorch state dict (tensors only) or a .safetensors file at {path}, "
            f"could not read it: {reason}"
        ) from e
    return _state_dict_of(loaded, path)


def _read_safetensors_file(path: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return dict(load_file(path))
    except Exception as e:
        raise DataError(f"expected a safetensors file at {path}, could not read it: {e}") from e


def _state_dict_of(loaded: Any, path: str) -> dict[str, torch.Tensor]:
    """Accept a mapping of tensors, or one nested under 'state_dict' / 'model' (checkpoints)."""
    import torch

    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), Mapping) and len(loaded) <= 4:
                loaded = loaded[key]
                break
        tensors = {str(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(loaded):
            return tensors
    raise DataError(
        f"expected a state dict (a mapping of names to tensors) in {path}, found {type(loaded).__name__}"
    )


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], architecture: str) -> None:
    """DataError naming the first key whose presence or shape differs from ``model``'s."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise DataError(
                f"weights do not match architecture {architecture}: key {key} (shape "
                f"{_shape(tensor)}) is missing from the weights file"
            )
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise DataError(
                f"weights do not match architecture {architecture}: key {key} has shape "
                f"{_shape(state[key])} in the weights file, expected {_shape(tensor)}"
            )
    for key, tensor in state.items():
        if key not in expected:
            raise DataError(
                f"weights do not match architecture {architecture}: the weights file has key {key} "
                f"(shape {_shape(tensor)}), which the architecture does not have"
            )


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(str(d) for d in tensor.shape) + ")"


def to_safetensors(state: Mapping[str, torch.Tensor]) -> bytes:
    """Serialize a state dict to safetensors bytes (contiguous CPU copies, no shared storage)."""
    from safetensors.torch import save

    return save({k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()})


def from_safetensors(data: bytes) -> dict[str, torch.Tensor]:
    """The state dict held in safetensors bytes."""
    from safetensors.torch import load

    return dict(load(bytes(data)))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
