"""Krypton-style incremental and approximate CNN inference over video frames, and occlusion maps.

A frame that differs from the base frame in a few blocks is recomputed only where the change
reaches, layer by layer, from the base frame's materialized activations (exact mode);
approximate mode also stops small activation changes, crops projective fields and skips
frames that barely differ.  See :class:`IncrementalEngine` and :func:`occlusion_map`.

>>> import numpy as np
>>> from udfs.architectures import build
>>> engine = IncrementalEngine(build("plain_cnn", num_classes=3), (0.5,) * 3, (0.5,) * 3, "exact")
>>> engine.plan(np.zeros((2, 16, 16, 3), np.uint8), [0, 1])[1].kind
'skipped'
"""
from engine.inference.incremental.config import FrameStats, IncrementalConfig
from engine.inference.incremental.engine import IncrementalEngine
from engine.inference.incremental.occlusion import occlusion_map, plot_occlusion

__all__ = ["FrameStats", "IncrementalConfig", "IncrementalEngine", "occlusion_map", "plot_occlusion"]
