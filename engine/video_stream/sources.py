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
import weakref
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
    """Queries through a second connection (``cursor()``) of any live session of a database."""

    def __init__(self) -> None:
        self._sessions: weakref.WeakSet[Any] = weakref.WeakSet()
        self._side: Any = None
        self._lock = threading.Lock()

    def attach(self, session: Any) -> None:
        """Let the second connection be opened through ``session`` (held weakly)."""
        self._sessions.add(session)

    def __call__(self, sql: str, params: list[Any]) -> pa.Table:
        import duckdb

        with self._lock:
            for _ in range(2):
                side = self._side if self._side is not None else self._open()
                try:
                    return side.sql(sql, params=params).to_arrow_table()
                except duckdb.ConnectionException:
                    self._side = None  # its session was closed: open one through another
                except duckdb.Error as e:
                    raise translate(e) from e
        raise OperationalError("no open connection to the database is left to read video packets through")

    def _open(self) -> Any:
        import duckdb

        for session in list(self._sessions):
            try:
                self._side = session.duck.cursor()
                return self._side
            except duckdb.Error:
                continue
        raise OperationalError("no open connection to the database is left to read video packets through")


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
