"""Windowed layers (convolutions and pools): which outputs an update reaches, and how the
changed outputs are computed from read-in contexts.

An output position changes when its window touches a changed input position, so the
output mask is a max-pool of the input mask with the layer's geometry (Krypton's patch
propagation, exact rather than its upper bound, for any number of patches of any shape).

The changed outputs are computed in one of two ways, whichever the work estimate favours
(a fixed model of gathered floats and multiply-adds: the choice depends only on the masks,
never on measured time, so the same frames always take the same route):

- tiles: the output plane is cut into ``tile`` x ``tile`` tiles; for every tile holding a
  changed output, the read-in context (the tile's window, zero- or -inf-filled where it falls
  in the padding) is gathered from the materialized input with the batch's update pasted in;
  all contexts of all frames are stacked and the stock layer runs once on them with padding 0.
- dense: the frames' full inputs are gathered and the stock layer runs on them (cheaper when
  most of the plane changed, which deep layers see).

>>> import torch
>>> window = Window(kernel=(3, 3), stride=(2, 2), padding=(1, 1))
>>> window.output_size(7, 5)
(4, 3)
>>> mask = torch.zeros(1, 7, 5, dtype=torch.bool); mask[0, 0, 0] = True
>>> window.propagate(mask)[0].nonzero().tolist()
[[0, 0]]
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from engine.inference.incremental.activations import Activation

#: How much a gathered float costs against a streamed one, a multiply-add against a streamed
#: float, and the index arithmetic of one gathered context row (in floats): CPU figures that
#: only steer the choice between tiles and dense.
GATHER_WEIGHT = 2.0
MAC_WEIGHT = 0.1
ROW_INDEX_COST = 32
#: A stock layer on many small contexts costs this many times more per output than on full frames.
TILE_COMPUTE_FACTOR = 1.5
#: One stock-kernel call on a crop (the boxes route) costs about this much besides its work, in floats:
#: about 40 us against about 11,000 floats streamed a microsecond (2 cores, measured once).
BOX_CALL_COST = 450_000
#: A crop streams through the stock kernel at about this fraction of the cost per unit of work
#: of the routes that gather rows (MobileNetV2 on vtest.avi at 576x768, every windowed layer
#: timed both ways: 170-410 against 275-550 ns a million units; the routes' measured times
#: then pick the faster route on 9 of its 10 layer shapes).
BOX_STREAM_FACTOR = 0.6
#: A convolution over at most this many input channels whose input is dense (the image) gathers
#: each changed output's window and multiplies (im2col on the changed positions only).
WINDOW_CHANNELS = 4


@dataclass(frozen=True)
class Tiling:
    """Index tables of one layer's output tiles and their read-in contexts."""

    tile_h: int
    tile_w: int
    tiles_y: int
    tiles_x: int
    context_h: int
    context_w: int
    context_positions: torch.Tensor   # (tiles, context_h * context_w) input position, -1 in padding
    tile_of: torch.Tensor             # (Ho * Wo,) tile of each output position
    offset_in_tile: torch.Tensor      # (Ho * Wo,) row of the position inside its tile's output


