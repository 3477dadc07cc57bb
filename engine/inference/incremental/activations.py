"""Materialized activations and the update patches a batch of frames computes on top of them.

Every tensor is kept channels-last as rows: position ``q = y * W + x`` of a (C, H, W) activation
is row ``q`` of an (H*W, C) matrix.  A :class:`MaterializedActivation` holds the base frame's
rows, two padding rows (zeros for convolutions and average pools, -inf for max pools) and
room for the rows a batch computes.  An :class:`Activation` is one layer output for a batch
of B frames: a mask (B, H, W) of the positions that differ from what the frame would read
otherwise, and the rows of those positions in row-major (frame, y, x) order.

Two semantics decide what a frame reads where its own mask is false:

- ``chain`` (exact mode): the frame before it in the batch, i.e. the last frame that wrote
  that position, or the base frame.  Every frame is an update of its predecessor, so the
  changes per frame stay small.
- common base (approximate mode): the base frame.  Thresholds compare against it.

>>> import torch
>>> store = MaterializedActivation(channels=1, height=1, width=3)
>>> store.base[:] = torch.tensor([[1.0], [2.0], [3.0]])
>>> mask = torch.tensor([[[True, False, False]], [[False, True, False]]])
>>> act = Activation.write(store, mask, torch.tensor([[10.0], [20.0]]), chain=True)
>>> act.full_rows().view(2, 3).tolist()
[[10.0, 2.0, 3.0], [10.0, 20.0, 3.0]]
"""
from __future__ import annotations

import torch

ZERO_ROW = 0
NEG_INF_ROW = 1
OFFSET = 2   # base rows start after the two padding rows
#: Batches of more frames than this find the last writer of a position in a dense table
#: (bit sets of frames must stay exact in float64).
MAX_BIT_FRAMES = 52


