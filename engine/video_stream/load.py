"""LOAD VIDEO as a stream: copy the container's packets into the database, in one transaction.

Nothing is decoded but the first frame (to check that the stored parameters decode and to
learn the frame size), so loading costs about a copy of the file.  Every write (packets,
index, catalog rows, the frames table) happens in one transaction: the caller's, when one
is open, else its own; a failure or a killed process leaves nothing behind, and no
half-loaded table is ever visible to another connection.

>>> import engine
>>> from sqlglot import exp
>>> con = engine.connect(progress="off")
>>> loaded = load_stream(con.session, exp.to_table("clip"), "data/carphone.mp4", LoadOptions(every=10))
>>> loaded.frames, (loaded.width, loaded.height)
(12, (176, 144))
>>> con.execute("SELECT frame_id, octet_length(frame) FROM clip WHERE frame_id = 3").fetchone()
(3, 76032)
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlglot import exp

from engine.errors import DataError, ProgrammingError
from engine.system_catalog import catalog_name
from engine.video import VideoInfo, drop_frames_table, file_sha256, insert_video_row
from engine.video_stream.codec import open_decoder
from engine.video_stream.decoder import ffmpeg_packet
from engine.video_stream.demux import PACKET_SCHEMA, OpenVideo, keyframes_and_pts, open_video, packet_batches
from engine.video_stream.index import build_index
from engine.video_stream.keyframes import KeyframeCheck
from engine.video_stream.reading import stream_reader
from engine.video_stream.store import (
    StoredStream,
    StreamRecord,
    drop_stream,
    frames_table_ddl,
    index_batch,
    index_update,
    new_stream_id,
    orphaned_streams,
    packets_table,
    packets_table_ddl,
)

#: Packets demuxed past the last frame ``limit`` keeps, so that frames shown before it but
#: stored after it (B-frames) are found.
REORDER_MARGIN = 64
#: The largest side of a stored frame, in pixels.
MAX_SIDE = 16384


@dataclass(frozen=True)
class LoadOptions:
    """LOAD VIDEO's options (``width``/``height``: None keeps the source's size or aspect)."""

    width: int | None = None
    height: int | None = None
    every: int = 1
    limit: int | None = None


@dataclass(frozen=True)
class LoadedVideo:
    """What a load stored."""

    stream_id: int
    frames: int
    width: int
    height: int
    packets: int
    packet_bytes: int
    seconds: float
    warning: str | None = None


def output_size(source: tuple[int, int], width: int | None, height: int | None) -> tuple[int, int]:
    """The stored (width, height): as asked, or scaled keeping the aspect ratio when one side is given.

    >>> output_size((768, 576), 384, None)
    (384, 288)
    >>> output_size((768, 576), 100000, None)
    Traceback (most recent call last):
    ...
    engine.errors.DataError: LOAD VIDEO option width = 100000: expected at most 16384 pixels a side, which gives frames of 100000x75000
    """
    source_width, source_height = source
    asked_width, asked_height = width, height
    if width is None and height is None:
        return source_width, source_height
    if width is None:
        assert height is not None
        width = max(1, round(source_width * height / source_height))
    if height is None:
        height = max(1, round(source_height * width / source_width))
    if width > MAX_SIDE or height > MAX_SIDE:
        option = "width" if asked_width is not None and asked_width >= (asked_height or 0) else "height"
        value = asked_width if option == "width" else asked_height
        raise DataError(f"LOAD VIDEO option {option} = {value}: expected at most {MAX_SIDE} pixels a side, which "
                        f"gives frames of {width}x{height}")
    return width, height


def load_stream(session: Any, target: exp.Table, path: str, options: LoadOptions, *, replace: bool = False,
                desc: str | None = None) -> LoadedVideo:
    """Store ``path``'s video stream as the frames table ``target``; see the module docstring."""
    started = time.perf_counter()
    session.require_writable("LOAD VIDEO")
    path = os.path.abspath(path)
    if target.catalog:
        raise ProgrammingError(f"LOAD VIDEO stores streams in the database's own mallard schema; expected a table "
                               f"of the current database, found {target.sql('duckdb')}")
    if not replace and session.table_exists(target):
        raise ProgrammingError(f"table {target.sql('duckdb')} already exists; use LOAD OR REPLACE VIDEO to replace it")
    with open_video(path) as video:
        max_packets = None if options.limit is None else options.limit * options.every + REORDER_MARGIN
        bar = session.progress(video.declared_frames, desc or f"LOAD VIDEO {os.path.basename(path)}", unit="packet")
        with bar:
            check = KeyframeCheck(video.params)
            batches = map(check, packet_batches(video, max_packets=max_packets, progress=bar.update))
            first = next(batches, None)
            if first is None:
                raise DataError(f"expected video packets in {path}, found none")
            source_size = _first_frame_size(video, first)
            width, height = output_size(source_size, options.width, options.height)
            info = VideoInfo(path=path, size_bytes=video.size_bytes, sha256=file_sha256(path),
                             codec=video.params.codec, width=source_size[0], height=source_size[1], fps=video.fps,
                             frames=video.declared_frames, duration_s=video.duration_s)
            hold = session.in_transaction  # the load stays uncommitted after this statement
            with session.atomic():
                loaded, record, packets = _write(session, target, video, info, _chain(first, batches), options,
                                                 (width, height), replace, hold, started)
    if hold:
        stream_reader(session).held.hold(record, packets)
    return loaded