@dataclass
class Window:
    """Kernel, stride and padding of a convolution or pool (dilation 1)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    ceil_mode: bool = False
    _tilings: dict[tuple[int, int, int], Tiling] = field(default_factory=dict, repr=False)

    @property
    def pointwise(self) -> bool:
        """A 1x1 window with stride 1 and no padding: output rows map one to one to input rows."""
        return self.kernel == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return (self._axis_size(height, 0), self._axis_size(width, 1))

    def _axis_size(self, size: int, axis: int) -> int:
        k, s, p = self.kernel[axis], self.stride[axis], self.padding[axis]
        if not self.ceil_mode:
            return (size + 2 * p - k) // s + 1
        out = -(-(size + 2 * p - k) // s) + 1
        return out - 1 if (out - 1) * s >= size + p else out

    def propagate(self, mask: torch.Tensor) -> torch.Tensor:
        """Output mask (B, Ho, Wo): outputs whose window touches a true input position."""
        if self.pointwise:
            return mask
        out_h, out_w = self.output_size(mask.shape[1], mask.shape[2])
        rows = _spread(mask, 1, self.kernel[0], self.stride[0], self.padding[0], out_h)
        return _spread(rows, 2, self.kernel[1], self.stride[1], self.padding[1], out_w)

    def tiling(self, height: int, width: int, tile: int) -> Tiling:
        """Tiles of the output plane and the input positions of their contexts (cached per size)."""
        key = (height, width, tile)
        if key not in self._tilings:
            self._tilings[key] = self._make_tiling(height, width, tile)
        return self._tilings[key]

    def _make_tiling(self, height: int, width: int, tile: int) -> Tiling:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        out_h, out_w = self.output_size(height, width)
        th, tw = min(tile, out_h), min(tile, out_w)
        ny, nx = -(-out_h // th), -(-out_w // tw)
        ch, cw = (th - 1) * sh + kh, (tw - 1) * sw + kw
        ys = (torch.arange(ny) * th * sh - ph).view(ny, 1, 1, 1) + torch.arange(ch).view(1, 1, ch, 1)
        xs = (torch.arange(nx) * tw * sw - pw).view(1, nx, 1, 1) + torch.arange(cw).view(1, 1, 1, cw)
        inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        positions = torch.where(inside, ys * width + xs, -1).reshape(ny * nx, ch * cw)
        oy, ox = torch.arange(out_h).view(-1, 1), torch.arange(out_w).view(1, -1)
        tile_of = ((oy // th) * nx + ox // tw).reshape(-1)
        offset = ((oy % th) * tw + ox % tw).reshape(-1)
        return Tiling(th, tw, ny, nx, ch, cw, positions, tile_of, offset)

    def active_tiles(self, out_mask: torch.Tensor, tiling: Tiling) -> torch.Tensor:
        """(n, 2) (frame, tile) pairs of tiles holding a changed output."""
        b, out_h, out_w = out_mask.shape
        th, tw, ny, nx = tiling.tile_h, tiling.tile_w, tiling.tiles_y, tiling.tiles_x
        padded = F.pad(out_mask, (0, nx * tw - out_w, 0, ny * th - out_h))
        return padded.view(b, ny, th, nx, tw).any(4).any(2).view(b, ny * nx).nonzero()


def _spread(mask: torch.Tensor, axis: int, kernel: int, stride: int, padding: int, out_len: int) -> torch.Tensor:
    """Along one axis: output i is true when any input in [i*stride - padding, ... + kernel) is."""
    length = mask.shape[axis]
    span = (out_len - 1) * stride + kernel
    shape = list(mask.shape)
    shape[axis] = max(span, padding + length)
    padded = mask.new_zeros(shape)
    padded.narrow(axis, padding, length).copy_(mask)
    out = None
    for k in range(kernel):
        index = [slice(None)] * 3
        index[axis] = slice(k, k + (out_len - 1) * stride + 1, stride)
        part = padded[tuple(index)]
        out = part.clone() if out is None else out.logical_or_(part)
    return out  # type: ignore[return-value]


@dataclass
class WindowCompute:
    """What a windowed layer runs: the stock op on a dense input and on stacked contexts."""

    window: Window
    out_channels: int
    macs_per_position: int
    dense: Callable[[torch.Tensor], torch.Tensor]       # (n, C, H, W) -> (n, C_out, Ho, Wo), with padding
    on_contexts: Callable[[torch.Tensor], torch.Tensor]  # (n, C, ch, cw) -> (n, C_out, th, tw), padding 0
    pad_row: int
    on_windows: Callable[[torch.Tensor], torch.Tensor] | None = None   # (P, kh*kw*C) windows -> (P, C_out)
    per_offset: torch.Tensor | None = None     # depthwise convolutions: (kh*kw, C) weight of each kernel offset
    bias: torch.Tensor | None = None


def run_window(compute: WindowCompute, act: Activation, out_mask: torch.Tensor, tile: int,
               out: torch.Tensor | None = None, route: str = "auto", in_order: bool = False) -> torch.Tensor:
    """Rows (P, C_out) of the changed outputs (in ``out_mask`` row order) of a windowed layer.

    ``tile`` is the largest tile side tried (halves of it down to 2 are tried too);
    ``route`` is 'auto' (the least estimated work), 'tiles', 'shifts' (depthwise convolutions),
    'dense' or 'boxes'.  With ``in_order`` (chain semantics, this layer the only one reading the
    input's context) the boxes route may run: frame by frame, the input's base is advanced to
    the frame (:meth:`Activation.advance`) and the stock layer runs on crops of it around the
    frame's changed outputs, so nothing is looked up or gathered.
    """
    window = compute.window
    b, height, width = act.mask.shape
    out_h, out_w = out_mask.shape[1:]
    positions = out_mask.view(-1).nonzero().squeeze(1)
    if positions.numel() == 0:
        return torch.empty(0, compute.out_channels) if out is None else out
    frames = out_mask.view(b, -1).any(1).nonzero().squeeze(1)
    channels = act.rows.shape[1]
    if act.dense is not None and compute.on_windows is not None and channels <= WINDOW_CHANNELS and route == "auto":
        return _run_windows(compute, act.dense, positions, (height, width), (out_h, out_w), out)
    per_output = channels + compute.out_channels + compute.macs_per_position * MAC_WEIGHT
    boxes = None
    if in_order and act.advanceable and not act.full and act.dense is None and route in ("auto", "boxes"):
        boxes = frame_boxes(out_mask)
        if route == "boxes":
            return _run_boxes(compute, act, out_mask, boxes, out)
    dense_input_free = (act.full and frames.numel() == b) or act.dense is not None
    dense_work = (0 if dense_input_free else frames.numel() * height * width * channels * GATHER_WEIGHT) \
        + frames.numel() * out_h * out_w * per_output
    best = None
    if route != "dense" and not (act.full and route == "auto"):
        for side in _tile_sides(tile):
            tiling = window.tiling(height, width, side)
            active = window.active_tiles(out_mask, tiling)
            work = active.shape[0] * (tiling.context_h * tiling.context_w * (channels + ROW_INDEX_COST) * GATHER_WEIGHT
                                      + tiling.tile_h * tiling.tile_w * per_output * TILE_COMPUTE_FACTOR)
            if best is None or work < best[0]:
                best = (work, tiling, active)
    if best is None or route == "dense":
        return _run_dense(compute, act, frames, positions, out_h * out_w, out)
    if route == "tiles" or (route == "shifts" and compute.per_offset is None):
        return _run_tiles(compute, act, best[1], best[2], positions, out_h * out_w, out)
    if route == "shifts":
        return _run_shifts(compute, act, positions, (height, width), (out_h, out_w), out)
    tiles_work = best[0] + positions.numel() * compute.out_channels
    kernel = window.kernel[0] * window.kernel[1]
    shifts_work = float("inf") if compute.per_offset is None else \
        positions.numel() * kernel * ((channels + ROW_INDEX_COST) * GATHER_WEIGHT + channels)
    if boxes is not None and _boxes_work(compute, act, boxes, positions.numel()) <= min(dense_work, tiles_work,
                                                                                 shifts_work):
        return _run_boxes(compute, act, out_mask, boxes, out)
    if dense_work <= min(tiles_work, shifts_work):
        return _run_dense(compute, act, frames, positions, out_h * out_w, out)
    if shifts_work < tiles_work:
        return _run_shifts(compute, act, positions, (height, width), (out_h, out_w), out)
    return _run_tiles(compute, act, best[1], best[2], positions, out_h * out_w, out)


def _run_windows(compute: WindowCompute, dense: torch.Tensor, positions: torch.Tensor, size_in: tuple[int, int],
                 size_out: tuple[int, int], out: torch.Tensor | None) -> torch.Tensor:
    """Rows of the changed outputs from their windows, gathered from the dense input (B*H*W, C)
    (zero where a window falls in the padding) and multiplied with the weights."""
    flat, inside = _window_places(compute.window, positions, size_in, size_out)
    windows = dense.index_select(0, flat.view(-1)).view(positions.numel(), flat.shape[1], -1)
    windows.mul_(inside.unsqueeze(-1))
    rows = compute.on_windows(windows.view(positions.numel(), -1))  # type: ignore[misc]
    return rows if out is None else out.copy_(rows)


def _window_places(window: Window, positions: torch.Tensor, size_in: tuple[int, int],
                   size_out: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """For each changed output (flat frame * Ho*Wo + o) and kernel offset: the flat input index
    (frame * H*W + q) it reads, and whether that falls inside the image (else padding)."""
    (kh, kw), (sh, sw), (ph, pw) = window.kernel, window.stride, window.padding
    height, width = size_in
    out_h, out_w = size_out
    frame = torch.div(positions, out_h * out_w, rounding_mode="floor")
    place = positions - frame * (out_h * out_w)
    oy = torch.div(place, out_w, rounding_mode="floor")
    ox = place - oy * out_w
    iy = (oy * sh - ph).view(-1, 1) + torch.arange(kh).repeat_interleave(kw).view(1, -1)
    ix = (ox * sw - pw).view(-1, 1) + torch.arange(kw).repeat(kh).view(1, -1)
    inside = (iy >= 0) & (iy < height) & (ix >= 0) & (ix < width)
    flat = (frame.view(-1, 1) * height + iy.clamp(0, height - 1)) * width + ix.clamp(0, width - 1)
    return flat, inside


def _run_shifts(compute: WindowCompute, act: Activation, positions: torch.Tensor, size_in: tuple[int, int],
                size_out: tuple[int, int], out: torch.Tensor | None) -> torch.Tensor:
    """Rows of the changed outputs of a depthwise convolution, one kernel offset at a time:
    gather the input row each output reads at that offset and accumulate it times the offset's
    weights (no tile reads positions it does not need: best for scattered changes)."""
    flat, inside = _window_places(compute.window, positions, size_in, size_out)
    rows = torch.where(inside, act.lookup(flat.view(-1)).view(flat.shape), compute.pad_row)
    buffer = act.store.buffer  # type: ignore[union-attr]
    result = compute.bias.expand(positions.numel(), -1).clone() if out is None else out.copy_(  # type: ignore[union-attr]
        compute.bias.expand(positions.numel(), -1))  # type: ignore[union-attr]
    weights = compute.per_offset
    for k in range(rows.shape[1]):
        result.addcmul_(buffer.index_select(0, rows[:, k]), weights[k])  # type: ignore[index]
    return result


def bucket(count: int) -> int:
    """``count`` rounded up to one of four sizes per octave (at most 25% more).

    >>> [bucket(n) for n in (1, 5, 100, 101, 1000)]
    [1, 5, 112, 112, 1024]
    """
    if count <= 4:
        return count
    step = 2 ** (math.floor(math.log2(count)) - 2)
    return -(-count // step) * step


def _tile_sides(tile: int) -> list[int]:
    """The tile sides tried: ``tile`` and its halves down to 2."""
    sides = [tile]
    while sides[-1] // 2 >= 2:
        sides.append(sides[-1] // 2)
    return sides


def _run_dense(compute: WindowCompute, act: Activation, frames: torch.Tensor, positions: torch.Tensor,
               out_hw: int, out: torch.Tensor | None) -> torch.Tensor:
    b = act.frames
    height, width = act.mask.shape[1:]
    everything = frames.numel() == b
    rows = act.full_rows(None if everything else frames)
    x = rows.view(frames.numel(), height, width, -1).permute(0, 3, 1, 2)
    y = compute.dense(x)
    y_rows = y.permute(0, 2, 3, 1).reshape(-1, compute.out_channels)
    if everything and positions.numel() == y_rows.shape[0]:
        if out is None:
            return y_rows
        return out.copy_(y_rows)
    slot = torch.full((b,), -1, dtype=torch.long)
    slot[frames] = torch.arange(frames.numel())
    select = slot.index_select(0, positions // out_hw) * out_hw + positions % out_hw
    return torch.index_select(y_rows, 0, select, out=out) if out is not None else y_rows.index_select(0, select)


def _run_tiles(compute: WindowCompute, act: Activation, tiling: Tiling, active: torch.Tensor,
               positions: torch.Tensor, out_hw: int, out: torch.Tensor | None) -> torch.Tensor:
    hw = act.hw
    frame, tile = active[:, 0], active[:, 1]
    context = tiling.context_positions.index_select(0, tile)
    inside = context >= 0
    flat = (frame.view(-1, 1) * hw + context.clamp(min=0)).view(-1)
    index = torch.where(inside.view(-1), act.lookup(flat), compute.pad_row)
    stacked = bucket(active.shape[0])
    if stacked > active.shape[0]:     # padding contexts: a few stack sizes keep the stock kernels' plans cached
        index = torch.cat([index, torch.full(((stacked - active.shape[0]) * context.shape[1],), compute.pad_row)])
    gathered = act.store.buffer.index_select(0, index)  # type: ignore[union-attr]
    contexts = gathered.view(stacked, tiling.context_h, tiling.context_w, -1).permute(0, 3, 1, 2)
    y = compute.on_contexts(contexts)
    y_rows = y.permute(0, 2, 3, 1).reshape(-1, compute.out_channels)
    tiles = tiling.tiles_y * tiling.tiles_x
    slot = torch.full((act.frames * tiles,), -1, dtype=torch.long)
    slot[frame * tiles + tile] = torch.arange(active.shape[0])
    local = positions % out_hw
    per_tile = tiling.tile_h * tiling.tile_w
    select = slot.index_select(0, (positions // out_hw) * tiles + tiling.tile_of.index_select(0, local)) * per_tile \
        + tiling.offset_in_tile.index_select(0, local)
    return torch.index_select(y_rows, 0, select, out=out) if out is not None else y_rows.index_select(0, select)


@dataclass(frozen=True)
class Box:
    """The crop of one frame the boxes route computes: output rows [y0, y1), columns [x0, x1)."""

    y0: int
    y1: int
    x0: int
    x1: int
    count: int                  # the frame's changed outputs, all inside


def frame_boxes(out_mask: torch.Tensor) -> list[Box | None]:
    """Per frame, the crop the boxes route computes: the box around the frame's changed outputs
    (its height and width rounded up by :func:`bucket`; none when nothing changed).

    Cutting it into smaller boxes was tried (runs of rows, an XY cut): on video the changes
    of the early layers spread over the frame, each stock-kernel call costs about 40 us, and
    deeper layers are cheaper by tiles; one box a frame was as fast and cheaper to decide.

    >>> mask = torch.zeros(2, 8, 9, dtype=torch.bool); mask[0, 1, 2] = mask[0, 2, 3] = mask[0, 2, 8] = True
    >>> box, nothing = frame_boxes(mask)
    >>> (box.y0, box.y1, box.x0, box.x1, box.count), nothing
    ((1, 3, 2, 9, 3), None)
    """
    b, height, width = out_mask.shape
    rows, columns = out_mask.any(2), out_mask.any(1)
    counts = out_mask.view(b, -1).sum(1).tolist()
    index_h, index_w = torch.arange(height), torch.arange(width)
    first_y = torch.where(rows, index_h, height).amin(1).tolist()
    last_y = torch.where(rows, index_h, -1).amax(1).tolist()
    first_x = torch.where(columns, index_w, width).amin(1).tolist()
    last_x = torch.where(columns, index_w, -1).amax(1).tolist()
    boxes: list[Box | None] = []
    for frame in range(b):
        if not counts[frame]:
            boxes.append(None)
            continue
        y0, y1, x0, x1 = first_y[frame], last_y[frame] + 1, first_x[frame], last_x[frame] + 1
        h, w = bucket(y1 - y0), bucket(x1 - x0)
        y0, x0 = max(0, min(y0, height - h)), max(0, min(x0, width - w))
        boxes.append(Box(y0, min(height, y0 + h), x0, min(width, x0 + w), counts[frame]))
    return boxes


def _crop_span(window: Window, axis: int, first: int, stop: int, length: int) -> tuple[int, int, int]:
    """Along an axis, the input span [c0, c1) the stock layer (with its own padding) runs on to
    give outputs [first, stop), and the index of output ``first`` in its result.  c0 is a
    multiple of the stride, at least ``ceil(padding / stride)`` outputs before ``first`` (or 0),
    so the outputs kept never read the padding the layer adds at a cut inside the plane."""
    k, s, p = window.kernel[axis], window.stride[axis], window.padding[axis]
    c0 = max(0, (first - (-(-p // s))) * s)
    c1 = min(length, (stop - 1) * s - p + k)
    return c0, c1, first - c0 // s


def _boxes_work(compute: WindowCompute, act: Activation, boxes: list[Box | None], changed: int) -> float:
    """The boxes route's work in the units of :func:`run_window`: each crop streamed through the
    stock layer (input read, outputs written, multiply-adds) plus a call, the changed outputs
    picked and the input rows written to the base."""
    height, width = act.mask.shape[1:]
    channels = act.rows.shape[1]
    work = float(act.rows.shape[0] * channels + changed * compute.out_channels * GATHER_WEIGHT)
    for box in boxes:
        if box is not None:
            c0, c1, _ = _crop_span(compute.window, 0, box.y0, box.y1, height)
            d0, d1, _ = _crop_span(compute.window, 1, box.x0, box.x1, width)
            work += BOX_CALL_COST + (c1 - c0) * (d1 - d0) * channels \
                + (box.y1 - box.y0) * (box.x1 - box.x0) * (compute.out_channels + compute.macs_per_position * MAC_WEIGHT)
    return work * BOX_STREAM_FACTOR


def _run_boxes(compute: WindowCompute, act: Activation, out_mask: torch.Tensor, boxes: list[Box | None],
               out: torch.Tensor | None) -> torch.Tensor:
    """Rows of the changed outputs, frame by frame: the input's base advanced to the frame, the
    stock layer (with its padding) run on the crop the frame's box reads, the changed outputs
    picked from its result."""
    assert act.store is not None
    height, width = act.mask.shape[1:]
    channels = act.store.shape[0]
    result = out if out is not None else torch.empty(int(out_mask.sum()), compute.out_channels)
    start = 0
    for frame, box in enumerate(boxes):
        act.advance(frame)
        if box is None:
            continue
        plane = act.store.base.view(1, height, width, channels).permute(0, 3, 1, 2)
        c0, c1, j0 = _crop_span(compute.window, 0, box.y0, box.y1, height)
        d0, d1, i0 = _crop_span(compute.window, 1, box.x0, box.x1, width)
        y = compute.dense(plane[:, :, c0:c1, d0:d1])
        y_rows = y.permute(0, 2, 3, 1).reshape(-1, compute.out_channels)
        target = result[start:start + box.count]
        box_h, box_w = box.y1 - box.y0, box.x1 - box.x0
        if box.count == box_h * box_w and (j0, i0, y.shape[2], y.shape[3]) == (0, 0, box_h, box_w):
            target.copy_(y_rows)
        else:   # the changed outputs' places in the box, then in the layer's result on the crop
            ly, lx = out_mask[frame, box.y0:box.y1, box.x0:box.x1].nonzero().unbind(1)
            torch.index_select(y_rows, 0, (ly + j0) * y.shape[3] + lx + i0, out=target)
        start += box.count
    return result
