"""Decoding stored streams for one connection: the ``video_frame`` SQL function and the
frames readers of Python code share its decoders, caches and counters.

Where the packets come from depends on who asks:

- Python code (``engine.iter_frames``, the inference scan) reads them through the
  connection itself, in its transaction, so it sees a video loaded and not yet committed;
- the SQL function runs *inside* a query on that connection, where DuckDB forbids using
  the connection, so it reads through a second connection to the same database
  (``cursor()``), which sees committed data only.  A load in an open transaction therefore
  also leaves its packets with this reader (:meth:`StreamReader.hold_uncommitted`) until a
  read finds them committed, so ``LOAD VIDEO`` then ``SELECT frame`` works before COMMIT.

Frames asked for together are decoded in frame_id order in *runs*: a run starts where
decoding from the previous frame on would cross a keyframe that a fresh decoder can start
at, so a sorted read decodes each frame at most once and a random read at most one GOP.
Idle decoders are kept, positioned, for the next request (``WHERE frame_id = k`` then
``k + 1`` decodes one more frame, not a GOP).
"""
from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from engine.errors import DataError, OperationalError, translate
from engine.video_stream.counters import DecodeCounters
from engine.video_stream.decoder import FrameDecoder, to_rgb
from engine.video_stream.store import StreamRecord, read_packets, read_record

STATE_KEY = "video_stream.reader"
#: Idle decoders kept per stream, and in all.
IDLE_PER_STREAM, IDLE_TOTAL = 2, 8


def stream_reader(session: Any) -> "StreamReader":
    """The session's reader (made on first use)."""
    reader = session.state.get(STATE_KEY)
    if reader is None:
        reader = session.state[STATE_KEY] = StreamReader(session)
    return reader


@dataclass(frozen=True)
class HeldStream:
    """A stream loaded in a transaction not yet committed: its record and all its packets."""

    record: StreamRecord
    packets: pa.Table


def runs(record: StreamRecord, frame_ids: np.ndarray) -> list[np.ndarray]:
    """Split ascending ``frame_ids`` where a fresh decoder at the next frame's entry keyframe
    beats decoding on from the previous frames.

    >>> import numpy as np
    >>> from engine.video_stream.codec import CodecParameters
    >>> params = CodecParameters("h264", None, None, 2, 2, "yuv420p", (1, 25))
    >>> ids = np.arange(6)
    >>> record = StreamRecord(1, "t", "t.mp4", params, 2, 2, 6, ids, ids, np.array([0, 0, 0, 3, 3, 3]),
    ...                       ids % 3 == 0)
    >>> [r.tolist() for r in runs(record, np.array([0, 1, 4, 5]))]
    [[0, 1], [4, 5]]
    >>> [r.tolist() for r in runs(record, np.array([0, 2, 3]))]
    [[0, 2, 3]]
    """
    if len(frame_ids) == 0:
        return []
    reach = np.maximum.accumulate(record.packet[frame_ids])
    entries = record.entry_packet[frame_ids]
    breaks = np.flatnonzero(entries[1:] > reach[:-1] + 1) + 1
    return np.split(frame_ids, breaks)


