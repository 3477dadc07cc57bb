"""Where a stored stream lives in the database, and reading and writing it.

A stream ``s`` is described by its frames table's row of ``mallard.videos`` (``stream_id``,
the codec, its private data and the rest of what a decoder needs, the output size) and
stored in ``mallard.video_packets_<s>``: one row per packet in decoding order, with its
bytes, and the keyframe index beside them (the frame each packet's picture is, and the
keyframe packet decoding starts from to reach it).  One table per video, so dropping a
video frees its blocks, and no other table to grow.

The frames table users query is a table whose ``frame`` column is generated:
``frame BLOB GENERATED ALWAYS AS (video_frame(<s>, frame_id, height, width)) VIRTUAL``, so
its other columns are stored, DuckDB pushes filters on them down to the scan as it does for
any table (it would not through a view calling a Python function, which it treats as
volatile), ``ORDER BY ... LIMIT`` fetches the frame of the rows it keeps only (the
expression reads columns besides the sort key), and only the frames a query reads are
decoded.  The stream a frames table reads is found from that expression
(:func:`stream_of_table`), so a renamed table keeps working.

Everything here takes a DuckDB connection (or a function running queries) and plain values.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from engine.errors import DataError, OperationalError
from engine.video_stream.codec import CodecParameters
from engine.video_stream.index import FrameIndex

#: The SQL function a frames table's ``frame`` column calls (registered on every connection).
FRAME_FUNCTION = "video_frame"
PACKETS_PREFIX = "video_packets_"
_STREAM_OF = re.compile(rf"\b{FRAME_FUNCTION}\((\d+),\s*frame_id\b")

#: A query runner: (sql, params) -> pyarrow Table.
Query = Callable[[str, list[Any]], pa.Table]


def new_stream_id() -> int:
    """A fresh stream id (random, so concurrent loads never collide and ids are never reused)."""
    return secrets.randbits(62) | (1 << 40)


def packets_table(stream_id: int) -> exp.Table:
    """The table holding a stream's packets."""
    return exp.Table(this=exp.to_identifier(f"{PACKETS_PREFIX}{stream_id}"), db=exp.to_identifier("mallard"))


def frames_table_ddl(target: exp.Table, stream_id: int) -> str:
    """CREATE TABLE of a stream's frames table: ``frame`` is decoded on read."""
    return (f"CREATE TABLE {target.sql('duckdb')} (frame_id BIGINT NOT NULL, ts DOUBLE, frame BLOB GENERATED ALWAYS"
            f" AS ({FRAME_FUNCTION}({int(stream_id)}, frame_id, height, width)) VIRTUAL, height INTEGER, width INTEGER,"
            f" source VARCHAR)")


def packets_table_ddl(stream_id: int) -> str:
    """CREATE TABLE of a stream's packets and keyframe index (see the module docstring)."""
    return (f"CREATE TABLE {packets_table(stream_id).sql('duckdb')} (packet BIGINT NOT NULL, pts BIGINT NOT NULL,"
            " dts BIGINT, keyframe BOOLEAN NOT NULL, pos BIGINT, frame_id BIGINT, ts DOUBLE, entry_packet BIGINT,"
            " data BLOB NOT NULL)")


def stream_of_expression(expression: str | None) -> int | None:
    """The stream id a frames table's generated ``frame`` expression reads, if it is one.

    >>> stream_of_expression("video_frame(1099511627777, frame_id)")
    1099511627777
    >>> stream_of_expression("CAST(x AS BLOB)") is None
    True
    """
    match = _STREAM_OF.search(expression or "")
    return int(match.group(1)) if match else None


def stream_of_table(run: Callable[[str, list[Any]], list[tuple[Any, ...]]], table: exp.Table,
                    frame_column: str = "frame") -> int | None:
    """The stream a frames table decodes its ``frame_column`` from; None for stored pixels."""
    rows = run(
        "SELECT generation_expression FROM duckdb_columns() WHERE is_generated AND lower(schema_name) = lower(?)"
        " AND lower(table_name) = lower(?) AND lower(column_name) = lower(?)"
        " AND database_name = coalesce(?, current_database())",
        [table.db or "main", table.name, frame_column, table.catalog or None],
    )
    return stream_of_expression(rows[0][0]) if rows else None


# Writing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredStream:
    """What mallard.videos records of a stream beside the video itself."""

    stream_id: int
    params: CodecParameters
    packet_count: int
    packet_bytes: int

    def values(self) -> list[Any]:
        """stream_id, extradata, decoder JSON, packet_count, packet_bytes."""
        _, extradata, decoder = self.params.to_row()
        return [self.stream_id, extradata, decoder, self.packet_count, self.packet_bytes]


def index_batch(index: FrameIndex) -> pa.RecordBatch:
    """The keyframe index columns of a stream's packets, by packet, as Arrow (for an UPDATE)."""
    return pa.record_batch({
        "packet": pa.array(index.packet),
        "frame_id": pa.array(np.arange(len(index), dtype=np.int64)),
        "ts": pa.array(index.ts),
        "entry_packet": pa.array(index.entry_packet),
    })


