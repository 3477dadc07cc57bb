"""Change detection on a block grid, the frames the engine computes on, and the frame-skip detector.

A block changed when its largest absolute pixel difference (any channel) exceeds the
threshold.  The engine computes on the base frame with the changed blocks pasted in, so
pixels outside changed blocks keep the base frame's values (the "composite" frame).

>>> import numpy as np
>>> base = np.zeros((6, 10, 3), np.uint8)
>>> frame = base.copy(); frame[5, 9] = 40
>>> changed_blocks(frame[None], base, block=4, threshold=8 / 255)[0].astype(int).tolist()
[[0, 0, 0], [0, 0, 1]]
>>> block_mask(np.array([[[False, True]]]), block=4, height=3, width=6)[0].astype(int).tolist()
[[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1]]
"""
from __future__ import annotations

import numpy as np
import torch


def grid_shape(height: int, width: int, block: int) -> tuple[int, int]:
    return -(-height // block), -(-width // block)


def changed_blocks(frames: np.ndarray, reference: np.ndarray, block: int, threshold: float) -> np.ndarray:
    """(n, gh, gw) bool: blocks of each frame that differ from ``reference`` by more than ``threshold``.

    ``frames`` is (n, H, W, 3) uint8, ``reference`` (H, W, 3) uint8 or (n, H, W, 3);
    ``threshold`` is in [0, 1] pixel units.
    """
    frames, reference = np.ascontiguousarray(frames), np.ascontiguousarray(reference)
    n, height, width, channels = frames.shape
    if threshold == 0 and (block * channels) % 8 == 0 and width % block == 0:
        # any difference at all: compare 8 bytes at a time (a block row is a whole number of words)
        words = (block * channels) // 8
        a = torch.from_numpy(frames.reshape(n, height, -1).view(np.uint64))
        b = torch.from_numpy(reference.reshape(-1, height, width * channels).view(np.uint64))
        differ = (a != b).view(torch.uint8)
        gh = -(-height // block)
        if gh * block != height:
            differ = torch.nn.functional.pad(differ, (0, 0, 0, gh * block - height))
        return differ.view(n, gh, block, width // block, words).amax(dim=4).amax(dim=2).numpy().astype(bool)
    a, b = torch.from_numpy(frames), torch.from_numpy(reference)
    diff = torch.maximum(a, b).sub_(torch.minimum(a, b))
    return (block_max(diff.view(n, height, width * channels), block, channels) > threshold * 255).numpy()


def block_max(values: torch.Tensor, block: int, channels: int = 1) -> torch.Tensor:
    """(n, H, W * channels) -> (n, gh, gw): the maximum over each block of block x block pixels
    (all channels; edge blocks may be partial)."""
    n, height, row = values.shape
    width = row // channels
    gh, gw = grid_shape(height, width, block)
    if (gh * block, gw * block) != (height, width):
        values = torch.nn.functional.pad(values, (0, (gw * block - width) * channels, 0, gh * block - height))
    return values.reshape(n, gh, block, gw, block * channels).amax(dim=(2, 4))


def block_mask(grid: np.ndarray, block: int, height: int, width: int) -> np.ndarray:
    """(n, gh, gw) block grid -> (n, H, W) pixel mask (C-contiguous)."""
    return np.ascontiguousarray(grid.repeat(block, axis=1).repeat(block, axis=2)[:, :height, :width])


def paste_blocks(base: np.ndarray, frame: np.ndarray, grid: np.ndarray, block: int) -> np.ndarray:
    """The composite frame: ``base`` with the changed blocks of ``frame`` pasted in."""
    height, width = base.shape[:2]
    if height % block or width % block:
        mask = block_mask(grid[None], block, height, width)[0]
        return np.where(mask[..., None], frame, base)
    out = base.copy()
    rows, cols = np.nonzero(grid)
    blocks = (height // block, block, width // block, block, base.shape[2])
    out.reshape(blocks)[rows, :, cols] = frame.reshape(blocks)[rows, :, cols]
    return out


def chain_composites(frames: np.ndarray, composite: np.ndarray, block: int,
                     threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Each frame against the composite of the frame before it: (grids, composites)."""
    grids, composites = [], []
    for frame in frames:
        grid = changed_blocks(frame[None], composite, block, threshold)[0]
        composite = paste_blocks(composite, frame, grid, block)
        grids.append(grid)
        composites.append(composite)
    return np.stack(grids), np.stack(composites)


def frame_difference(frames: np.ndarray, reference: np.ndarray, cell: int = 4) -> np.ndarray:
    """NoScope's difference detector: mean squared difference of grey 4x4-cell means, in [0, 1] units.

    >>> import numpy as np
    >>> a = np.zeros((1, 8, 8, 3), np.uint8); b = np.full((8, 8, 3), 255, np.uint8)
    >>> frame_difference(a, b).tolist()
    [1.0]
    """
    delta = grey_cells(frames, cell) - grey_cells(reference[None], cell)
    return (delta ** 2).mean(axis=(1, 2))


def grey_cells(frames: np.ndarray, cell: int = 4) -> np.ndarray:
    """(n, H, W, 3) uint8 frames -> (n, H // cell, W // cell) grey cell means in [0, 1]: what
    :func:`frame_difference` compares (a caller comparing many frames computes them once each).

    >>> import numpy as np
    >>> grey_cells(np.full((1, 8, 8, 3), 255, np.uint8)).shape
    (1, 2, 2)
    """
    cell = max(1, min(cell, frames.shape[1], frames.shape[2]))
    n, height, width = frames.shape[:3]
    h, w = height // cell * cell, width // cell * cell
    # integer sums over each cell's pixels and channels (exact), one division: 40x faster than
    # averaging float copies of native-size frames
    pixels = torch.from_numpy(np.ascontiguousarray(frames[:, :h, :w])).view(n, h // cell, cell, w // cell, cell * 3)
    sums = pixels.sum(dim=(2, 4), dtype=torch.int32).numpy()
    cells: np.ndarray = sums.astype(np.float32) / np.float32(255.0 * 3 * cell * cell)
    return cells
