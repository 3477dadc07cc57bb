"""Krypton's patch propagation along one axis, and rectangles of changed blocks.

For a layer with kernel ``K``, stride ``S``, padding ``P`` and output width ``W_O``, an update
patch of the input starting at ``x_I`` with width ``W_I`` changes the output patch

    x_O  = max(ceil((P + x_I - K + 1) / S), 0)
    W_OP = min(ceil((W_I + K - 1) / S), W_O)          (Krypton's upper bound)

and computing it reads the input context starting at ``x_R = x_O * S - P`` with width
``W_R = K + (W_OP - 1) * S``.  The engine itself propagates exact position masks (the set of
outputs whose window touches a changed input, see :mod:`.windows`), which never exceed
Krypton's bound; these functions are the bound and the rectangles FrameStats reports.

>>> output_patch(x_in=10, width_in=7, kernel=3, stride=2, padding=1, width_out=112)
(5, 5)
>>> read_in_context(x_out=5, width_out_patch=5, kernel=3, stride=2, padding=1)
(9, 11)
>>> tight_output_patch(x_in=10, width_in=7, kernel=3, stride=2, padding=1, width_out=112)
(5, 4)
"""
from __future__ import annotations

import numpy as np


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def output_patch(x_in: int, width_in: int, kernel: int, stride: int, padding: int, width_out: int) -> tuple[int, int]:
    """Krypton's output patch (start, width) for an input patch (an upper bound on the width)."""
    start = max(_ceil_div(padding + x_in - kernel + 1, stride), 0)
    width = min(_ceil_div(width_in + kernel - 1, stride), width_out)
    return start, width


def read_in_context(x_out: int, width_out_patch: int, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """Krypton's read-in context (start, width) in the input for an output patch."""
    return x_out * stride - padding, kernel + (width_out_patch - 1) * stride


def tight_output_patch(x_in: int, width_in: int, kernel: int, stride: int, padding: int,
                       width_out: int) -> tuple[int, int]:
    """The exact output patch: every output whose window touches the input patch."""
    first = max(_ceil_div(x_in + padding - kernel + 1, stride), 0)
    last = min((x_in + width_in - 1 + padding) // stride, width_out - 1)
    return first, max(last - first + 1, 0)


def grid_rectangles(grid: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Disjoint rectangles (row, col, rows, cols) whose union is exactly the true cells.

    Runs of true cells in each row are merged with an identical run directly above.

    >>> grid_rectangles(np.array([[1, 1, 0, 1], [1, 1, 0, 0], [0, 0, 0, 1]], bool))
    [(0, 0, 2, 2), (0, 3, 1, 1), (2, 3, 1, 1)]
    """
    cells = np.asarray(grid, bool)
    padded = np.zeros((cells.shape[0], cells.shape[1] + 2), np.int8)
    padded[:, 1:-1] = cells
    rows, edges = np.nonzero(np.diff(padded, axis=1))
    by_row: dict[int, set[tuple[int, int]]] = {}
    for index in range(0, len(rows), 2):
        by_row.setdefault(int(rows[index]), set()).add((int(edges[index]), int(edges[index + 1])))
    open_runs: dict[tuple[int, int], list[int]] = {}   # (start, stop) -> [top row, height]
    done: list[tuple[int, int, int, int]] = []
    for row, runs in by_row.items():
        for run in list(open_runs):
            top, height = open_runs[run]
            if run not in runs or top + height != row:
                done.append((top, run[0], height, run[1] - run[0]))
                del open_runs[run]
        for run in runs:
            if run in open_runs:
                open_runs[run][1] += 1
            else:
                open_runs[run] = [row, 1]
    done += [(top, run[0], height, run[1] - run[0]) for run, (top, height) in open_runs.items()]
    return sorted(done)


def block_patches(grid: np.ndarray, block: int, height: int, width: int) -> list[tuple[int, int, int, int]]:
    """Rectangles (y, x, h, w) in pixels of the changed blocks of ``grid``, clipped to the frame.

    >>> block_patches(np.array([[0, 1], [0, 1]], bool), block=8, height=15, width=13)
    [(0, 8, 15, 5)]
    """
    patches = []
    for row, col, rows, cols in grid_rectangles(grid):
        y, x = row * block, col * block
        patches.append((y, x, min(rows * block, height - y), min(cols * block, width - x)))
    return patches