def index_update(stream_id: int, source: str) -> str:
    """UPDATE writing the index columns of ``source`` (an :func:`index_batch`) into the packets."""
    table = packets_table(stream_id).sql("duckdb")
    return (f"UPDATE {table} SET frame_id = i.frame_id, ts = i.ts, entry_packet = i.entry_packet FROM {source} i"
            f" WHERE {table}.packet = i.packet")


def drop_stream(sql: Callable[..., Any], stream_id: int) -> None:
    """Delete a stream: its packets table and its catalog rows (in the caller's transaction)."""
    sql(exp.Drop(tables=[packets_table(stream_id)], kind="TABLE", exists=True).sql("duckdb"))
    sql("DELETE FROM mallard.videos WHERE stream_id = ?", [stream_id])


def orphaned_streams(run: Callable[[str, list[Any]], list[tuple[Any, ...]]]) -> list[int]:
    """Streams no table reads any more (their frames table was dropped), and packets tables
    no catalog row knows."""
    rows = run("SELECT stream_id FROM mallard.videos WHERE stream_id IS NOT NULL", [])
    tables = run("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'mallard' AND database_name ="
                 " current_database() AND starts_with(table_name, ?)", [PACKETS_PREFIX])
    known = {r[0] for r in rows} | {int(t[0][len(PACKETS_PREFIX):]) for t in tables
                                    if t[0][len(PACKETS_PREFIX):].isdigit()}
    if not known:
        return []
    used = {stream_of_expression(r[0]) for r in run(
        "SELECT generation_expression FROM duckdb_columns() WHERE is_generated AND database_name = current_database()"
        " AND generation_expression LIKE ?", [f"%{FRAME_FUNCTION}(%"])}
    return sorted(known - used)


# Reading ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamRecord:
    """A stored stream as a decoder reads it: parameters, output size and the keyframe index."""

    stream_id: int
    table_name: str
    source: str
    params: CodecParameters
    width: int
    height: int
    packet_count: int
    frame_pts: np.ndarray          # by frame_id
    packet: np.ndarray
    entry_packet: np.ndarray
    keyframe: np.ndarray

    @property
    def frame_count(self) -> int:
        """Frames of the stream's frames table."""
        return len(self.frame_pts)

    @property
    def label(self) -> str:
        """How error messages name the video."""
        return f"{self.table_name} ({self.source.rsplit('/', 1)[-1]})"

    def check_frame_ids(self, frame_ids: np.ndarray) -> None:
        """DataError naming the first id that is not a frame of the stream."""
        bad = frame_ids[(frame_ids < 0) | (frame_ids >= self.frame_count)]
        if len(bad):
            raise DataError(f"frame {int(bad[0])} of {self.label}: no such frame (the stream has frames 0 to "
                            f"{self.frame_count - 1})")


def read_record(query: Query, stream_id: int) -> StreamRecord | None:
    """The stream's record as ``query`` sees it; None if it does not see the stream."""
    head = query("SELECT table_name, source, codec, extradata, decoder, width, height, packet_count"
                 " FROM mallard.videos WHERE stream_id = ? LIMIT 1", [stream_id])
    if head.num_rows == 0:
        return None
    row = {name: head.column(name)[0].as_py() for name in head.column_names}
    index = query(f"SELECT pts, packet, entry_packet, keyframe AND entry_packet = packet AS keyframe FROM"
                  f" {packets_table(stream_id).sql('duckdb')} WHERE frame_id IS NOT NULL ORDER BY frame_id", [])
    params = CodecParameters.from_row((row["codec"], row["extradata"], row["decoder"]))
    return StreamRecord(
        stream_id=stream_id, table_name=row["table_name"], source=row["source"], params=params,
        width=row["width"], height=row["height"], packet_count=row["packet_count"],
        frame_pts=index.column("pts").to_numpy(), packet=index.column("packet").to_numpy(),
        entry_packet=index.column("entry_packet").to_numpy(),
        keyframe=index.column("keyframe").to_numpy(zero_copy_only=False),
    )


def keyframe_index(stream_id: int) -> str:
    """A query of a stream's keyframe index: one row per frame (frame_id, pts, ts, packet, pos,
    keyframe, entry_packet)."""
    return (f"SELECT frame_id, pts, ts, packet, pos, keyframe AND entry_packet = packet AS keyframe, entry_packet"
            f" FROM {packets_table(stream_id).sql('duckdb')} WHERE frame_id IS NOT NULL ORDER BY frame_id")


def read_packets(query: Query, stream_id: int, first: int, last: int) -> pa.Table:
    """Packets ``first`` .. ``last`` (decoding order, inclusive) of a stream: packet, pts, dts, data."""
    table = query(f"SELECT packet, pts, dts, data FROM {packets_table(stream_id).sql('duckdb')}"
                  " WHERE packet BETWEEN ? AND ?", [first, last])
    numbers = table.column("packet").to_numpy()
    if len(numbers) and np.any(np.diff(numbers) < 0):
        table = table.sort_by("packet")
    if table.num_rows != last - first + 1:
        raise OperationalError(f"stream {stream_id}: expected packets {first} to {last}, found {table.num_rows} "
                               "(its packets table was changed or dropped)")
    return table
