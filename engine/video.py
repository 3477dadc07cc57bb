"""Video frames: the frames table users query, the Python helpers that read and write it,
PyAV decoding for frames stored as pixels, and the catalog of loaded videos.

A frames table, as ``LOAD VIDEO`` makes it, has one row per kept frame::

    frame_id BIGINT    -- 0, 1, 2, ... in presentation order (after ``every``)
    ts       DOUBLE    -- presentation time in seconds
    frame    BLOB      -- the pixels: height*width*3 bytes, RGB, row-major (numpy HxWx3 uint8)
    height   INTEGER
    width    INTEGER
    source   VARCHAR   -- the file it was loaded from

so ``np.frombuffer(frame, np.uint8).reshape(height, width, 3)`` gives the frame back
exactly.  By default ``frame`` is decoded on read from the stored compressed stream
(:mod:`engine.video_stream`); with ``store = 'pixels'``, and for :func:`frames_from_numpy`,
it holds the bytes.  The helpers below read either kind; a stream is decoded straight from
its packets, a batch at a time.

>>> import engine, numpy as np
>>> con = engine.connect()
>>> pixels = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
>>> frames_from_numpy(con, "tiny", pixels, fps=10)
2
>>> bool((frames_to_numpy(con, "tiny") == pixels).all())
True
"""
from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlglot import exp
from sqlglot.errors import SqlglotError

from engine.errors import DataError, ProgrammingError
from engine.options import shown, whole_argument
from engine.system_catalog import catalog_name
from engine.video_stream.reading import stream_reader
from engine.video_stream.store import StoredStream, drop_stream, stream_of_table

if TYPE_CHECKING:
    from engine.connection import Connection

FRAME_COLUMNS = ("frame_id", "ts", "frame", "height", "width", "source")

FRAMES_DDL = exp.Schema(expressions=[
    exp.ColumnDef(this=exp.to_identifier("frame_id"), kind=exp.DataType.build("BIGINT"),
                  constraints=[exp.ColumnConstraint(kind=exp.NotNullColumnConstraint())]),
    exp.ColumnDef(this=exp.to_identifier("ts"), kind=exp.DataType.build("DOUBLE")),
    exp.ColumnDef(this=exp.to_identifier("frame"), kind=exp.DataType.build("BLOB"),
                  constraints=[exp.ColumnConstraint(kind=exp.NotNullColumnConstraint())]),
    exp.ColumnDef(this=exp.to_identifier("height"), kind=exp.DataType.build("INTEGER")),
    exp.ColumnDef(this=exp.to_identifier("width"), kind=exp.DataType.build("INTEGER")),
    exp.ColumnDef(this=exp.to_identifier("source"), kind=exp.DataType.build("VARCHAR")),
])

ARROW_SCHEMA = pa.schema([
    ("frame_id", pa.int64()), ("ts", pa.float64()), ("frame", pa.large_binary()),
    ("height", pa.int32()), ("width", pa.int32()), ("source", pa.string()),
])


@dataclass(frozen=True)
class VideoInfo:
    """What probing a video file found."""

    path: str
    size_bytes: int
    sha256: str
    codec: str
    width: int
    height: int
    fps: float | None
    frames: int | None       # as the container reports it (may be 0 or None when unknown)
    duration_s: float | None


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes, in hex (identifies a video for the result cache)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def probe(path: str) -> VideoInfo:
    """Open ``path`` with PyAV and read its first frame; DataError if it is not a readable video."""
    import av

    from engine.video_stream.demux import open_video

    with open_video(path) as video:
        try:
            first = next(video.container.decode(video.stream), None)
        except av.error.FFmpegError as e:
            raise DataError(f"expected a video file, could not decode {path}: {e}") from e
        if first is None:
            raise DataError(f"expected decodable video frames in {path}, found none")
        return VideoInfo(path=path, size_bytes=video.size_bytes, sha256=file_sha256(path), codec=video.params.codec,
                         width=first.width, height=first.height, fps=video.fps, frames=video.declared_frames,
                         duration_s=video.duration_s)


