"""The cascade's difference detector (NoScope): a frame close enough to the last frame the
cascade decided takes that frame's decision, without running the specialized model, where
the specialized model made it (a frame close to one left to the reference model goes to the
reference model as well: the reference model's answers flicker between nearly identical
frames, and copying them is outside what the thresholds were calibrated on).

Closeness is :func:`engine.inference.incremental.changes.frame_difference` (the mean squared
difference of grey 4x4-cell means, in [0, 1] units) on the shrunk frames the specialized
model reads (each frame's grey cells computed once, by its ``grey_cells``, for a whole batch);
the threshold is the setting ``inference_cascade_difference``.

>>> import numpy as np
>>> frames = np.zeros((4, 8, 8, 3), np.uint8); frames[2:] = 200
>>> detector = DifferenceDetector(threshold=0.001)
>>> detector.anchors(np.array([10, 11, 12, 13]), frames).tolist()   # 11 copies 10, 13 copies 12
[10, 10, 12, 12]
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.inference.incremental.changes import grey_cells


@dataclass
class DifferenceDetector:
    """Streams frames in frame_id order, remembering the last frame it kept."""

    threshold: float
    _anchor_id: int | None = field(default=None, repr=False)
    _anchor: np.ndarray | None = field(default=None, repr=False)   # its grey cells

    def anchors(self, frame_ids: np.ndarray, small: np.ndarray) -> np.ndarray:
        """Per frame, the frame_id whose answer it takes: itself when kept (a model decides it),
        else the last kept frame it is within ``threshold`` of."""
        out = np.empty(len(frame_ids), np.int64)
        cells = grey_cells(small) if len(small) else np.empty((0, 0, 0), np.float32)
        for i, frame_id in enumerate(frame_ids.tolist()):
            if self._anchor is not None and self.threshold > 0 \
                    and float(((cells[i] - self._anchor) ** 2).mean()) <= self.threshold:
                out[i] = frame_id if self._anchor_id is None else self._anchor_id
                continue
            self._anchor_id, self._anchor = frame_id, cells[i]
            out[i] = frame_id
        return out
