"""The frames the cascade's cheap stages read: shrunk to the specialized model's side.

A frames table stored as a compressed stream is decoded and each picture scaled straight to
``side`` x ``side`` in one conversion (libswscale, area averaging, through the thread's kept
context), never converted to RGB at the table's size first: on vtest.avi (768x576, MS-MPEG-4)
about 0.43 ms a frame, decoding included.
With ``SET inference_cascade_lowres = true`` the stream is decoded at reduced resolution where
the codec allows it (FFmpeg's ``lowres``, :func:`lowres_for`: the largest reduction that keeps
at least twice ``side`` pixels on the picture's shorter side; vtest.avi at 192x144, about
0.3 ms a frame with the conversion), which keeps less detail: off by default.
A table of stored pixels is read at its size and shrunk by
:func:`engine.cascades.specialized.shrink`.  The specialized model trains, is calibrated and
runs on frames made the same way: a stored specialized model belongs to one frames table
(its ``video_key`` names the table), so it never reads frames made the other way.

A cascade that trains a specialized model reads the sample's small frames before the cheap
pass reads the others; on a stream with long GOPs, reading a sample scattered over the video
decodes nearly every frame, so where the query's small frames fit in :data:`HOLD_BYTES` they
are all made in that one pass and held (:class:`HeldSmall`) for the cheap pass.

>>> import numpy as np
>>> held = HeldSmall(np.array([2, 5, 9]), np.arange(3, dtype=np.uint8).reshape(3, 1, 1, 1))
>>> held.covers(np.array([5, 9])), held.covers(np.array([4])), held.take(np.array([2, 9])).ravel().tolist()
(True, False, [0, 2])
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.cascades.specialized import shrink
from engine.video_stream.codec import LOWRES_CODECS, MAX_LOWRES

if TYPE_CHECKING:
    from engine.inference.scan import PreparedScan
    from engine.session import Session
    from engine.video_stream.codec import CodecParameters

#: Seconds spent in a stage are handed to ``timed(stage, seconds)`` ('decode' or 'convert').
Timer = Callable[[str, float], None]
#: The most bytes of small frames one cascade holds in memory between its passes (an hour of
#: video at 64x64 is 440 MB).
HOLD_BYTES = 512 * 2**20


@dataclass
class HeldSmall:
    """Small frames held in memory between a cascade's passes, by ascending frame_id."""

    frame_ids: np.ndarray
    frames: np.ndarray

    def covers(self, frame_ids: np.ndarray) -> bool:
        """Whether every one of ``frame_ids`` is held."""
        position = np.searchsorted(self.frame_ids, frame_ids)
        inside = position < len(self.frame_ids)
        return bool(inside.all() and (self.frame_ids[position[inside]] == frame_ids).all())

    def take(self, frame_ids: np.ndarray) -> np.ndarray:
        """The held frames of ``frame_ids`` (all held), in that order."""
        return self.frames[np.searchsorted(self.frame_ids, frame_ids)]


def lowres_for(width: int, height: int, side: int) -> int:
    """The ``lowres`` to decode at (0-3) for frames shrunk to ``side``: pictures 2**lowres
    smaller a side that keep at least ``2 * side`` pixels on their shorter side.

    >>> lowres_for(768, 576, 64), lowres_for(176, 144, 64), lowres_for(1920, 1080, 64)
    (2, 0, 3)
    """
    level = 0
    while level < MAX_LOWRES and min(width, height) >> (level + 1) >= 2 * side:
        level += 1
    return level


def _lowres(session: Session, params: CodecParameters, side: int) -> int:
    """The ``lowres`` the cheap stages decode a stream at: 0 unless ``inference_cascade_lowres``
    is on and the codec honours it.  The decoder's pictures have the coded size (a table's own
    size is what its frame column is scaled to); the small frames are made from them directly."""
    if not session.settings["inference_cascade_lowres"] or params.codec not in LOWRES_CODECS:
        return 0
    return lowres_for(params.width, params.height, side)


def decoding(session: Session, scan: PreparedScan, side: int) -> str:
    """How the cheap stages' frames are made, for EXPLAIN: the decoded size where the codec
    decodes at reduced resolution, else "full size" or "stored pixels"."""
    if scan.frames.stream_id is None:
        return "stored pixels shrunk"
    from engine.video_stream.reading import stream_reader

    params = stream_reader(session).record(session, scan.frames.stream_id).params
    level = _lowres(session, params, side)
    if level == 0:
        return f"decoded at full size ({params.width}x{params.height}) and shrunk"
    return (f"decoded at {-(-params.width >> level)}x{-(-params.height >> level)} "
            f"({params.codec} lowres {level}) and shrunk")


def fits(frames: int, side: int) -> bool:
    """Whether ``frames`` small frames of ``side`` pixels fit in :data:`HOLD_BYTES`."""
    return frames * side * side * 3 <= HOLD_BYTES


def small_frames(session: Session, scan: PreparedScan, frame_ids: np.ndarray, side: int, batch: int,
                 timed: Timer) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame_ids, (n, side, side, 3) uint8) batches of ascending, distinct ``frame_ids``."""
    frame_ids = np.asarray(frame_ids, np.int64)
    if len(frame_ids) == 0:
        return
    if scan.frames.stream_id is not None:
        yield from _decoded_small(session, scan.frames.stream_id, frame_ids, side, batch, timed)
        return
    height, width = next(iter(scan.selection.sizes()))
    batches = scan.frames.batches(session, frame_ids, height, width, batch)
    while True:
        started = time.perf_counter()
        step = next(batches, None)
        timed("decode", time.perf_counter() - started)
        if step is None:
            return
        started = time.perf_counter()
        small = shrink(step[1], side)
        timed("convert", time.perf_counter() - started)
        yield step[0], small


def read_small(session: Session, scan: PreparedScan, frame_ids: np.ndarray, side: int,
               timed: Timer) -> np.ndarray:
    """All of ``frame_ids`` (ascending, distinct) as one (n, side, side, 3) uint8 array."""
    parts = [small for _, small in small_frames(session, scan, frame_ids, side, 256, timed)]
    return np.concatenate(parts) if parts else np.empty((0, side, side, 3), np.uint8)


def _decoded_small(session: Session, stream_id: int, frame_ids: np.ndarray, side: int, batch: int,
                   timed: Timer) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from engine.video_stream.reading import stream_reader

    reader = stream_reader(session)
    lowres = _lowres(session, reader.record(session, stream_id).params, side)
    yield from reader.batches(session, stream_id, frame_ids, batch, height=side, width=side, lowres=lowres,
                              timed=timed)
