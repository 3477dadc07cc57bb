"""Decoding stored streams: the ``video_frame`` SQL function and the frames readers of Python
code share one reader per database (its decoders, caches and counters).

Frames asked for together are decoded in frame_id order in *runs*: a run starts where
decoding on from the previous frame would cross a keyframe that a fresh decoder can start
at, so a sorted read decodes each frame at most once and a random read at most one GOP.
Idle decoders are kept, positioned, for the next request (``WHERE frame_id = k`` then
``k + 1`` decodes one more frame, not a GOP).  Where the packets come from: see
:mod:`engine.video_stream.sources`.

DuckDB registers a Python function once per database instance (every connection of this
process to the same file sees it), so the reader is per instance (:mod:`engine.instances`),
not per connection: the function, its second connection and the counters are shared by the
connections of one process to one database.
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine.errors import DataError, OperationalError
from engine.extensions import ScalarFunction
from engine.instances import Instance
from engine.options import whole_argument
from engine.video_stream.counters import DecodeCounters
from engine.video_stream.decoder import FrameDecoder, to_rgb
from engine.video_stream.sources import CommittedReads, HeldStreams, session_query
from engine.video_stream.store import FRAME_FUNCTION, StreamRecord, read_packets, read_record

if TYPE_CHECKING:
    from engine.session import Session

STATE_KEY = "video_stream.reader"
#: Idle decoders kept per stream, and in all.
IDLE_PER_STREAM, IDLE_TOTAL = 2, 4
#: The largest side of a decoded frame.
MAX_SIDE = 16384
#: The SQL function's last answer is kept for a repeated call while it is at most this big.
REPEAT_BYTES = 64 << 20
#: The SQL function keeps its last frame buffer when it is bigger than REPEAT_BYTES (an answer
#: kept for a repeated call holds its buffer) for the next call of the same shape, for at most
#: SPARE_SECONDS after its last use.
SPARE_SECONDS = 2.0

_READERS_LOCK = threading.Lock()


def instance_reader(instance: Instance) -> StreamReader:
    """The reader of a database instance (made on first use; see the module docstring)."""
    with _READERS_LOCK:
        reader = instance.state.get(STATE_KEY)
        if reader is None:
            reader = instance.state[STATE_KEY] = StreamReader(instance.root.cursor)
    return reader


def stream_reader(session: Session) -> StreamReader:
    """The reader of the session's database."""
    return instance_reader(session.instance)


def video_frame_function(instance: Instance) -> ScalarFunction:
    """``video_frame(stream_id, frame_id, height, width)``, which the ``frame`` column of a frames
    table stored as a stream calls, bound to the instance's reader."""
    reader = instance_reader(instance)

    def video_frame(stream_ids: pa.Array, frame_ids: pa.Array, heights: pa.Array, widths: pa.Array) -> pa.Array:
        """The frames of a vector of rows, decoded by the database's reader."""
        return reader.sql_frames(stream_ids, frame_ids, heights, widths)

    return ScalarFunction(FRAME_FUNCTION, video_frame, ("BIGINT", "BIGINT", "INTEGER", "INTEGER"), "BLOB",
                          vectorized=True, bound_to_instance=True)


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


#: (first, last) -> packets first..last of a stream, as Arrow.
PacketReader = Callable[[int, int], pa.Table]


