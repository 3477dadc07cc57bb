"""Reading a video file's packets without decoding them (PyAV's demuxer).

:func:`open_video` checks the path and opens the container's first video stream, with a
clear :class:`~engine.errors.DataError` for anything that is not a readable video;
:func:`packet_batches` yields its packets in decoding order as Arrow batches, starting at
the first keyframe (packets before it cannot be decoded on their own).

>>> from pathlib import Path
>>> with open_video(str(Path("data/carphone.mp4"))) as video:
...     batches = list(packet_batches(video, max_packets=10))
>>> video.params.codec, sum(b.num_rows for b in batches), batches[0].column("keyframe")[0].as_py()
('h264', 10, True)
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from engine.errors import DataError
from engine.user_files import regular_file_size
from engine.video_stream.codec import CodecParameters

PACKET_SCHEMA = pa.schema([
    ("packet", pa.int64()), ("pts", pa.int64()), ("dts", pa.int64()), ("keyframe", pa.bool_()),
    ("pos", pa.int64()), ("data", pa.binary()),
])

#: Bytes of packets per Arrow batch handed to DuckDB.
BATCH_BYTES = 8 << 20


@dataclass
class OpenVideo:
    """An opened container and what it declares about its first video stream."""

    path: str
    size_bytes: int
    container: Any
    stream: Any
    params: CodecParameters
    fps: float | None
    declared_frames: int | None     # as the container says (None: it does not say)
    duration_s: float | None


def check_path(path: str) -> int:
    """The size of the regular file at ``path``; DataError naming what is there instead."""
    size = regular_file_size(path, "video file")
    if size == 0:
        raise DataError(f"expected a video file, found an empty file (0 bytes): {path}")
    return size


@contextmanager
def open_video(path: str) -> Iterator[OpenVideo]:
    """Open ``path``'s first video stream; DataError if it is not a readable video."""
    import av

    size = check_path(path)
    try:
        container = av.open(path)
    except av.error.FFmpegError as e:
        raise DataError(f"expected a video file, could not open {path}: {e}") from e
    try:
        if not container.streams.video:
            found = ", ".join(s.type for s in container.streams) or "none"
            raise DataError(f"expected a video stream in {path}, found none (streams: {found})")
        stream = container.streams.video[0]
        if not stream.codec_context.name:
            raise DataError(f"expected a video codec FFmpeg can decode in {path}, found none")
        rate = stream.average_rate or stream.base_rate
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        yield OpenVideo(path=path, size_bytes=size, container=container, stream=stream,
                        params=CodecParameters.from_stream(stream), fps=float(rate) if rate else None,
                        declared_frames=stream.frames or None, duration_s=duration)
    finally:
        container.close()


def packet_batches(video: OpenVideo, *, max_packets: int | None = None,
                   progress: Callable[[int], None] | None = None) -> Iterator[pa.RecordBatch]:
    """The stream's packets from its first keyframe on, numbered 0, 1, ... in decoding order.

    Packet 0 is always a keyframe.  A packet without a pts takes its dts; one with neither is
    a DataError (frames could not be put in presentation order).  ``progress`` is called
    with the number of packets of each batch.
    """
    columns: list[list[Any]] = [[] for _ in PACKET_SCHEMA]
    size = 0
    for count, (pts, dts, keyframe, pos, data) in enumerate(_packets(video)):
        for column, value in zip(columns, (count, pts, dts, keyframe or count == 0, pos, data)):
            column.append(value)
        size += len(data)
        if size >= BATCH_BYTES:
            yield _batch(columns, progress)
            columns, size = [[] for _ in PACKET_SCHEMA], 0
        if max_packets is not None and count + 1 >= max_packets:
            break
    if columns[0]:
        yield _batch(columns, progress)


#: Packets before the first keyframe are dropped, unless there are more than this many (then
#: the container does not mark keyframes, and decoding starts at its first packet).
LEADING_PACKETS = 600


def _packets(video: OpenVideo) -> Iterator[tuple[int, int | None, bool, int | None, bytes]]:
    """(pts, dts, keyframe, pos, data) of each non-empty packet, from the first keyframe on."""
    import av

    leading: list[tuple[int, int | None, bool, int | None, bytes]] = []
    started = False
    seen = 0
    try:
        for packet in video.container.demux(video.stream):
            if not packet.size:
                continue
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                raise DataError(f"expected timestamps on the video packets of {video.path}, found packet {seen} "
                                "without any; LOAD VIDEO ... WITH (store = 'pixels') decodes it instead")
            seen += 1
            item = (pts, packet.dts, bool(packet.is_keyframe),
                    packet.pos if packet.pos is not None and packet.pos >= 0 else None, bytes(packet))
            if not started:
                if not item[2] and len(leading) < LEADING_PACKETS:
                    leading.append(item)
                    continue
                started = True
                if not item[2]:
                    yield from leading
                leading = []
            yield item
    except av.error.FFmpegError as e:
        raise DataError(f"could not read the packets of {video.path} after {seen} packets (the file is "
                        f"damaged): {e}") from e
    if not started:
        yield from leading


def _batch(columns: list[list[Any]], progress: Callable[[int], None] | None) -> pa.RecordBatch:
    batch = pa.record_batch([pa.array(c, f.type) for c, f in zip(columns, PACKET_SCHEMA)], schema=PACKET_SCHEMA)
    if progress is not None:
        progress(batch.num_rows)
    return batch


def keyframes_and_pts(batches: list[pa.RecordBatch]) -> tuple[np.ndarray, np.ndarray]:
    """(pts, keyframe) of every packet of ``batches``, in order."""
    if not batches:
        return np.empty(0, np.int64), np.empty(0, bool)
    pts = np.concatenate([b.column("pts").to_numpy() for b in batches])
    keys = np.concatenate([b.column("keyframe").to_numpy(zero_copy_only=False) for b in batches])
    return pts.astype(np.int64), keys.astype(bool)
