"""LOAD VIDEO: store a video file as a frames table, in one transaction.

``store = 'stream'`` (the default) copies the container's packets and decodes frames when
they are read (engine.video_stream); ``store = 'pixels'`` decodes every frame now and
stores its RGB bytes (for tiny clips, and the form :func:`engine.frames_from_numpy` makes).
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from engine.dialect.video import LoadVideo
from engine.errors import DataError, ProgrammingError
from engine.options import read_options
from engine.prefetch import prefetch
from engine.statement_result import StatementResult
from engine.system_catalog import catalog_name, require_user_table
from engine.video import (
    FRAMES_DDL,
    VideoInfo,
    decode_frames,
    drop_frames_table,
    frames_batch,
    insert_video_row,
    probe,
)
from engine.video_stream.load import LoadOptions, load_stream, output_size, registered

if TYPE_CHECKING:
    from engine.session import Session

#: Options that apply to ``store = 'pixels'`` only.
PIXELS_ONLY = ("batch_frames",)


def load_video(session: Session, node: LoadVideo) -> StatementResult:
    """``LOAD [OR REPLACE] VIDEO '<path>' INTO <table> [WITH (width, height, every, limit, store)]``."""
    if not isinstance(node.this, exp.Literal) or not node.this.is_string:
        raise ProgrammingError(f"expected the video path as a string, found {node.this.sql()}")
    options = read_options(node)
    store = options.get("store", "stream")
    for key in PIXELS_ONLY:
        if key in options and store != "pixels":
            raise ProgrammingError(f"LOAD VIDEO option {key} applies to store = 'pixels' only")
    path = os.path.abspath(node.this.name)
    target: exp.Table = node.args["into"]
    require_user_table(target, "LOAD VIDEO")
    replace = bool(node.args.get("replace"))
    session.require_writable("LOAD VIDEO")
    if not replace and session.table_exists(target):
        raise ProgrammingError(
            f"table {target.sql('duckdb')} already exists; use LOAD OR REPLACE VIDEO to replace it"
        )
    if options.pop("store", "stream") == "pixels":
        return _load_pixels(session, target, path, options, replace)
    started = time.perf_counter()
    loaded = load_stream(session, target, path, LoadOptions(options.get("width"), options.get("height"),
                                                            options.get("every", 1), options.get("limit")),
                         replace=replace)
    seconds = time.perf_counter() - started
    warning = f"; warning: {loaded.warning}" if loaded.warning else ""
    return StatementResult(rowcount=loaded.frames, message=(
        f"LOAD VIDEO: {loaded.frames} frames of {loaded.width}x{loaded.height} from {os.path.basename(path)} into "
        f"{target.sql('duckdb')} as its compressed stream ({loaded.packets} packets, "
        f"{loaded.packet_bytes / 1e6:.1f} MB) in {seconds:.2f} s{warning}"
    ))


def _load_pixels(session: Session, target: exp.Table, path: str, options: dict[str, Any], replace: bool) -> StatementResult:
    info = probe(path)
    width, height = output_size((info.width, info.height), options.get("width"), options.get("height"))
    every = options.get("every", 1)
    limit = options.get("limit")
    batch = options.get("batch_frames") or max(1, min(64, (8 << 20) // (width * height * 3)))
    expected = None
    if info.frames:
        expected = -(-info.frames // every)
        expected = min(expected, limit) if limit else expected
    started = time.perf_counter()
    batches = _batches(decode_frames(path, width, height, every, limit), batch, width, height, path)
    n = write_frames_table(session, target, info, prefetch(batches), replace=replace, every=every,
                           width=width, height=height, total=expected, desc=f"LOAD VIDEO {os.path.basename(path)}")
    seconds = time.perf_counter() - started
    return StatementResult(rowcount=n, message=(
        f"LOAD VIDEO: {n} frames of {width}x{height} from {os.path.basename(path)} into "
        f"{target.sql('duckdb')} as pixels in {seconds:.2f} s ({n / seconds:.0f} frames/s)"
    ))


def write_frames_table(session: Session, target: exp.Table, info: VideoInfo, batches: Iterable[pa.RecordBatch], *,
                       replace: bool, every: int, width: int, height: int, total: int | None,
                       desc: str = "frames") -> int:
    """Create the pixels frames table ``target`` from ``batches`` and register it in mallard.videos.

    Everything happens in one transaction (the caller's, if one is open): a failure or a
    killed process leaves no table and no catalog row, and no other connection ever sees
    a half-written table.
    """
    session.require_writable("writing a frames table")
    if not replace and session.table_exists(target):
        raise ProgrammingError(f"table {target.sql('duckdb')} already exists; pass replace=True to replace it")
    started = time.perf_counter()
    with session.atomic():
        if replace:
            drop_frames_table(session, target)
        session.sql(exp.Create(this=exp.Schema(this=target.copy(), expressions=FRAMES_DDL.expressions), kind="TABLE"))
        count = _append_frames(session, target, batches, total, desc)
        if count == 0:
            raise DataError(f"expected video frames in {info.path}, decoded none")
        stamps = session.row(exp.select("min(ts)", "max(ts)").from_(target.copy()))
        insert_video_row(session.sql, catalog_name(target), info, width=width, height=height, every=every,
                         count=count, duration_s=(stamps[1] - stamps[0]) if stamps[0] is not None else None,
                         seconds=time.perf_counter() - started)
    return count


def _append_frames(session: Session, table: exp.Table, batches: Iterable[pa.RecordBatch], total: int | None,
                   desc: str) -> int:
    name = f"__mallard_frames_{id(session):x}"
    insert = exp.insert(exp.select("*").from_(name), table.copy()).sql("duckdb")
    count = 0
    with session.progress(total, desc, unit="frame") as bar:
        for batch in batches:
            with registered(session, name, batch):
                session.sql(insert)
            count += batch.num_rows
            bar.update(batch.num_rows)
    return count


def _batches(frames: Iterator[tuple[float, np.ndarray]], size: int, width: int, height: int,
             source: str) -> Iterator[pa.RecordBatch]:
    """Group decoded frames into Arrow batches over one contiguous buffer each."""
    first_id = 0
    while True:
        buffer = np.empty((size, height, width, 3), dtype=np.uint8)
        stamps: list[float] = []
        for ts, pixels in frames:
            buffer[len(stamps)] = pixels
            stamps.append(ts)
            if len(stamps) == size:
                break
        if not stamps:
            return
        yield frames_batch(first_id, stamps, buffer[:len(stamps)], source)
        first_id += len(stamps)
        if len(stamps) < size:
            return