class MaterializedActivation:
    """One layer output of the base frame, kept across batches (the engine's state)."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        self.shape = (channels, height, width)
        self.hw = height * width
        self._buffer: torch.Tensor | None = None

    @property
    def buffer(self) -> torch.Tensor:
        """Padding rows, the base rows and room for a batch's rows (allocated when first used:
        a query whose frames all run in full never touches the 160 MB MobileNetV2 keeps at 576x768)."""
        if self._buffer is None:
            self._buffer = torch.zeros(OFFSET + self.hw, self.shape[0])
            self._buffer[NEG_INF_ROW] = float("-inf")
        return self._buffer

    @buffer.setter
    def buffer(self, value: torch.Tensor) -> None:
        self._buffer = value

    @property
    def base(self) -> torch.Tensor:
        """The base frame's rows (H*W, C)."""
        return self.buffer[OFFSET:OFFSET + self.hw]

    def rows(self, count: int) -> torch.Tensor:
        """Room for ``count`` rows of a batch, after the base rows (grows the buffer if needed)."""
        start = OFFSET + self.hw
        if self.buffer.shape[0] < start + count:
            grown = torch.empty(start + max(count, (self.buffer.shape[0] - start) * 3 // 2), self.shape[0])
            grown[:start] = self.buffer[:start]
            self.buffer = grown
        return self.buffer[start:start + count]

    def release(self) -> None:
        """Drop the room for batch rows (keeps the base)."""
        self.buffer = self.buffer[:OFFSET + self.hw].clone()


class Activation:
    """One layer output for a batch: changed positions (mask) and their rows.

    ``store`` is the layer's :class:`MaterializedActivation` when a consumer reads positions
    outside the mask (read-in context); its rows then live in the store's buffer so one
    gather reads base rows, padding rows and new rows alike.
    """

    def __init__(self, mask: torch.Tensor, rows: torch.Tensor, store: MaterializedActivation | None,
                 chain: bool, full: bool = False) -> None:
        self.mask = mask
        self.rows = rows
        self.store = store
        self.chain = chain
        self.full = full
        self.dense: torch.Tensor | None = None     # every position of every frame (B*H*W, C), when known
        self._positions: torch.Tensor | None = None
        self._table: torch.Tensor | None = None
        self._counts: torch.Tensor | None = None
        self._starts: list[int] | None = None
        self._places: torch.Tensor | None = None
        self.advanced = -1     # the last frame whose rows :meth:`advance` wrote into the store's base

    @classmethod
    def write(cls, store: MaterializedActivation | None, mask: torch.Tensor, rows: torch.Tensor, chain: bool,
              full: bool = False) -> Activation:
        """An activation whose rows are copied into ``store`` (when given)."""
        if store is not None and not _inside(rows, store):
            target = store.rows(rows.shape[0])
            target.copy_(rows)
            rows = target
        return cls(mask, rows, store, chain, full)

    @property
    def frames(self) -> int:
        return self.mask.shape[0]

    @property
    def hw(self) -> int:
        return self.mask.shape[1] * self.mask.shape[2]

    def positions(self) -> torch.Tensor:
        """Flat indices (frame * H*W + q) of the rows, in row order."""
        if self._positions is None:
            if self.full:
                self._positions = torch.arange(self.mask.numel())
            else:
                self._positions = self.mask.view(-1).nonzero().squeeze(1)
        return self._positions

    def counts(self) -> torch.Tensor:
        """Rows per frame (B,)."""
        if self._counts is None:
            if self.full:
                self._counts = torch.full((self.frames,), self.hw, dtype=torch.long)
            else:
                self._counts = self.mask.view(self.frames, -1).sum(1)
        return self._counts

    def frame_rows(self, frame: int) -> tuple[int, int]:
        """Where frame ``frame``'s rows start in ``rows``, and how many there are."""
        if self._starts is None:
            self._starts = [0, *self.counts().cumsum(0).tolist()]
        return self._starts[frame], self._starts[frame + 1] - self._starts[frame]

    @property
    def advanceable(self) -> bool:
        """Whether a consumer may :meth:`advance` this activation's base frame by frame (chain
        semantics, a store, not advanced yet)."""
        return self.store is not None and self.chain and self.advanced < 0

    def advance(self, frame: int) -> None:
        """Write frame ``frame``'s rows into the store's base, so the base holds the values
        that frame reads (chain semantics: frames advance in order, each once).

        A consumer that reads context frame by frame reads the base directly instead of
        looking rows up; after the last frame the base is the batch's last frame, as
        :meth:`retire` would leave it (which then has nothing left to do)."""
        if self.store is None or not self.chain or frame != self.advanced + 1:
            raise RuntimeError(f"activation advanced out of order: frame {frame} after {self.advanced}")
        self.advanced = frame
        if self.full:
            self.store.base.copy_(self.rows[frame * self.hw:(frame + 1) * self.hw])
            return
        start, count = self.frame_rows(frame)
        if count:
            if self._places is None:
                self._places = self.positions() % self.hw
            self.store.base.index_copy_(0, self._places[start:start + count], self.rows[start:start + count])

    def table(self) -> torch.Tensor:
        """For every (frame, position): the buffer row holding that frame's value (B*H*W,)."""
        if self._table is None:
            if self.store is None:
                raise RuntimeError("an activation without a store cannot be read outside its mask")
            if self.advanced >= 0:
                raise RuntimeError("an advanced activation's base no longer holds the frames before it")
            self._table = self._build_table()
        return self._table

    def _build_table(self) -> torch.Tensor:
        b, hw = self.frames, self.hw
        start = OFFSET + hw
        if self.full:
            return torch.arange(start, start + b * hw)
        mask = self.mask.view(b, hw)
        rank = mask.view(-1).cumsum(0).view(b, hw) - 1
        writer = torch.where(mask, torch.arange(b).view(b, 1), -1)
        if self.chain:
            writer = writer.cummax(0).values
        rows = rank.gather(0, writer.clamp(min=0)) + start
        return torch.where(writer >= 0, rows, torch.arange(OFFSET, start).view(1, hw)).view(-1)

    def lookup(self, flat: torch.Tensor) -> torch.Tensor:
        """The buffer rows holding the frames' values at flat indices (frame * H*W + q).

        Without building the whole table: the frame that last wrote a position (chain) comes
        from a bit set per position, its row from a binary search in the sorted positions, so
        the cost follows the rows asked for and the rows written, not frames x H x W."""
        if self.store is None:
            raise RuntimeError("an activation without a store cannot be read outside its mask")
        if self.advanced >= 0:
            raise RuntimeError("an advanced activation's base no longer holds the frames before it")
        hw = self.hw
        if self._table is not None or (self.chain and self.frames > MAX_BIT_FRAMES) or flat.numel() > self.frames * hw:
            return self.table().index_select(0, flat)   # as many look-ups as positions: build the table
        if self.full:
            return flat + (OFFSET + hw)
        frame = torch.div(flat, hw, rounding_mode="floor")
        place = flat - frame * hw
        if self.chain:
            written_by = self._writers().index_select(0, place) & ((2 << frame) - 1)   # frames <= this one
            written = written_by > 0
            writer = written_by.clamp(min=1).to(torch.float64).log2_().floor_().to(torch.long)  # the latest
        else:
            written = self.mask.view(-1).index_select(0, flat)
            writer = frame
        rows = torch.searchsorted(self.positions(), writer * hw + place) + (OFFSET + hw)
        return torch.where(written, rows, place + OFFSET)

    def _writers(self) -> torch.Tensor:
        """(H*W,) int64: bit f set when frame f wrote the position."""
        positions = self.positions()
        frame = torch.div(positions, self.hw, rounding_mode="floor")
        bits = torch.zeros(self.hw, dtype=torch.long)
        return bits.index_put_((positions - frame * self.hw,), torch.ones_like(frame) << frame, accumulate=True)

    def read_in_order(self, out_mask: torch.Tensor) -> torch.Tensor:
        """Rows of the frames' values at the true positions of ``out_mask`` (B, H, W), in row
        order, read frame by frame from the base as :meth:`advance` moves it (no look-ups)."""
        assert self.store is not None
        positions = out_mask.view(-1).nonzero().squeeze(1)
        counts = out_mask.view(self.frames, -1).sum(1).tolist()
        result = torch.empty(positions.numel(), self.store.shape[0])
        start = 0
        for frame, count in enumerate(counts):
            self.advance(frame)
            if count:
                torch.index_select(self.store.base, 0, positions[start:start + count] - frame * self.hw,
                                   out=result[start:start + count])
                start += count
        return result

    def gather(self, flat: torch.Tensor) -> torch.Tensor:
        """Rows of the frames' values at flat indices (frame * H*W + q)."""
        return self.store.buffer.index_select(0, self.lookup(flat))  # type: ignore[union-attr]

    def full_rows(self, frames: torch.Tensor | None = None) -> torch.Tensor:
        """Every position of the given frames (all by default), as rows (n*H*W, C)."""
        if self.full and frames is None:
            return self.rows
        if self.dense is not None:
            return self.dense if frames is None else \
                self.dense.view(self.frames, self.hw, -1).index_select(0, frames).view(-1, self.dense.shape[1])
        if frames is None:
            return self.store.buffer.index_select(0, self.table())  # type: ignore[union-attr]
        index = self.table().view(self.frames, self.hw).index_select(0, frames).view(-1)
        return self.store.buffer.index_select(0, index)  # type: ignore[union-attr]

    def retire(self) -> None:
        """Make the last frame of the batch the store's base frame."""
        if self.store is None:
            return
        if self.advanced >= 0:
            if self.advanced != self.frames - 1:
                raise RuntimeError(f"activation advanced to frame {self.advanced} of {self.frames}")
            return
        if self.full:
            self.store.base.copy_(self.rows[-self.hw:])
        elif self.chain:
            written = self._writers().nonzero().squeeze(1)
            rows = self.lookup(written + (self.frames - 1) * self.hw)
            self.store.base.index_copy_(0, written, self.store.buffer.index_select(0, rows))
        else:
            last = self.mask[-1].view(-1).nonzero().squeeze(1)
            if last.numel():
                self.store.base.index_copy_(0, last, self.rows[-last.numel():])


def _inside(rows: torch.Tensor, store: MaterializedActivation) -> bool:
    """Whether ``rows`` is the batch-rows view of the store's buffer."""
    return (rows.untyped_storage().data_ptr() == store.buffer.untyped_storage().data_ptr()
            and rows.storage_offset() == (OFFSET + store.hw) * store.shape[0])