class StreamReader:
    """See the module docstring.  One per database (:func:`stream_reader`)."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self.committed = CommittedReads(connect)
        self.held = HeldStreams(self.committed)
        self.counters = DecodeCounters()
        self._lock = threading.Lock()
        self._records: dict[int, StreamRecord] = {}
        self._idle: dict[int, list[FrameDecoder]] = {}
        self._inserting: set[int] = set()
        self._sql_lock = threading.Lock()
        self._last_call: tuple[bytes, pa.Array] | None = None
        self._spare = SpareBuffer()

    @contextmanager
    def inserting(self, stream_id: int) -> Iterator[None]:
        """While the rows of a stream's frames table are inserted, its frames read as empty.

        DuckDB evaluates a generated column when rows are inserted, to check that it can; the
        rows are the frame ids of the stream just indexed, so there is nothing to check, and
        decoding the whole video there would cost what storing the stream saves.
        """
        self._inserting.add(stream_id)
        try:
            yield
        finally:
            self._inserting.discard(stream_id)

    # Records and packets -----------------------------------------------------------------
    def record(self, session: Any | None, stream_id: int) -> StreamRecord:
        """The stream's record: read in the session's transaction, or (None) as SQL reads it."""
        record = self._records.get(stream_id)
        if record is None:
            held = self.held.get(stream_id) if session is None else None
            if held is not None:
                return held.record
            query = self.committed if session is None else (lambda q, p: session_query(session, q, p))
            record = read_record(query, stream_id)
            if record is None:
                raise OperationalError(f"video stream {stream_id} is not in the database (its frames table refers to"
                                       " a stream that was dropped, or that another connection has not committed)")
            self._records[stream_id] = record
        return record

    def _packets(self, session: Any | None, stream_id: int) -> PacketReader:
        if session is not None:
            return lambda first, last: read_packets(lambda q, p: session_query(session, q, p), stream_id, first, last)
        held = self.held.get(stream_id)
        if held is not None:
            return lambda first, last: held.packets.slice(first, last - first + 1)
        return lambda first, last: read_packets(self.committed, stream_id, first, last)

    # Decoding ------------------------------------------------------------------------------
    def decode(self, session: Any | None, stream_id: int, frame_ids: np.ndarray, *,
               lowres: int = 0) -> Iterator[tuple[int, Any]]:
        """(frame_id, decoded picture) for ascending, distinct ``frame_ids`` of a stream, reading
        through the session's connection (None: as the SQL function does); ``lowres`` as
        :func:`~engine.video_stream.codec.open_decoder` takes it (smaller pictures)."""
        record = self.record(session, stream_id)
        read = self._packets(session, stream_id)
        frame_ids = np.asarray(frame_ids, dtype=np.int64)
        record.check_frame_ids(frame_ids)
        for run in runs(record, frame_ids):
            decoder = self._checkout(record, int(run[0]), lowres)
            failed = False
            try:
                yield from decoder.frames(run, read)
            except Exception:
                failed = True  # a decoder that failed midway is not reused
                raise
            finally:
                if not failed:
                    self._release(decoder)

    def _checkout(self, record: StreamRecord, frame_id: int, lowres: int) -> FrameDecoder:
        with self._lock:
            idle = self._idle.get(record.stream_id, [])
            usable = [d for d in idle if d.lowres == lowres and d.reaches(frame_id)]
            if usable:
                best = max(usable, key=lambda d: d.next_packet)
                idle.remove(best)
                return best
        return FrameDecoder(record, int(record.entry_packet[frame_id]), self.counters, lowres)

    def _release(self, decoder: FrameDecoder) -> None:
        with self._lock:
            idle = self._idle.setdefault(decoder.record.stream_id, [])
            idle.append(decoder)
            del idle[:-IDLE_PER_STREAM]
            while sum(len(v) for v in self._idle.values()) > IDLE_TOTAL:
                oldest = next(k for k, v in self._idle.items() if v)
                self._idle[oldest].pop(0)

    def frames_into(self, session: Any | None, stream_id: int, frame_ids: np.ndarray, out: np.ndarray) -> None:
        """Decode ascending, distinct ``frame_ids`` into ``out`` ((n, H, W, 3) uint8) as RGB."""
        height, width = out.shape[1:3]
        for position, (_, picture) in enumerate(self.decode(session, stream_id, frame_ids)):
            to_rgb(picture, width, height, out[position])
            self.counters.frames_returned += 1

    def batches(self, session: Any, stream_id: int, frame_ids: np.ndarray, batch_size: int, *,
                height: int | None = None, width: int | None = None, lowres: int = 0,
                timed: Callable[[str, float], None] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(frame_ids, (n, H, W, 3) uint8 frames) batches of ascending ``frame_ids``, decoded as they
        go (one batch of pixels in memory), at the stream's stored size unless given; ``lowres``
        as :meth:`decode` takes it; ``timed(stage, seconds)`` hears each batch's 'decode' and
        'convert' seconds."""
        batch_size = whole_argument("batch_size", batch_size, 1)  # range() below needs a step >= 1
        record = self.record(session, stream_id)
        height, width = height or record.height, width or record.width
        frame_ids = np.asarray(frame_ids, dtype=np.int64)
        pictures = self.decode(session, stream_id, frame_ids, lowres=lowres)
        for start in range(0, len(frame_ids), batch_size):
            ids = frame_ids[start:start + batch_size]
            out = _frame_buffer(len(ids), height, width)
            decoding = converting = 0.0
            for position in range(len(ids)):
                started = time.perf_counter()
                _, picture = next(pictures)
                middle = time.perf_counter()
                to_rgb(picture, width, height, out[position])
                decoding += middle - started
                converting += time.perf_counter() - middle
            self.counters.frames_returned += len(ids)
            if timed is not None:
                timed("decode", decoding)
                timed("convert", converting)
            yield ids, out

    # The SQL function ------------------------------------------------------------------------
    def sql_frames(self, stream_ids: pa.Array, frame_ids: pa.Array, heights: pa.Array, widths: pa.Array) -> pa.Array:
        """``video_frame(stream_id, frame_id, height, width)`` over one vector of rows (no NULLs:
        DuckDB answers NULL for those without calling it): each row's frame as RGB bytes.

        Calls are served one at a time.  DuckDB 2.0 calls a function twice, from two threads, for
        a vector of one row; the second call is answered from the first's result (kept while it
        is small), so ``WHERE frame_id = k`` decodes its GOP once.
        """
        columns = [np.asarray(a.to_numpy(zero_copy_only=False), dtype=np.int64)
                   for a in (stream_ids, frame_ids, heights, widths)]
        key = b"".join(c.tobytes() for c in columns)
        if self._inserting and np.isin(columns[0], list(self._inserting)).all():
            return _blobs(np.zeros((len(columns[1]), 0), np.uint8))
        with self._sql_lock:
            if self._last_call is not None and self._last_call[0] == key:
                return self._last_call[1]
            result = self._sql_frames(*columns)
            self._last_call = (key, result) if result.nbytes <= REPEAT_BYTES else None
            return result

    def _sql_frames(self, streams: np.ndarray, ids: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> pa.Array:
        n = len(ids)
        keys = np.stack([streams, rows, cols], axis=1)
        groups = np.unique(keys, axis=0)
        if len(groups) == 1 and (n < 2 or np.all(np.diff(ids) > 0)):  # the usual vector: one table, in order
            stream_id, height, width = groups[0].tolist()
            frames = self._spare.take(n, height, width)
            self.frames_into(None, stream_id, ids, frames)
            return _blobs(frames)
        values: list[bytes] = [b""] * n
        for stream_id, height, width in groups.tolist():
            rows_of = np.flatnonzero(np.all(keys == (stream_id, height, width), axis=1))
            wanted, inverse = np.unique(ids[rows_of], return_inverse=True)
            frames = _frame_buffer(len(wanted), height, width)
            self.frames_into(None, stream_id, wanted, frames)
            for row, position in zip(rows_of.tolist(), inverse.tolist()):
                values[row] = frames[position].tobytes()
        return pa.array(values, pa.large_binary())



class SpareBuffer:
    """The SQL function's frame buffer, kept for its next call of the same shape.

    A native-size scan hands the function a whole vector of frames at once (795 at 576x768: a
    gigabyte), and writing into fresh memory costs a page fault a page, as much as decoding.
    The buffer is reused only once nothing but this holder references it (DuckDB has let go of
    the Arrow array over it), and dropped ``SPARE_SECONDS`` after its last use, so a finished
    scan does not keep a gigabyte.

    >>> spare = SpareBuffer()
    >>> a = spare.take(2, 4096, 4096)          # 96 MiB: kept
    >>> spare.take(2, 4096, 4096) is a         # still referenced (by ``a``): a new one
    False
    >>> b = spare.take(2, 4096, 4096); del b
    >>> c = spare.take(2, 4096, 4096); spare.drop(); c.shape
    (2, 4096, 4096, 3)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer: np.ndarray | None = None
        self._timer: threading.Timer | None = None

    def take(self, n: int, height: int, width: int) -> np.ndarray:
        with self._lock:
            buffer = self._buffer
            if buffer is not None and buffer.shape == (n, height, width, 3) and sys.getrefcount(buffer) <= 3:
                reused: np.ndarray = buffer           # held by self._buffer, this name and the call
            else:
                reused = _frame_buffer(n, height, width)
                self._buffer = reused if reused.nbytes > REPEAT_BYTES else None
            if self._buffer is not None:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = threading.Timer(SPARE_SECONDS, self.drop)
                self._timer.daemon = True
                self._timer.start()
            return reused

    def drop(self) -> None:
        with self._lock:
            self._buffer = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


def _frame_buffer(n: int, height: int, width: int) -> np.ndarray:
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise DataError(f"video_frame: expected a height and width between 1 and {MAX_SIDE}, found {height}x{width}")
    # Python's allocator, not numpy's: numpy asks the kernel for transparent huge pages on large
    # arrays (madvise), and where the kernel defragments on demand a gigabyte of frames (795 at
    # 576x768) then stalls the scan for seconds (measured: 1.2-12.9 s for one query, 1.3-2.4 s
    # without).  A bytearray of that size is fresh zeroed pages, not written until decoded into.
    return np.frombuffer(bytearray(n * height * width * 3), dtype=np.uint8).reshape(n, height, width, 3)


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
    return stream_reader(con.session).counters.copy()
