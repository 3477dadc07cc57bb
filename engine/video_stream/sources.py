"""Where a reader of stored streams gets its rows.

Python code (``engine.iter_frames``, the inference scan) reads through the session's own
connection, in its transaction: it sees a video loaded and not yet committed.  The
``video_frame`` SQL function runs *inside* a query on a connection, where DuckDB forbids
using that connection, so it reads through a second connection to the same database
(:class:`CommittedReads`), which sees committed data only; a stream loaded in a
transaction still open is held in memory until then (:class:`HeldStreams`).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from engine.errors import OperationalError, translate
from engine.video_stream.store import StreamRecord


def session_query(session: Any, sql: str, params: list[Any]) -> pa.Table:
    """``sql`` on the session's own connection, as Arrow (sees its open transaction)."""
    import duckdb

    session.quiesce()  # DuckDB runs a relation only when no execute() result is pending
    try:
        return session.duck.sql(sql, params=params).to_arrow_table()
    except duckdb.Error as e:
        raise translate(e) from e


class CommittedReads:
    """Queries through a second connection (``connect()``: a cursor of the database instance's
    root connection), which sees committed data only and may be used inside a query."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._side: Any = None
        self._lock = threading.Lock()

    def __call__(self, sql: str, params: list[Any]) -> pa.Table:
        import duckdb

        with self._lock:
            if self._side is None:
                try:
                    self._side = self._connect()
                except duckdb.Error as e:
                    raise OperationalError(f"no connection to the database is left to read video packets "
                                           f"through: {e}") from e
            try:
                return self._side.sql(sql, params=params).to_arrow_table()
            except duckdb.Error as e:
                raise translate(e) from e


@dataclass(frozen=True)
class HeldStream:
    """A stream loaded in a transaction not yet committed: its record and all its packets."""

    record: StreamRecord
    packets: pa.Table


class HeldStreams:
    """Streams loaded in open transactions, readable by SQL until a read finds them committed."""

    def __init__(self, committed: CommittedReads) -> None:
        self._committed = committed
        self._held: dict[int, HeldStream] = {}

    def hold(self, record: StreamRecord, packets: pa.Table) -> None:
        """Keep a stream just loaded in an open transaction (all its packets, in order)."""
        self._held[record.stream_id] = HeldStream(record, packets)

    def get(self, stream_id: int) -> HeldStream | None:
        """The held stream, unless it is committed by now (then it is let go)."""
        held = self._held.get(stream_id)
        if held is None:
            return None
        if is_committed(self._committed, stream_id):
            self._held.pop(stream_id, None)
            return None
        return held

    def release_committed(self) -> None:
        """Let go of every held stream that other connections can see now."""
        for stream_id in list(self._held):
            self.get(stream_id)

    def __contains__(self, stream_id: int) -> bool:
        return stream_id in self._held


def is_committed(committed: CommittedReads, stream_id: int) -> bool:
    """Whether other connections see the stream (its load committed)."""
    table = committed("SELECT count(*) AS n FROM mallard.videos WHERE stream_id = ?", [stream_id])
    return bool(table.column("n")[0].as_py())
