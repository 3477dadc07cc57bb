"""The keyframe index: which packet each frame comes from and where decoding must start.

Packets are numbered in decoding order; frames in presentation order (by pts), which is
the order a decoder outputs them and so the order of ``frame_id``.  To decode frame ``n``
a decoder starts at its *entry packet*, the last keyframe packet at or before the frame's
own packet whose pts is not later than the frame's (so a B-frame that precedes a keyframe
in presentation but follows it in decoding, and may refer to the GOP before, starts one
keyframe earlier), and is fed every packet from there.

>>> import numpy as np
>>> pts = np.array([0, 3, 1, 2, 6, 4, 5])          # I P B B I(open GOP) B B
>>> key = np.array([True, False, False, False, True, False, False])
>>> index = build_index(pts, key, time_base=(1, 10))
>>> index.packet.tolist(), index.entry_packet.tolist()
([0, 2, 3, 1, 5, 6, 4], [0, 0, 0, 0, 0, 0, 4])
>>> index.keyframe.tolist()
[True, False, False, False, False, False, True]
>>> build_index(pts, key, time_base=(1, 10), every=3).frame_pts.tolist()
[0, 3, 6]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import DataError


@dataclass(frozen=True)
class FrameIndex:
    """One row per kept frame (frame_id 0, 1, ...), plus how many packets decoding needs."""

    frame_pts: np.ndarray        # int64, increasing
    ts: np.ndarray               # float64 seconds (pts * time base)
    packet: np.ndarray           # int64: the frame's own packet, in decoding order
    entry_packet: np.ndarray     # int64: the keyframe packet decoding starts from
    keyframe: np.ndarray         # bool: decoding can start at this frame's packet
    packets_needed: int          # packets 0 .. packets_needed - 1 decode every kept frame

    def __len__(self) -> int:
        return len(self.frame_pts)


def build_index(pts: np.ndarray, keyframe: np.ndarray, *, time_base: tuple[int, int], every: int = 1,
                limit: int | None = None) -> FrameIndex:
    """The index of packets (decoding order, starting at a keyframe) with these pts and flags.

    ``every`` keeps every n-th frame in presentation order, ``limit`` the first so many kept.
    """
    pts = np.asarray(pts, dtype=np.int64)
    keyframe = np.asarray(keyframe, dtype=bool)
    if len(np.unique(pts)) != len(pts):
        raise DataError("expected one presentation timestamp per video packet, found repeated timestamps; "
                        "LOAD VIDEO ... WITH (store = 'pixels') decodes such a file instead")
    order = np.argsort(pts, kind="stable")           # frame n -> its packet
    kept = order[::every][:limit]
    keys = np.flatnonzero(keyframe)
    entry_of = np.searchsorted(keys, kept, side="right") - 1
    while True:                                      # open GOPs: step back over keyframes shown later
        late = (entry_of > 0) & (pts[keys[np.maximum(entry_of, 0)]] > pts[kept])
        if not late.any():
            break
        entry_of[late] -= 1
    entry = keys[np.maximum(entry_of, 0)]
    num, den = time_base
    frame_pts = pts[kept]
    ts = np.array([int(p) * num / den for p in frame_pts.tolist()], dtype=np.float64)  # exactly rounded
    return FrameIndex(
        frame_pts=frame_pts, ts=ts, packet=kept.astype(np.int64), entry_packet=entry.astype(np.int64),
        keyframe=keyframe[kept] & (entry == kept),
        packets_needed=int(kept.max()) + 1 if len(kept) else 0,
    )