def decode_frames(path: str, width: int | None = None, height: int | None = None, every: int = 1,
                  limit: int | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (seconds, HxWx3 uint8 RGB array) for every ``every``-th frame, resized if asked."""
    import av

    from engine.video_stream.decoder import to_rgb

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.base_rate or Fraction(1)
            kept = 0
            for index, frame in enumerate(container.decode(stream)):
                if index % every:
                    continue
                w, h = (width, height) if width is not None and height is not None else (frame.width, frame.height)
                pixels = np.empty((h, w, 3), np.uint8)
                to_rgb(frame, w, h, pixels)
                ts = float(frame.time) if frame.time is not None else float(index / rate)
                yield ts, pixels
                kept += 1
                if limit is not None and kept >= limit:
                    return
    except av.error.FFmpegError as e:
        raise DataError(f"could not decode {path} (the file is corrupt or truncated): {e}") from e


def frames_batch(first_id: int, stamps: Sequence[float] | np.ndarray, pixels: np.ndarray, source: str) -> pa.RecordBatch:
    """An Arrow batch of frames rows over one contiguous (N, H, W, 3) uint8 array, without copying."""
    n, h, w = pixels.shape[:3]
    size = h * w * 3
    offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int64) * size)
    data = pa.py_buffer(np.ascontiguousarray(pixels).reshape(-1))
    blobs = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, offsets, data])
    return pa.record_batch([
        pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
        pa.array(np.asarray(stamps, dtype=np.float64)),
        blobs,
        pa.array(np.full(n, h, dtype=np.int32)),
        pa.array(np.full(n, w, dtype=np.int32)),
        pa.array([source] * n, pa.string()),
    ], schema=ARROW_SCHEMA)


def frame_to_numpy(blob: bytes | bytearray | memoryview, height: int, width: int) -> np.ndarray:
    """One frame's pixels as an HxWx3 uint8 array (a view of ``blob``, read-only for bytes).

    >>> frame_to_numpy(bytes(range(6)), 1, 2).tolist()
    [[[0, 1, 2], [3, 4, 5]]]
    >>> frame_to_numpy(b"abc", 1, 2)
    Traceback (most recent call last):
    ...
    engine.errors.DataError: expected a frame of 1x2x3 = 6 bytes, found 3 bytes
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ProgrammingError(f"expected a frame as bytes, bytearray or memoryview, found {type(blob).__name__}")
    height = whole_argument("frame height", height)
    width = whole_argument("frame width", width)
    if height < 1 or width < 1:
        raise DataError(f"expected a frame height and width of at least 1, found {height}x{width}")
    view = memoryview(blob)
    if not view.c_contiguous:
        raise DataError("expected a frame's bytes in one contiguous buffer, found a strided memoryview")
    expected = height * width * 3
    if view.nbytes != expected:
        raise DataError(f"expected a frame of {height}x{width}x3 = {expected} bytes, found {view.nbytes} bytes")
    return np.frombuffer(view.cast("B"), dtype=np.uint8).reshape(height, width, 3)


def check_connection(con: Any) -> Connection:
    """``con`` if it is a Mallard connection, else a ProgrammingError (the Python helpers need
    one, not a DuckDB connection or a cursor).

    >>> check_connection(None)
    Traceback (most recent call last):
    ...
    engine.errors.ProgrammingError: expected a Mallard connection from engine.connect(), found NoneType
    """
    from engine.connection import Connection

    if not isinstance(con, Connection):
        raise ProgrammingError(f"expected a Mallard connection from engine.connect(), found {type(con).__name__}")
    return con


def _condition(where: str) -> exp.Expr:
    """The ``where`` fragment parsed as one SQL condition (so it cannot carry a second statement)."""
    if not isinstance(where, str):
        raise ProgrammingError(f"expected where as a SQL condition in a str, found {type(where).__name__}")
    expected = ("expected where to be one SQL condition over the frames table (such as 'frame_id % 10 = 0'),"
                f" found {shown(where)}")
    try:
        condition = exp.condition(where, dialect="duckdb")
    except SqlglotError as e:
        raise ProgrammingError(expected) from e
    if condition.find(exp.Block) is not None:  # "a = 1; b" parses as a block of two: a second statement
        raise ProgrammingError(expected)
    return condition


def _frame_ids(frame_ids: Iterable[int]) -> list[int]:
    if isinstance(frame_ids, (str, bytes, bytearray)) or not isinstance(frame_ids, Iterable):
        raise ProgrammingError(f"expected frame_ids as a sequence of whole numbers, found {type(frame_ids).__name__}")
    return [whole_argument("frame_ids", i) for i in frame_ids]


def _frames_query(table: exp.Table, frame_ids: Sequence[int] | None, where: str | None) -> exp.Select:
    query = exp.select("frame_id", "ts", "frame", "height", "width").from_(table.copy()).order_by("frame_id")
    if where is not None and where != "":
        query = query.where(_condition(where))
    if frame_ids is not None:
        query = query.where(exp.column("frame_id").isin(*[exp.Literal.number(i) for i in _frame_ids(frame_ids)]))
    return query


def iter_frames(con: Any, table: str, *, frame_ids: Sequence[int] | None = None, where: str | None = None,
                batch_size: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (frame_ids, frames) batches in frame_id order; frames is (n, H, W, 3) uint8.

    ``where`` is a SQL condition over the frames table (``"frame_id % 10 = 0"``).  Frames of a
    stored stream are decoded straight from its packets, a batch at a time.  The arguments are
    checked when it is called, before the first batch is asked for.
    """
    con = check_connection(con)
    name = _table(table)
    batch_size = whole_argument("batch_size", batch_size, 1)
    query = _frames_query(name, frame_ids, where)
    return _iter_frames(con, name, query, batch_size)


def _iter_frames(con: Connection, name: exp.Table, query: exp.Select,
                 batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    session = con.session
    stream_id = stream_of_table(lambda q, p: session.sql(q, p).fetchall(), name)
    if stream_id is not None:
        query.set("expressions", [exp.column("frame_id")])
        ids = np.array([r[0] for r in session.sql(query).fetchall()], dtype=np.int64)
        yield from stream_reader(session).batches(session, stream_id, ids, batch_size)
        return
    cursor = con.cursor()
    cursor.execute(query.sql("duckdb"))
    while True:
        rows = cursor.fetchmany(batch_size)
        if not rows:
            return
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        yield ids, np.stack([frame_to_numpy(r[2], r[3], r[4]) for r in rows])


def _table(table: str) -> exp.Table:
    if not isinstance(table, str):
        raise ProgrammingError(f"expected a table name as a str, found {type(table).__name__}")
    try:
        return exp.to_table(table)
    except Exception as e:  # sqlglot's parse errors for a malformed name
        raise ProgrammingError(f"expected a table name, found {table!r}") from e


def frames_to_numpy(con: Any, table: str, *, frame_ids: Sequence[int] | None = None,
                    where: str | None = None) -> np.ndarray:
    """The frames of a frames table as one (n, H, W, 3) uint8 array, in frame_id order.

    ``frame_ids`` picks frames by id; ``where`` is a SQL condition over the table.
    """
    batches = [frames for _, frames in iter_frames(con, table, frame_ids=frame_ids, where=where)]
    if not batches:
        raise DataError(f"no frames in {table} match")
    shapes = {b.shape[1:] for b in batches}
    if len(shapes) > 1:
        raise DataError(f"frames of {table} have different sizes {sorted(shapes)}; select one size")
    return np.concatenate(batches)


def frames_from_numpy(con: Any, table: str, frames: np.ndarray | Sequence[np.ndarray], *, fps: float = 30.0,
                      source: str = "numpy", replace: bool = False) -> int:
    """Create a frames table from (n, H, W, 3) uint8 pixels (synthetic video); return n.

    The table is registered in the catalog like a loaded video, so model functions accept it.
    """
    from engine.executors.video import write_frames_table

    con = check_connection(con)
    name = _table(table)
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not (math.isfinite(fps) and fps > 0):
        raise ProgrammingError(f"expected fps as a number > 0, found {shown(fps)}")
    fps = float(fps)  # numpy's numbers too: the catalog row binds it
    if not isinstance(source, str):
        raise ProgrammingError(f"expected source as a str, found {type(source).__name__}")
    try:
        pixels = np.asarray(frames)
    except (TypeError, ValueError) as e:  # ragged or odd sequences
        raise DataError(f"expected frames as an (n, H, W, 3) uint8 array, found {type(frames).__name__}"
                        f" that numpy cannot make one array of: {e}") from e
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3 or min(pixels.shape[1:3]) < 1:
        raise DataError(f"expected frames as an (n, H, W, 3) uint8 array with H and W at least 1, found {pixels.dtype} "
                        f"{pixels.shape}")
    if len(pixels) == 0:
        raise DataError("expected at least one frame, found none")
    n, h, w = pixels.shape[:3]
    stamps = np.arange(n, dtype=np.float64) / fps
    digest = hashlib.sha256(pixels.tobytes()).hexdigest()
    info = VideoInfo(path=source, size_bytes=pixels.nbytes, sha256=digest, codec="rawvideo", width=w, height=h,
                     fps=fps, frames=n, duration_s=n / fps)
    batches = (frames_batch(i, stamps[i:i + 64], pixels[i:i + 64], source) for i in range(0, n, 64))
    return write_frames_table(con.session, name, info, batches, replace=replace, every=1,
                              width=w, height=h, total=n)


# The catalog of loaded videos (mallard.videos) ---------------------------------------------------

def insert_video_row(sql: Any, name: str, info: VideoInfo, *, width: int, height: int, every: int, count: int,
                     duration_s: float | None, seconds: float, stream: StoredStream | None = None) -> None:
    """Record a frames table in mallard.videos (in the caller's transaction): its storage is
    'stream' with ``stream``'s decoder parameters, else 'pixels'."""
    stored = stream.values() if stream is not None else [None] * 5
    sql(
        "INSERT INTO mallard.videos (table_name, source, source_bytes, source_sha256, codec, source_width,"
        " source_height, width, height, fps, every, frame_count, duration_s, pixel_format, load_seconds, storage,"
        " stream_id, extradata, decoder, packet_count, packet_bytes)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'rgb24', ?, ?, ?, ?, ?, ?, ?)",
        [name, info.path, info.size_bytes, info.sha256, info.codec, info.width, info.height, width, height,
         info.fps, every, count, duration_s, seconds, "stream" if stream is not None else "pixels", *stored],
    )


def drop_frames_table(session: Any, table: exp.Table) -> None:
    """Drop a frames table being replaced, its stored stream if it has one, and its catalog row."""
    stream_id = stream_of_table(lambda q, p: session.sql(q, p).fetchall(), table)
    session.sql(exp.Drop(tables=[table.copy()], kind="TABLE", exists=True))
    if stream_id is not None:
        drop_stream(session.sql, stream_id)
    session.sql("DELETE FROM mallard.videos WHERE table_name = ?", [catalog_name(table)])
