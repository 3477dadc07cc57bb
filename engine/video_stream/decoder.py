"""One decoder moving forward through a stored stream, from a keyframe.

A :class:`FrameDecoder` starts at a keyframe packet and is fed the packets that follow, in
decoding order, read a window at a time; it outputs pictures in presentation order, each
known by its pts.  It reaches a frame if it started at or before the frame's entry
packet, has not yet passed the frame, and has not fallen behind the entry packet (then
starting afresh at the entry is cheaper than decoding the gap).  A frame the decoder
rejects, drops or marks corrupt is a :class:`~engine.errors.DataError` naming it.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa

from engine.errors import DataError
from engine.video_stream.codec import open_decoder
from engine.video_stream.counters import DecodeCounters
from engine.video_stream.store import StreamRecord

#: Packets fed past a frame's own packet before a frame that never came out counts as lost
#: (reordering and frame threads delay a picture by a few packets, never this many).
LOST_AFTER = 48
#: Per-thread state (a reformatter each: libswscale contexts are not shared between threads).
_THREAD = threading.local()
#: Packets read per query while decoding forward to the frames asked for, and past them.
WINDOW, WINDOW_PAST = 256, 8

#: (first, last) -> packets first..last as Arrow (columns packet, pts, dts, data).
PacketReader = Callable[[int, int], pa.Table]


class FrameDecoder:
    """See the module docstring."""

    def __init__(self, record: StreamRecord, entry: int, counters: DecodeCounters, lowres: int = 0) -> None:
        self.record = record
        self.counters = counters
        self.lowres = lowres
        self.context = open_decoder(record.params, lowres=lowres)
        self.start = int(entry)
        self.next_packet = int(entry)
        self.last_pts: int | None = None
        self.drained = False
        self._pending: deque[Any] = deque()
        self._window: tuple[Any, list[Any], list[Any]] | None = None
        self._window_first = 0
        self._failures: dict[int, str] = {}
        self._time_base = Fraction(*record.params.time_base)
        counters.decoders_opened += 1

    def reaches(self, frame_id: int) -> bool:
        """Whether this decoder can still output ``frame_id`` without starting afresh."""
        entry = int(self.record.entry_packet[frame_id])
        passed = self.last_pts is not None and self.last_pts >= int(self.record.frame_pts[frame_id])
        return self.start <= entry <= max(self.next_packet, self.start) and not passed and not (
            self.drained and not self._pending)

    def frames(self, frame_ids: np.ndarray, read: PacketReader) -> Iterator[tuple[int, Any]]:
        """(frame_id, PyAV frame) for each of ``frame_ids`` (ascending, each reachable in turn)."""
        horizon = int(self.record.packet[frame_ids].max())
        for frame_id in frame_ids.tolist():
            yield frame_id, self._frame(frame_id, horizon, read)

    def _frame(self, frame_id: int, horizon: int, read: PacketReader) -> Any:
        target = int(self.record.frame_pts[frame_id])
        give_up = int(self.record.packet[frame_id]) + LOST_AFTER
        while True:
            picture = self._next_picture(give_up, horizon, read)
            if picture is None or picture.pts is None or picture.pts > target:
                raise self._lost(frame_id)
            if picture.pts == target:
                if picture.is_corrupt:
                    raise DataError(f"frame {frame_id} of {self.record.label}: the decoder marked its picture "
                                    "corrupt (the video is damaged there)")
                return picture

    def _next_picture(self, give_up: int, horizon: int, read: PacketReader) -> Any:
        import av

        while not self._pending:
            if self.drained or self.next_packet > give_up:
                return None
            if self.next_packet >= self.record.packet_count:
                self._pending.extend(self._decode(None))
                self.drained = True
                continue
            packet = self._packet(self.next_packet, horizon, read)
            try:
                self._pending.extend(self._decode(packet))
            except av.error.FFmpegError as e:
                self._failures[self.next_packet] = str(e)
            self.next_packet += 1
        picture = self._pending.popleft()
        if picture.pts is not None:
            self.last_pts = picture.pts
        return picture

    def _decode(self, packet: Any) -> list[Any]:
        pictures = self.context.decode(packet)
        self.counters.frames_decoded += len(pictures)
        return pictures

    def _packet(self, number: int, horizon: int, read: PacketReader) -> Any:

        if self._window is None or not (self._window_first <= number < self._window_first + len(self._window[1])):
            last = number + (WINDOW if number <= horizon else WINDOW_PAST) - 1
            if number <= horizon:
                last = min(last, horizon + WINDOW_PAST)
            table = read(number, min(last, self.record.packet_count - 1))
            data = table.column("data").combine_chunks()
            self._window = (data, table.column("pts").to_pylist(), table.column("dts").to_pylist())
            self._window_first = number
            self.counters.packets_read += table.num_rows
            self.counters.packet_bytes += data.nbytes
        data, pts, dts = self._window
        row = number - self._window_first
        packet = ffmpeg_packet(data[row].as_buffer())
        packet.pts, packet.dts, packet.time_base = pts[row], dts[row], self._time_base
        return packet

    def _lost(self, frame_id: int) -> DataError:
        packet = int(self.record.packet[frame_id])
        first = int(self.record.entry_packet[frame_id])
        errors = [f"packet {p}: {m}" for p, m in sorted(self._failures.items()) if first <= p <= packet + LOST_AFTER]
        why = f"; the decoder rejected {'; '.join(errors[:3])}" if errors else ""
        return DataError(f"frame {frame_id} of {self.record.label} could not be decoded: the decoder gave no "
                         f"picture for its packet {packet}{why} (the video is damaged there)")


def ffmpeg_packet(data: Any) -> Any:
    """A PyAV packet holding a copy of ``data`` in memory FFmpeg owns.

    ``av.Packet(data)`` would lend FFmpeg the Python object's memory, and a frame-decoding
    thread that drops the last reference then needs the GIL, which the thread feeding the
    decoder holds while it waits for that thread: a deadlock (met on a damaged H.264 stream).
    """
    import av

    packet = av.Packet(len(data))
    if len(data):
        packet.update(data)
    return packet


def reformatter() -> Any:
    """This thread's PyAV ``VideoReformatter``, which keeps libswscale's context from one
    picture to the next of the same size and format.

    ``VideoFrame.reformat`` builds a new context on every call, and that costs more than the
    conversion: on vtest.avi (768x576) RGB at 224x224 took 2.0 ms a frame that way against
    0.3 ms with the context kept, and 64x64 0.46 ms against 0.14 ms (same pixels).
    """
    kept = getattr(_THREAD, "reformatter", None)
    if kept is None:
        from av.video.reformatter import VideoReformatter

        kept = _THREAD.reformatter = VideoReformatter()
    return kept


def to_rgb(picture: Any, width: int, height: int, out: np.ndarray) -> None:
    """Write a decoded picture into ``out`` (height x width x 3 uint8) as RGB, resized if needed.

    The same conversion as PyAV's ``to_ndarray(format="rgb24")`` at the native size and
    ``reformat(width, height, "rgb24", interpolation="AREA")`` otherwise, with one copy.
    """
    if picture.width == width and picture.height == height:
        rgb = reformatter().reformat(picture, format="rgb24")
    else:
        rgb = reformatter().reformat(picture, width=width, height=height, format="rgb24", interpolation="AREA")
    plane = rgb.planes[0]
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(height, plane.line_size)
    out[...] = rows[:, :width * 3].reshape(height, width, 3)
