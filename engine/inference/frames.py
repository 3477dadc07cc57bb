"""The frames table an inference scan reads: its validation, its identity for the result
cache, the frames a scan selects, and reading them in frame_id order.

A frames table has ``frame_id`` (integer), a BLOB frame column of ``height*width*3`` RGB
bytes, and ``height``/``width`` (as LOAD VIDEO and :func:`engine.frames_from_numpy` make
it).  Its *video key* hashes the source's SHA-256, the table's catalog name, the stored
size and the sampling, so results cached for it are found again after a reopen and are
not found after LOAD OR REPLACE loads other content.

The frames reader.  A table stored as a stream (LOAD VIDEO's default) is read straight from
its packets: :meth:`FramesTable.frame_batches` decodes the frames a scan needs in frame_id
order, one run per stretch between keyframes (reading only the packets those runs need),
and hands them over a batch at a time, with the keyframe flag of each frame (a frame where
decoding can start; the incremental engine computes a full base frame there, so that a
segment's answers do not depend on what ran before it).  Pixels never pass through DuckDB
BLOBs on the way.  A table stored as pixels is read from its BLOBs, in large reads.

>>> import engine, numpy as np
>>> con = engine.connect()
>>> engine.frames_from_numpy(con, "clip", np.zeros((3, 4, 6, 3), dtype=np.uint8))
3
>>> from sqlglot import exp
>>> frames = FramesTable.resolve(con.session, exp.to_table("clip"), "frame", "m")
>>> frames.select(con.session, None).frame_ids.tolist(), frames.video_key is not None
([0, 1, 2], True)
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlglot import exp

from engine.errors import DataError, ProgrammingError
from engine.system_catalog import catalog_name
from engine.video_stream.reading import stream_reader
from engine.video_stream.store import stream_of_table

#: Bytes of frames one read of a pixels table brings into memory.
READ_BYTES = 256 << 20
#: Pixels tables have no codec keyframes: every this many frame_ids counts as one (about a
#: GOP of a camera stream), so that they too are cut into segments.
PIXEL_KEYFRAME_INTERVAL = 250

_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")


@dataclass(frozen=True)
class Selection:
    """The frames a scan covers, in frame_id order, with their stored sizes."""

    frame_ids: np.ndarray          # int64, ascending
    heights: np.ndarray
    widths: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_ids)

    def sizes(self) -> set[tuple[int, int]]:
        """The distinct (height, width) of the selected frames."""
        return set(zip(self.heights.tolist(), self.widths.tolist()))


@dataclass(frozen=True)
class FrameBatch:
    """Frames a scan reads, in frame_id order."""

    frame_ids: np.ndarray          # int64, ascending
    frames: np.ndarray             # (n, H, W, 3) uint8
    keyframes: np.ndarray          # bool: decoding can start at this frame (a segment starts here)

    def __len__(self) -> int:
        return len(self.frame_ids)


@dataclass(frozen=True)
class FramesTable:
    """A validated frames table and the frame column a model reads."""

    table: exp.Table
    name: str                      # catalog name
    frame_column: str
    columns: frozenset[str]
    video_key: str | None          # None: not registered in mallard.videos, so never cached
    stream_id: int | None = None   # stored as a stream: frames are decoded from its packets

    @property
    def storage(self) -> str:
        """'stream' (decoded from packets on read) or 'pixels' (RGB bytes in the table)."""
        return "stream" if self.stream_id is not None else "pixels"

    @classmethod
    def resolve(cls, session: Any, table: exp.Table, frame_column: str, caller: str) -> FramesTable:
        """Check that ``table`` is a frames table and ``frame_column`` its BLOB frame column."""
        plain = table.copy()
        if (plain.db or "").lower() == "main" and not plain.catalog:
            plain.set("db", None)  # main.traffic is traffic, as LOAD VIDEO records it
        name = catalog_name(plain)
        types = _column_types(session, table)
        if not types:
            raise ProgrammingError(f"{caller}(...): table {table.sql('duckdb')} does not exist")
        where = f"{caller}({frame_column}) over {table.sql('duckdb')}"
        if frame_column not in types:
            raise ProgrammingError(f"{where}: the table has no column {frame_column}")
        if types[frame_column] != "BLOB":
            raise ProgrammingError(
                f"{where}: expected a frame column (BLOB of height*width*3 RGB bytes), found column "
                f"{frame_column} of type {types[frame_column]}"
            )
        missing = [c for c in ("frame_id", "height", "width") if c not in types]
        if missing:
            raise ProgrammingError(
                f"{where}: expected a frames table (frame_id, frame, height, width as LOAD VIDEO makes it); "
                f"it lacks {', '.join(missing)}"
            )
        if types["frame_id"] not in _INTEGER_TYPES:
            raise ProgrammingError(f"{where}: expected an integer frame_id, found {types['frame_id']}")
        stream_id = stream_of_table(lambda q, p: session.sql(q, p).fetchall(), table, frame_column)
        return cls(table, name, frame_column, frozenset(types), _video_key(session, name), stream_id)

    def select(self, session: Any, predicate: exp.Expr | None, limit: int | None = None,
               order: str = "asc") -> Selection:
        """The frames passing ``predicate`` (over this table's columns), checked for size."""
        query = exp.select("frame_id", "height", "width").from_(self.table.copy())
        if self.stream_id is None:  # a stream's frames are never NULL (and testing one would decode it)
            query = query.where(exp.column(self.frame_column).is_(exp.null()).not_())
        if predicate is not None and self.can_evaluate(predicate):
            query = query.where(predicate.copy())
        if limit is not None:
            query = query.order_by(exp.Ordered(this=exp.column("frame_id"), desc=order == "desc")).limit(limit)
        rows = session.sql(query).fetchall()
        rows.sort(key=lambda r: r[0])
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        if len(ids) != len(np.unique(ids)):
            raise DataError(f"frames table {self.name} has duplicate frame_id values; expected one row per frame")
        for frame_id, height, width in rows:
            if height is None or width is None or height < 1 or width < 1:
                raise DataError(f"frame {frame_id} of {self.name}: expected a positive height and width, found "
                                f"{height}x{width}")
        return Selection(ids, np.array([r[1] for r in rows], dtype=np.int64), np.array([r[2] for r in rows], dtype=np.int64))

    def can_evaluate(self, predicate: exp.Expr) -> bool:
        """Whether every column ``predicate`` reads is a column of this table."""
        return all(c.name.lower() in self.columns for c in predicate.find_all(exp.Column))

    def read(self, session: Any, frame_ids: np.ndarray, height: int, width: int) -> np.ndarray:
        """The frames of ``frame_ids`` (ascending, all height x width) as (n, H, W, 3) uint8.

        DataError naming the first frame whose bytes are not height*width*3 (read here, where
        the frames are read anyway, so selecting frames never reads their pixels).
        """
        if len(frame_ids) == 0:
            return np.empty((0, height, width, 3), dtype=np.uint8)
        if self.stream_id is not None:
            frames = np.empty((len(frame_ids), height, width, 3), dtype=np.uint8)
            stream_reader(session).frames_into(session, self.stream_id, np.asarray(frame_ids, dtype=np.int64), frames)
            return frames
        query = (
            exp.select("frame_id", exp.column(self.frame_column)).from_(self.table.copy())
            .where("frame_id BETWEEN ? AND ? AND list_contains(?, frame_id)")
            .order_by("frame_id")
        )
        ids = [int(i) for i in frame_ids]
        table = arrow_query(session, query, [ids[0], ids[-1], ids])
        blobs = table.column(1).combine_chunks()
        if len(blobs) != len(ids):
            raise DataError(f"frames of {self.name} changed during the scan: expected {len(ids)}, read {len(blobs)}")
        sizes = np.diff(_offsets(blobs))
        wrong = np.flatnonzero(sizes != height * width * 3)
        if len(wrong):
            raise DataError(
                f"frame {ids[wrong[0]]} of {self.name}: expected height*width*3 = {height * width * 3} bytes for "
                f"{height}x{width} RGB, found {sizes[wrong[0]]} bytes"
            )
        return _pixels(blobs, len(ids), height, width)

    def batches(self, session: Any, frame_ids: np.ndarray, height: int, width: int,
                batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(frame_ids, frames) batches of ``frame_ids`` in order.

        Frames are read up to :data:`READ_BYTES` at a time: DuckDB fetches a BLOB column a
        whole vector (2048 rows) at a time, so reading 8 frames costs about as much as reading
        800, and few large reads beat one read per batch.
        """
        if self.stream_id is not None:
            yield from stream_reader(session).batches(session, self.stream_id, frame_ids, batch_size, height=height,
                                                      width=width)
            return
        per_read = max(batch_size, READ_BYTES // (height * width * 3) // batch_size * batch_size)
        for start in range(0, len(frame_ids), per_read):
            ids = frame_ids[start:start + per_read]
            frames = self.read(session, ids, height, width)
            for offset in range(0, len(ids), batch_size):
                yield ids[offset:offset + batch_size], frames[offset:offset + batch_size]


    def frame_batches(self, session: Any, frame_ids: np.ndarray, height: int, width: int,
                      batch_size: int) -> Iterator[FrameBatch]:
        """:meth:`batches` with the keyframe flag of each frame (see the module docstring)."""
        for ids, frames in self.batches(session, frame_ids, height, width, batch_size):
            yield FrameBatch(ids, frames, self.keyframes(session, ids))

    def keyframes(self, session: Any, frame_ids: np.ndarray) -> np.ndarray:
        """Which of ``frame_ids`` are keyframes: where decoding can start, so a segment starts.

        A stream's keyframes are its codec's (a frame whose packet decodes on its own); a
        pixels table's are every :data:`PIXEL_KEYFRAME_INTERVAL`-th frame_id.
        """
        ids = np.asarray(frame_ids, dtype=np.int64)
        if self.stream_id is None:
            return ids % PIXEL_KEYFRAME_INTERVAL == 0
        record = stream_reader(session).record(session, self.stream_id)
        record.check_frame_ids(ids)
        return record.keyframe[ids].astype(bool)


def _offsets(blobs: Any) -> np.ndarray:
    """The value offsets of an Arrow (large) binary array."""
    import pyarrow as pa

    dtype = np.int64 if pa.types.is_large_binary(blobs.type) else np.int32
    return np.frombuffer(blobs.buffers()[1], dtype=dtype)[blobs.offset: blobs.offset + len(blobs) + 1].astype(np.int64)


def _pixels(blobs: Any, n: int, height: int, width: int) -> np.ndarray:
    """(n, H, W, 3) uint8 from an Arrow binary array of n blobs of height*width*3 bytes, with one copy."""
    offsets = _offsets(blobs)
    data = np.frombuffer(blobs.buffers()[2], dtype=np.uint8)
    size = height * width * 3
    if offsets[-1] - offsets[0] == n * size:  # contiguous, as DuckDB hands them over
        return data[offsets[0]: offsets[0] + n * size].reshape(n, height, width, 3).copy()
    return np.stack([data[a:a + size].reshape(height, width, 3) for a in offsets[:-1]])


def arrow_query(session: Any, query: str | exp.Expr, params: list[Any] | None = None) -> Any:
    """The rows of ``query`` as a pyarrow Table (DuckDB's relation API: no extra copy)."""
    import duckdb

    from engine.errors import translate

    text = query if isinstance(query, str) else query.sql("duckdb")
    session.quiesce()  # DuckDB runs a relation only when no execute() result is pending
    try:
        return session.duck.sql(text, params=params).to_arrow_table()
    except duckdb.Error as e:
        raise translate(e) from e


def _column_types(session: Any, table: exp.Table) -> dict[str, str]:
    rows = session.sql(
        "SELECT lower(column_name), upper(data_type) FROM information_schema.columns WHERE lower(table_schema) ="
        " lower(?) AND lower(table_name) = lower(?) AND table_catalog = coalesce(?, current_database())",
        [table.db or "main", table.name, table.catalog or None],
    ).fetchall()
    return dict(rows)


def _video_key(session: Any, name: str) -> str | None:
    row = session.sql(
        "SELECT source_sha256, width, height, every FROM mallard.videos WHERE table_name = ?", [name]
    ).fetchone()
    if row is None:
        return None
    text = "|".join(str(v) for v in (row[0], name, f"{row[1]}x{row[2]}", row[3]))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