class StreamReader:
    """See the module docstring.  One per session (:func:`stream_reader`)."""

    def __init__(self, session: Any) -> None:
        self._session = weakref.ref(session)
        self._side: Any = None
        self._side_lock = threading.Lock()
        self._lock = threading.Lock()
        self._records: dict[int, StreamRecord] = {}
        self._held: dict[int, HeldStream] = {}
        self._idle: dict[int, list[FrameDecoder]] = {}
        self._inserting: set[int] = set()
        self.counters = DecodeCounters()

    # Where packets come from ---------------------------------------------------------------
    def _main(self, sql: str, params: list[Any]) -> pa.Table:
        import duckdb

        session = self._session()
        if session is None:
            raise OperationalError("the connection was closed")
        session.quiesce()  # DuckDB runs a relation only when no execute() result is pending
        try:
            return session.duck.sql(sql, params=params).to_arrow_table()
        except duckdb.Error as e:
            raise translate(e) from e

    def _committed(self, sql: str, params: list[Any]) -> pa.Table:
        import duckdb

        with self._side_lock:
            if self._side is None:
                session = self._session()
                if session is None:
                    raise OperationalError("the connection was closed")
                self._side = session.duck.cursor()
            try:
                return self._side.sql(sql, params=params).to_arrow_table()
            except duckdb.Error as e:
                raise translate(e) from e

    @contextmanager
    def inserting(self, stream_id: int) -> Iterator[None]:
        """While the rows of a stream's frames table are inserted, its frames read as NULL.

        DuckDB evaluates a generated column when rows are inserted, to check that it can; the
        rows are the frame ids of the stream just indexed, so there is nothing to check, and
        decoding the whole video there would cost what storing the stream saves.
        """
        self._inserting.add(stream_id)
        try:
            yield
        finally:
            self._inserting.discard(stream_id)

    def hold_uncommitted(self, record: StreamRecord, packets: pa.Table) -> None:
        """Keep a stream loaded in the open transaction readable by SQL until it is committed."""
        self._held[record.stream_id] = HeldStream(record, packets)

    def forget_committed(self) -> None:
        """Drop held streams that have become visible to other connections (committed)."""
        for stream_id in list(self._held):
            if read_record(self._committed, stream_id) is not None:
                self._held.pop(stream_id, None)

    def _source(self, stream_id: int, in_query: bool) -> tuple[StreamRecord, Any]:
        """The stream's record and a packet reader ``(first, last) -> Table``."""
        if not in_query:
            record = self._record(stream_id, self._main)
            return record, lambda first, last: read_packets(self._main, stream_id, first, last)
        held = self._held.get(stream_id)
        if held is not None and read_record(self._committed, stream_id) is None:
            return held.record, lambda first, last: held.packets.slice(first, last - first + 1)
        self._held.pop(stream_id, None)
        record = self._record(stream_id, self._committed)
        return record, lambda first, last: read_packets(self._committed, stream_id, first, last)

    def _record(self, stream_id: int, query: Any) -> StreamRecord:
        record = self._records.get(stream_id)
        if record is None:
            record = read_record(query, stream_id)
            if record is None:
                raise OperationalError(f"video stream {stream_id} is not in the database (its frames table refers to"
                                       " a stream that was dropped, or that another connection has not committed)")
            self._records[stream_id] = record
        return record

    def record(self, stream_id: int) -> StreamRecord:
        """The stream's record, read in the connection's transaction."""
        return self._record(stream_id, self._main)

    # Decoding ------------------------------------------------------------------------------
    def decode(self, stream_id: int, frame_ids: np.ndarray, *, in_query: bool = False) -> Iterator[tuple[int, Any]]:
        """(frame_id, decoded picture) for ascending, distinct ``frame_ids`` of a stream."""
        record, read = self._source(stream_id, in_query)
        frame_ids = np.asarray(frame_ids, dtype=np.int64)
        record.check_frame_ids(frame_ids)
        for run in runs(record, frame_ids):
            decoder = self._checkout(record, int(run[0]))
            try:
                yield from decoder.frames(run, read)
            except Exception:
                decoder = None  # a decoder that failed midway is not reused
                raise
            finally:
                if decoder is not None:
                    self._release(decoder)

    def _checkout(self, record: StreamRecord, frame_id: int) -> FrameDecoder:
        with self._lock:
            idle = self._idle.get(record.stream_id, [])
            usable = [d for d in idle if d.reaches(frame_id)]
            if usable:
                best = max(usable, key=lambda d: d.next_packet)
                idle.remove(best)
                return best
        return FrameDecoder(record, int(record.entry_packet[frame_id]), self.counters)

    def _release(self, decoder: FrameDecoder) -> None:
        with self._lock:
            idle = self._idle.setdefault(decoder.record.stream_id, [])
            idle.append(decoder)
            del idle[:-IDLE_PER_STREAM]
            while sum(len(v) for v in self._idle.values()) > IDLE_TOTAL:
                oldest = next(k for k, v in self._idle.items() if v)
                self._idle[oldest].pop(0)

    def frames_into(self, stream_id: int, frame_ids: np.ndarray, out: np.ndarray, *, in_query: bool = False) -> None:
        """Decode ascending, distinct ``frame_ids`` into ``out`` ((n, H, W, 3) uint8) as RGB."""
        height, width = out.shape[1:3]
        for position, (_, picture) in enumerate(self.decode(stream_id, frame_ids, in_query=in_query)):
            to_rgb(picture, width, height, out[position])
            self.counters.frames_returned += 1

    def batches(self, stream_id: int, frame_ids: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(frame_ids, (n, H, W, 3) uint8 frames) batches of ascending ``frame_ids``, decoded as they go."""
        record = self.record(stream_id)
        frame_ids = np.asarray(frame_ids, dtype=np.int64)
        pictures = self.decode(stream_id, frame_ids)
        for start in range(0, len(frame_ids), batch_size):
            ids = frame_ids[start:start + batch_size]
            out = np.empty((len(ids), record.height, record.width, 3), dtype=np.uint8)
            for position in range(len(ids)):
                _, picture = next(pictures)
                to_rgb(picture, record.width, record.height, out[position])
                self.counters.frames_returned += 1
            yield ids, out

    # The SQL function ------------------------------------------------------------------------
    def sql_frames(self, stream_ids: pa.Array, frame_ids: pa.Array, heights: pa.Array, widths: pa.Array) -> pa.Array:
        """``video_frame(stream_id, frame_id, height, width)`` over one vector of rows (no NULLs:
        DuckDB answers NULL for those without calling it): each row's frame as RGB bytes."""
        n = len(frame_ids)
        streams, ids, rows, cols = (np.asarray(a.to_numpy(zero_copy_only=False), dtype=np.int64)
                                    for a in (stream_ids, frame_ids, heights, widths))
        if self._inserting and np.isin(streams, list(self._inserting)).all():
            return _blobs(np.zeros((n, 0), np.uint8))
        keys = np.stack([streams, rows, cols], axis=1)
        groups = np.unique(keys, axis=0)
        if len(groups) == 1 and (n < 2 or np.all(np.diff(ids) > 0)):  # the usual vector: one table, in order
            stream_id, height, width = groups[0].tolist()
            frames = _frame_buffer(n, height, width)
            self.frames_into(stream_id, ids, frames, in_query=True)
            return _blobs(frames)
        values: list[bytes] = [b""] * n
        for stream_id, height, width in groups.tolist():
            rows_of = np.flatnonzero(np.all(keys == (stream_id, height, width), axis=1))
            wanted, inverse = np.unique(ids[rows_of], return_inverse=True)
            frames = _frame_buffer(len(wanted), height, width)
            self.frames_into(stream_id, wanted, frames, in_query=True)
            for row, position in zip(rows_of.tolist(), inverse.tolist()):
                values[row] = frames[position].tobytes()
        return pa.array(values, pa.large_binary())


#: The largest side of a decoded frame.
MAX_SIDE = 16384


def _frame_buffer(n: int, height: int, width: int) -> np.ndarray:
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise DataError(f"video_frame: expected a height and width between 1 and {MAX_SIDE}, found {height}x{width}")
    return np.empty((n, height, width, 3), dtype=np.uint8)


def _blobs(frames: np.ndarray) -> pa.Array:
    """A large_binary array over (n, ...) uint8 frames, one value per frame, without a copy."""
    n = len(frames)
    size = frames[0].nbytes if n else 0
    offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int64) * size)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, offsets, pa.py_buffer(frames)])


def decode_counters(con: Any) -> DecodeCounters:
    """A snapshot of the decoding work a connection has done (subtract two for one statement).

    >>> import engine
    >>> decode_counters(engine.connect()).frames_decoded
    0
    """
    return stream_reader(con._session).counters.copy()
