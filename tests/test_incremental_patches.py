"""Patch propagation geometry: Krypton's formulas, the exact masks the engine propagates, the
rectangles it reports, and change detection on the block grid."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.inference.incremental.changes import (
    block_mask,
    chain_composites,
    changed_blocks,
    frame_difference,
    paste_blocks,
)
from engine.inference.incremental.patches import (
    block_patches,
    grid_rectangles,
    output_patch,
    read_in_context,
    tight_output_patch,
)
from engine.inference.incremental.windows import Window

GEOMETRIES = [(k, s, p) for k, s, p in itertools.product((1, 2, 3, 5, 7), (1, 2, 3), (0, 1, 2, 3)) if p <= k // 2 + 1]


@pytest.mark.parametrize("kernel,stride,padding", GEOMETRIES)
def test_krypton_bound_holds_the_exact_patch_and_its_context(kernel: int, stride: int, padding: int) -> None:
    for length in (7, 13, 224):
        width_out = (length + 2 * padding - kernel) // stride + 1
        if width_out < 1:
            continue
        for x_in, width_in in [(0, 5), (length - 5, 5), (3, 1), (0, length), (length // 2, 7)]:
            if x_in < 0 or x_in + width_in > length:
                continue
            start, width = tight_output_patch(x_in, width_in, kernel, stride, padding, width_out)
            if width == 0:      # a stride above the kernel skips this input: no output reads it
                assert stride > kernel
                continue
            k_start, k_width = output_patch(x_in, width_in, kernel, stride, padding, width_out)
            assert (k_start, min(width, k_width)) == (start, width), (x_in, width_in)
            # the windows of the exact outputs span exactly Krypton's read-in context
            r_start, r_width = read_in_context(start, width, kernel, stride, padding)
            windows = [(o * stride - padding, o * stride - padding + kernel) for o in range(start, start + width)]
            assert (r_start, r_start + r_width) == (windows[0][0], windows[-1][1])


@pytest.mark.parametrize("kernel,stride,padding", GEOMETRIES)
def test_mask_propagation_equals_the_exact_patch(kernel: int, stride: int, padding: int) -> None:
    window = Window((kernel, kernel), (stride, stride), (padding, padding))
    for height, width, (y, x, h, w) in [(225, 223, (0, 0, 7, 5)), (225, 223, (218, 218, 7, 5)),
                                        (13, 11, (6, 0, 5, 11)), (13, 11, (12, 10, 1, 1))]:
        out_h, out_w = window.output_size(height, width)
        if min(out_h, out_w) < 1:
            continue
        mask = torch.zeros(1, height, width, dtype=torch.bool)
        mask[0, y:y + h, x:x + w] = True
        out = window.propagate(mask)[0]
        rows, cols = tight_output_patch(y, h, kernel, stride, padding, out_h), \
            tight_output_patch(x, w, kernel, stride, padding, out_w)
        expected = torch.zeros(out_h, out_w, dtype=torch.bool)
        expected[rows[0]:rows[0] + rows[1], cols[0]:cols[0] + cols[1]] = True
        assert torch.equal(out, expected), (height, width, y, x, h, w)


def test_mask_propagation_of_several_patches_is_the_union() -> None:
    window = Window((3, 3), (2, 2), (1, 1))
    mask = torch.zeros(2, 45, 37, dtype=torch.bool)
    mask[0, 0:7, 0:5] = True
    mask[0, 30:45, 30:37] = True
    mask[1, 20, 20] = True
    reference = F.conv2d(F.pad(mask.float().unsqueeze(1), (1, 1, 1, 1)), torch.ones(1, 1, 3, 3), stride=2)[:, 0] > 0
    assert torch.equal(window.propagate(mask), reference)


def test_grid_rectangles_cover_the_changed_cells_exactly() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        grid = rng.random((int(rng.integers(1, 12)), int(rng.integers(1, 12)))) < 0.35
        cover = np.zeros(grid.shape, int)
        for row, col, rows, cols in grid_rectangles(grid):
            cover[row:row + rows, col:col + cols] += 1
        assert (cover == grid).all()


def test_block_patches_are_clipped_to_odd_frames() -> None:
    grid = np.zeros((29, 28), bool)
    grid[28, 27] = True     # the bottom-right block of a 225x223 frame holds 1x7 pixels
    grid[0, 0:2] = True
    assert block_patches(grid, 8, 225, 223) == [(0, 0, 8, 16), (224, 216, 1, 7)]


def test_changed_blocks_detect_a_change_on_the_border_of_an_odd_frame() -> None:
    base = np.full((225, 223, 3), 100, np.uint8)
    frame = base.copy()
    frame[224, 222, 2] = 110        # 10/255 > 8/255, in the last partial block
    frame[0, 0, 0] = 104            # 4/255: below the threshold
    grid = changed_blocks(frame[None], base, 8, 8 / 255)[0]
    assert grid.shape == (29, 28) and grid.sum() == 1 and grid[28, 27]
    composite = paste_blocks(base, frame, grid, 8)
    assert composite[224, 222, 2] == 110 and composite[0, 0, 0] == 100
    assert block_mask(grid[None], 8, 225, 223)[0].sum() == 1 * 7


def test_chain_composites_accumulate_changes() -> None:
    base = np.zeros((16, 16, 3), np.uint8)
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    frames[0, 0:8, 0:8] = 50
    frames[1, 0:8, 0:8] = 50
    frames[1, 8:16, 8:16] = 60
    frames[2] = frames[1]
    frames[2, 0, 0] = 53                # within the threshold of the composite: not pasted
    grids, composites = chain_composites(frames, base, 8, 8 / 255)
    assert grids.sum(axis=(1, 2)).tolist() == [1, 1, 0]
    assert (composites[2] == frames[1]).all()


def test_frame_difference_is_zero_for_identical_frames() -> None:
    frame = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    assert frame_difference(frame, frame[0]).tolist()[0] == 0.0
    assert frame_difference(frame, frame[0])[1] > 0


@pytest.mark.parametrize("height,width,block", [(576, 768, 8), (45, 37, 8), (45, 40, 8), (64, 64, 16), (40, 40, 4)])
def test_any_change_is_found_word_by_word_as_pixel_by_pixel(height: int, width: int, block: int) -> None:
    rng = np.random.default_rng(height + width)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    frames = np.repeat(base[None], 4, axis=0)
    for k in range(1, 4):                                   # single-bit changes anywhere, borders included
        for _ in range(3 * k):
            frames[k, rng.integers(0, height), rng.integers(0, width), rng.integers(0, 3)] ^= 1
    frames[3, -1, -1, 2] ^= 4
    difference = np.abs(frames.astype(int) - base.astype(int)).max(axis=-1)
    grid_h, grid_w = -(-height // block), -(-width // block)
    padded = np.zeros((4, grid_h * block, grid_w * block), int)
    padded[:, :height, :width] = difference
    expected = padded.reshape(4, grid_h, block, grid_w, block).max(axis=(2, 4)) > 0
    assert (changed_blocks(frames, base, block, 0.0) == expected).all()
    assert expected[0].sum() == 0 and expected[3].sum() >= 3
    # pasting the changed blocks of a frame on the base gives the frame back
    for frame, grid in zip(frames, expected):
        assert (paste_blocks(base, frame, grid, block) == frame).all()