@contextmanager
def registered(session: Any, name: str, data: Any) -> Iterator[None]:
    """``data`` (Arrow) readable by SQL as ``name`` while the block runs.

    If the block fails, the transaction may be aborted, and DuckDB then refuses even to
    unregister: that must not hide the block's own error.
    """
    session.register(name, data)
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        try:
            session.unregister(name)
        except Exception:
            if not failed:
                raise


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def _first_frame_size(video: OpenVideo, batch: pa.RecordBatch) -> tuple[int, int]:
    """Decode the first keyframe from the stored parameters alone: (width, height), or DataError."""
    import av

    decoder = open_decoder(video.params, threads=False)
    packet = ffmpeg_packet(batch.column("data")[0].as_buffer())
    packet.pts, packet.dts = batch.column("pts")[0].as_py(), batch.column("dts")[0].as_py()
    try:
        pictures = decoder.decode(packet) + decoder.decode(None)
    except av.error.FFmpegError as e:
        raise DataError(f"expected a decodable video in {video.path}, but its first keyframe does not decode "
                        f"({video.params.codec}): {e}") from e
    if not pictures:
        raise DataError(f"expected a decodable video in {video.path}, but its first keyframe gives no picture "
                        f"({video.params.codec})")
    return pictures[0].width, pictures[0].height


def _write(session: Any, target: exp.Table, video: OpenVideo, info: VideoInfo, batches: Iterator[pa.RecordBatch],
           options: LoadOptions, size: tuple[int, int], replace: bool, hold: bool,
           started: float) -> tuple[LoadedVideo, StreamRecord, pa.Table | None]:
    """Every write of the load, in the caller's transaction."""
    sql = session.sql
    for orphan in orphaned_streams(lambda q, p: session.sql(q, p).fetchall()):
        drop_stream(sql, orphan)
    if replace:
        drop_frames_table(session, target)
    stream_id = new_stream_id()
    sql(packets_table_ddl(stream_id))
    kept: list[pa.RecordBatch] = []
    stored = _store_packets(session, stream_id, batches, kept, keep_data=hold)
    pts, keyframes = keyframes_and_pts(kept)
    index = build_index(pts, keyframes, time_base=video.params.time_base, every=options.every, limit=options.limit)
    if len(index) == 0:
        raise DataError(f"expected video frames in {video.path}, found none")
    with registered(session, "__mallard_video_index", index_batch(index)):
        sql(index_update(stream_id, "__mallard_video_index"))
    width, height = size
    name = catalog_name(target)
    sql(frames_table_ddl(target, stream_id))
    with stream_reader(session).inserting(stream_id):
        sql(exp.insert(
            f"SELECT frame_id, ts, {height}, {width}, ? FROM {packets_table(stream_id).sql('duckdb')}"
            " WHERE frame_id IS NOT NULL ORDER BY frame_id", target.copy(),
            columns=["frame_id", "ts", "height", "width", "source"],
        ).sql("duckdb"), [info.path])
    seconds = time.perf_counter() - started
    insert_video_row(sql, name, info, width=width, height=height, every=options.every, count=len(index),
                     duration_s=float(index.ts[-1] - index.ts[0]), seconds=seconds,
                     stream=StoredStream(stream_id, video.params, len(pts), stored))
    record = StreamRecord(
        stream_id=stream_id, table_name=name, source=info.path, params=video.params, width=width, height=height,
        packet_count=len(pts), frame_pts=index.frame_pts, packet=index.packet, entry_packet=index.entry_packet,
        keyframe=index.keyframe,
    )
    packets = pa.Table.from_batches(kept) if hold else None
    warning = None
    if info.frames and options.limit is None and len(pts) < info.frames:
        warning = (f"the container declares {info.frames} frames, but only {len(pts)} packets could be read: "
                   "the file may be truncated or damaged")
    return LoadedVideo(stream_id, len(index), width, height, len(pts), stored, seconds, warning), record, packets


def _store_packets(session: Any, stream_id: int, batches: Iterator[pa.RecordBatch], kept: list[pa.RecordBatch],
                   *, keep_data: bool) -> int:
    """Insert every batch of packets as it is demuxed (``kept`` gets them, without their data
    unless ``keep_data``: memory stays flat); return the bytes stored."""
    columns = ", ".join(PACKET_SCHEMA.names)
    insert = (f"INSERT INTO {packets_table(stream_id).sql('duckdb')} ({columns}) SELECT {columns}"
              " FROM __mallard_video_packets")
    stored = 0
    for batch in batches:
        with registered(session, "__mallard_video_packets", batch):
            session.sql(insert)
        stored += batch.column("data").nbytes
        kept.append(batch if keep_data else batch.drop_columns(["data"]))
    return stored
