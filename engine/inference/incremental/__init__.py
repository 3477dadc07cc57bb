"""Krypton-style incremental and approximate CNN inference over video frames, and occlusion maps.

A frame that differs from the base frame in a few blocks is recomputed only where the change
reaches, layer by layer, from the base frame's materialized activations (exact mode);
approximate mode also stops small activation changes, crops projective fields and skips
frames that barely differ.  See :class:`IncrementalEngine` and :func:`occlusion_map`.

>>> import numpy as np
>>> from engine.inference.incremental import IncrementalEngine
>>> from udfs.architectures import build
>>> incremental = IncrementalEngine(build("plain_cnn", num_classes=3), (0.5,) * 3, (0.5,) * 3, "exact")
>>> incremental.plan(np.zeros((2, 16, 16, 3), np.uint8), [0, 1])[1].kind
'skipped'
"""
from __future__ import annotations

import importlib
from typing import Any

from engine.inference.incremental.config import FidelityAudit, FrameStats, IncrementalConfig

__all__ = ["FidelityAudit", "FrameStats", "IncrementalConfig", "IncrementalEngine", "occlusion_map", "plot_occlusion"]

#: Names whose modules need torch, imported on first use so that reading the settings'
#: configuration (done by ``import engine``) does not import torch.
_LAZY = {"IncrementalEngine": "engine", "occlusion_map": "occlusion_heatmap", "plot_occlusion": "occlusion_heatmap"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
