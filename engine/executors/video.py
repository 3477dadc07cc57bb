"""LOAD VIDEO: decode a video file with PyAV into a frames table, in one transaction."""
from __future__ import annotations

import os
import time
import uuid
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
from sqlglot import exp

from engine.system_catalog import STAGING_PREFIX, catalog_name, require_user_table
from engine.dialect.video import LoadVideo
from engine.errors import DataError, ProgrammingError
from engine.options import read_options
from engine.prefetch import prefetch
from engine.statement_result import StatementResult
from engine.video import FRAMES_DDL, VideoInfo, decode_frames, frames_batch, probe

def load_video(session: Any, node: LoadVideo) -> StatementResult:
    """``LOAD [OR REPLACE] VIDEO '<path>' INTO <table> [WITH (width, height, every, limit)]``."""
    if not isinstance(node.this, exp.Literal) or not node.this.is_string:
        raise ProgrammingError(f"expected the video path as a string, found {node.this.sql()}")
    options = read_options(node)
    path = os.path.abspath(node.this.name)
    target: exp.Table = node.args["into"]
    require_user_table(target, "LOAD VIDEO")
    replace = bool(node.args.get("replace"))
    session.require_writable("LOAD VIDEO")
    if not replace and session.table_exists(target):
        raise ProgrammingError(
            f"table {target.sql('duckdb')} already exists; use LOAD OR REPLACE VIDEO to replace it"
        )
    info = probe(path)
    width, height = _output_size(info, options.get("width"), options.get("height"))
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
        f"{target.sql('duckdb')} in {seconds:.2f} s ({n / seconds:.0f} frames/s)"
    ))


def write_frames_table(session: Any, target: exp.Table, info: VideoInfo, batches: Iterable[pa.RecordBatch], *,
                       replace: bool, every: int, width: int, height: int, total: int | None,
                       desc: str = "frames") -> int:
    """Create ``target`` from ``batches`` and register it in mallard.videos, all or nothing.

    Inside a transaction (manual-commit mode, or after BEGIN) everything happens in it.
    Otherwise the frames go into a staging table committed batch by batch, so DuckDB writes
    them while decoding goes on, and one final transaction renames the staging table to
    ``target`` and records it; a failure drops the staging table, and one left by a killed
    process is dropped the next time the database is opened (engine.system_catalog).
    """
    session.require_writable("writing a frames table")
    if not replace and session.table_exists(target):
        raise ProgrammingError(f"table {target.sql('duckdb')} already exists; pass replace=True to replace it")
    started = time.perf_counter()
    if session.in_transaction:
        with session.atomic():
            if replace:
                _drop_frames_table(session, target)
            _create_frames_table(session, target)
            count = _append_frames(session, target, batches, total, desc, commit_each=False)
            _publish(session, target, target, info, count, every, width, height, replace, started)
        return count
    staging = exp.Table(this=exp.to_identifier(f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"),
                        db=target.args.get("db"), catalog=target.args.get("catalog"))
    _create_frames_table(session, staging)
    threshold = session.sql("SELECT current_setting('checkpoint_threshold')").fetchone()[0]
    try:
        # no checkpoint per commit: each would rewrite the growing row group of frames
        session.sql("SET checkpoint_threshold = '1000 GiB'")
        count = _append_frames(session, staging, batches, total, desc, commit_each=True)
        with session.atomic():
            _publish(session, staging, target, info, count, every, width, height, replace, started)
    except BaseException:
        session.quiesce()
        session.sql(exp.Drop(tables=[staging.copy()], kind="TABLE", exists=True))
        raise
    finally:
        session.sql("SET checkpoint_threshold = ?", [threshold])
    return count


def _drop_frames_table(session: Any, table: exp.Table) -> None:
    """Drop a table being replaced, and its catalog row."""
    session.sql(exp.Drop(tables=[table.copy()], kind="TABLE", exists=True))
    session.sql("DELETE FROM mallard.videos WHERE table_name = ?", [catalog_name(table)])


def _create_frames_table(session: Any, table: exp.Table) -> None:
    session.sql(exp.Create(this=exp.Schema(this=table.copy(), expressions=FRAMES_DDL.expressions), kind="TABLE"))


def _append_frames(session: Any, table: exp.Table, batches: Iterable[pa.RecordBatch], total: int | None,
                   desc: str, commit_each: bool) -> int:
    """Insert every batch; with ``commit_each`` each insert commits on its own (autocommit)."""
    name = f"__mallard_frames_{id(session):x}"
    insert = exp.insert(exp.select("*").from_(name), table.copy()).sql("duckdb")
    count = 0
    with session.progress(total, desc, unit="frame") as bar:
        for batch in batches:
            session.register(name, batch)
            try:
                session.sql(insert)
            finally:
                session.unregister(name)
            count += batch.num_rows
            bar.update(batch.num_rows)
    return count


def _publish(session: Any, source: exp.Table, target: exp.Table, info: VideoInfo, count: int, every: int,
             width: int, height: int, replace: bool, started: float) -> None:
    """In the caller's transaction: put the frames table in place and record it in the catalog."""
    if count == 0:
        raise DataError(f"expected video frames in {info.path}, decoded none")
    name = catalog_name(target)
    if source != target:
        if replace:
            _drop_frames_table(session, target)
        elif session.table_exists(target):
            raise ProgrammingError(f"table {target.sql('duckdb')} already exists (created while loading)")
        session.sql(exp.Alter(this=source.copy(), kind="TABLE",
                              actions=[exp.AlterRename(this=exp.Table(this=target.this.copy()))]))
    stamps = session.sql(exp.select("min(ts)", "max(ts)").from_(target.copy())).fetchone()
    session.sql(
        "INSERT INTO mallard.videos (table_name, source, source_bytes, source_sha256, codec, source_width,"
        " source_height, width, height, fps, every, frame_count, duration_s, pixel_format, load_seconds)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'rgb24', ?)",
        [name, info.path, info.size_bytes, info.sha256, info.codec, info.width, info.height, width, height,
         info.fps, every, count, (stamps[1] - stamps[0]) if stamps[0] is not None else None,
         time.perf_counter() - started],
    )


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


def _output_size(info: VideoInfo, width: int | None, height: int | None) -> tuple[int, int]:
    """The stored frame size: as asked, or scaled keeping the aspect ratio when one side is given."""
    if width is None and height is None:
        return info.width, info.height
    if width is None:
        width = max(1, round(info.width * height / info.height))
    if height is None:
        height = max(1, round(info.height * width / info.width))
    return width, height
