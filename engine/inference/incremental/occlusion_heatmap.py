"""Occlusion maps (Krypton's original workload): how much the target class's probability drops
when a patch of the image is hidden, for every patch position.

Every occluded image differs from the original in one patch, so the original's activations
are materialized once and each occluded image is an update patch propagated from them
(exact, batched: all occluded images of a batch call each layer once).  ``method='naive'``
re-runs the whole network on every occluded image, batched, for comparison.

>>> import numpy as np
>>> from udfs.architectures import build
>>> model = build("plain_cnn", num_classes=3)
>>> image = np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)
>>> fast = occlusion_map(model, (0.5,) * 3, (0.5,) * 3, image, patch=8, stride=4)
>>> slow = occlusion_map(model, (0.5,) * 3, (0.5,) * 3, image, patch=8, stride=4, method="naive")
>>> fast.shape, bool(np.abs(fast - slow).max() < 1e-4)
((5, 5), True)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.errors import DataError, ProgrammingError
from engine.inference.incremental.execution import BatchForward
from engine.inference.incremental.graph import LayerGraph

METHODS = ("incremental", "naive")


def patch_positions(height: int, width: int, patch: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (ys, xs) of the occluding patch along each axis."""
    return np.arange(0, height - patch + 1, stride), np.arange(0, width - patch + 1, stride)


def occlusion_map(model: nn.Module, mean: Sequence[float], std: Sequence[float], image_uint8: np.ndarray,
                  patch: int = 16, stride: int = 4, target: int | None = None, method: str = "incremental",
                  batch_size: int = 64, tau: float = 1.0) -> np.ndarray:
    """Heatmap (H', W') of ``p(target | image) - p(target | image with the patch at (i*stride,
    j*stride) set to the mean colour)``; ``target`` defaults to the image's top-1 class.

    ``method='incremental'`` propagates each occluded patch from the original's materialized
    activations (exact unless ``tau`` < 1, Krypton's projective-field threshold);
    ``'naive'`` runs the full network on every occluded image.
    """
    image = _check(image_uint8, patch, stride, method)
    height, width = image.shape[:2]
    mean_t, std_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
    x = torch.from_numpy(image).to(torch.float32).div_(255.0).sub_(mean_t).div_(std_t)   # (H, W, 3)
    ys, xs = patch_positions(height, width, patch, stride)
    corners = [(int(y), int(x0)) for y in ys for x0 in xs]
    model = model.eval()
    with torch.inference_mode():
        if method == "naive":
            original, probabilities = _naive(model, x, corners, patch, batch_size)
        else:
            original, probabilities = _incremental(model, x, corners, patch, batch_size, tau)
        chosen = int(original.argmax()) if target is None else int(target)
        if not 0 <= chosen < original.numel():
            raise DataError(f"expected a target class in [0, {original.numel()}), found {target}")
        drop = original[chosen] - probabilities[:, chosen]
    return drop.view(len(ys), len(xs)).numpy().astype(np.float32)


def _check(image: Any, patch: int, stride: int, method: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"expected an image as an (H, W, 3) uint8 array, found {image.dtype} {image.shape}")
    if method not in METHODS:
        raise ProgrammingError(f"expected method in {METHODS}, found {method!r}")
    if not (1 <= patch <= min(image.shape[:2])) or stride < 1:
        raise DataError(f"expected 1 <= patch <= {min(image.shape[:2])} and stride >= 1, "
                        f"found patch={patch}, stride={stride}")
    return np.ascontiguousarray(image)


def _naive(model: nn.Module, x: torch.Tensor, corners: list[tuple[int, int]], patch: int,
           batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    image = x.permute(2, 0, 1).unsqueeze(0)
    original = torch.softmax(model(image), dim=1)[0]
    parts = []
    for start in range(0, len(corners), batch_size):
        batch = image.repeat(len(corners[start:start + batch_size]), 1, 1, 1)
        for item, (y, x0) in enumerate(corners[start:start + batch_size]):
            batch[item, :, y:y + patch, x0:x0 + patch] = 0.0
        parts.append(torch.softmax(model(batch), dim=1))
    return original, torch.cat(parts)


def _incremental(model: nn.Module, x: torch.Tensor, corners: list[tuple[int, int]], patch: int,
                 batch_size: int, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    height, width = x.shape[:2]
    graph = LayerGraph.trace(model, height, width)
    forward = BatchForward(graph, thresholds={}, tau=tau)
    pooled, _ = forward.run_dense(x.unsqueeze(0))
    logits, _ = graph.head(pooled)
    original = torch.softmax(logits, dim=1)[0]
    parts = []
    for start in range(0, len(corners), batch_size):
        chunk = corners[start:start + batch_size]
        mask = torch.zeros(len(chunk), height, width, dtype=torch.bool)
        for item, (y, x0) in enumerate(chunk):
            mask[item, y:y + patch, x0:x0 + patch] = True
        rows = torch.zeros(int(mask.sum()), 3)
        pooled, _ = forward.run_patches(rows, mask, chain=False, advance_base=False)
        logits, _ = graph.head(pooled)
        parts.append(torch.softmax(logits, dim=1))
    return original, torch.cat(parts)


def plot_occlusion(image: np.ndarray, heatmap: np.ndarray, ax: Any = None, patch: int | None = None,
                   stride: int | None = None, alpha: float = 0.5, cmap: str = "inferno") -> Any:
    """Show ``image`` with the heatmap over it; returns the matplotlib Axes.

    With ``patch`` and ``stride`` each heatmap cell sits over the centre of its patch; without,
    the heatmap is stretched over the whole image.

    >>> import numpy as np, matplotlib
    >>> matplotlib.use("Agg")
    >>> ax = plot_occlusion(np.zeros((32, 32, 3), np.uint8), np.random.rand(5, 5), patch=16, stride=4)
    >>> len(ax.images)
    2
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    height, width = image.shape[:2]
    rows, cols = heatmap.shape
    if patch is not None and stride is not None:
        left, top = patch / 2 - stride / 2, patch / 2 - stride / 2
        extent = (left, left + cols * stride, top + rows * stride, top)
    else:
        extent = (0, width, height, 0)
    ax.imshow(image, extent=(0, width, height, 0))
    shown = ax.imshow(heatmap, cmap=cmap, alpha=alpha, extent=extent, interpolation="bilinear")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="probability drop")
    ax.set_axis_off()
    return ax
