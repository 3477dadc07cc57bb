"""Served traffic is data: every input a server answers becomes a row of a DuckDB table.

One table per model, ``<schema>.<model>`` (schema ``served`` by default), with the request's
identity and timing, the input (numeric columns as they are, by name; for images their size,
format, byte count, mean brightness and SHA-256, not the pixels) and the prediction.  So
``VALIDATE (SELECT a, b FROM served.fares) AGAINST fares_schema WITH (environment = 'SERVING',
training = trips)`` checks training/serving skew, and ``SELECT predicted_label, count(*) FROM
served.fares WHERE model_version = 3 AND served_at > now() - INTERVAL 1 DAY GROUP BY 1`` says
what version 3 predicted yesterday.

Logging never blocks an answer: :meth:`TrafficLog.append` puts the row in a bounded buffer
and returns; a writer thread appends the buffer to the tables in batches (when
``flush_rows`` rows wait, or ``flush_seconds`` after the first), through one Arrow insert
per table.  When the buffer is full the row is dropped and counted
(``mallard_log_dropped_rows_total``).  A model's table gains the columns a new version's
inputs add (``INSERT ... BY NAME``).

>>> import engine, datetime
>>> con = engine.connect(autocommit=True)
>>> log = TrafficLog(con, "served", capacity=100, flush_rows=10, flush_seconds=0.05)
>>> row = {"request_id": "r1", "input_index": 0, "served_at": datetime.datetime.now(datetime.timezone.utc),
...        "model_version": 1, "latency_ms": 3.5, "queue_ms": 1.0, "compute_ms": 2.0, "batch_size": 1,
...        "cache_hit": False, "predicted_label": "high", "predicted_class_id": 1, "predicted_score": 0.9}
>>> log.append("fares", {**row, "a": 1.5, "b": -2.0})
True
>>> log.close()
>>> con.execute("SELECT model_version, a, b, predicted_label FROM served.fares").fetchall()
[(1, 1.5, -2.0, 'high')]
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

if TYPE_CHECKING:
    import engine

#: The columns every log table has, in order, with their types; input columns follow them.
COLUMNS: dict[str, str] = {
    "request_id": "VARCHAR",
    "input_index": "INTEGER",
    "served_at": "TIMESTAMPTZ",
    "model_version": "INTEGER",
    "latency_ms": "DOUBLE",
    "queue_ms": "DOUBLE",
    "compute_ms": "DOUBLE",
    "batch_size": "INTEGER",
    "cache_hit": "BOOLEAN",
}
#: The prediction's columns (after the inputs).
PREDICTION_COLUMNS: dict[str, str] = {
    "predicted_label": "VARCHAR",
    "predicted_class_id": "INTEGER",
    "predicted_score": "DOUBLE",
}
#: What an image input logs instead of its pixels.
IMAGE_COLUMNS: dict[str, str] = {
    "image_format": "VARCHAR",
    "image_height": "INTEGER",
    "image_width": "INTEGER",
    "image_bytes": "INTEGER",
    "image_brightness": "DOUBLE",
    "image_sha256": "VARCHAR",
}
_ARROW = {"VARCHAR": pa.string(), "INTEGER": pa.int32(), "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
          "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_()}


def column_type(name: str) -> str:
    """The SQL type of a log column (numeric inputs are DOUBLE)."""
    return COLUMNS.get(name) or PREDICTION_COLUMNS.get(name) or IMAGE_COLUMNS.get(name) or "DOUBLE"


class TrafficLog:
    """The bounded buffer and its writer thread (see the module docstring)."""

    def __init__(self, connection: engine.Connection, schema: str, *, capacity: int = 100_000,
                 flush_rows: int = 1024, flush_seconds: float = 0.5,
                 on_written: Callable[[int], None] | None = None, on_dropped: Callable[[int], None] | None = None,
                 lock: threading.RLock | None = None) -> None:
        self.connection, self.schema = connection, schema
        self.capacity, self.flush_rows, self.flush_seconds = capacity, flush_rows, flush_seconds
        self.on_written, self.on_dropped = on_written, on_dropped
        self.lock = lock or threading.RLock()   # held while writing (the server's connection lock)
        self.dropped = self.written = 0
        self.error: str | None = None            # the last write failure, if any (shown by /v1/models)
        self._rows: deque[tuple[str, dict[str, Any]]] = deque()
        self._cond = threading.Condition()
        self._oldest: float | None = None
        self._flushing = 0
        self._stopped = False
        self._tables: dict[str, set[str]] = {}   # model -> columns its table has
        self._thread = threading.Thread(target=self._work, name="mallard-traffic-log", daemon=True)
        self._thread.start()

    def append(self, model: str, row: dict[str, Any]) -> bool:
        """Queue one row for ``model``'s table; False (and counted) when the buffer is full."""
        with self._cond:
            if len(self._rows) >= self.capacity or self._stopped:
                self.dropped += 1
                if self.on_dropped is not None:
                    self.on_dropped(1)
                return False
            self._rows.append((model, row))
            if self._oldest is None:
                self._oldest = time.monotonic()
            if len(self._rows) >= self.flush_rows:
                self._cond.notify()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Write what the buffer holds now and wait for it (True when written in time)."""
        with self._cond:
            self._flushing += 1
            self._cond.notify()
            end = time.monotonic() + timeout
            while (self._rows or self._flushing) and (left := end - time.monotonic()) > 0:
                self._cond.wait(left)
            return not self._rows

    def close(self) -> None:
        """Write everything left and stop the writer."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=60)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._stopped and not self._rows:
                        self._flushing = 0
                        self._cond.notify_all()
                        return
                    timeout = None if self._oldest is None else max(0.0, self._oldest + self.flush_seconds - time.monotonic())
                    self._cond.wait(timeout)
                rows = list(self._rows)
                self._rows.clear()
                self._oldest = None
            self._write(rows)
            with self._cond:
                self._flushing = 0 if not self._rows else self._flushing
                self._cond.notify_all()

    def _due(self) -> bool:
        if not self._rows:
            return False
        return (self._stopped or self._flushing > 0 or len(self._rows) >= self.flush_rows
                or (self._oldest is not None and time.monotonic() >= self._oldest + self.flush_seconds))

    def _write(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        by_model: dict[str, list[dict[str, Any]]] = {}
        for model, row in rows:
            by_model.setdefault(model, []).append(row)
        for model, model_rows in by_model.items():
            try:
                with self.lock:
                    self._append(model, model_rows)
                self.written += len(model_rows)
                if self.on_written is not None:
                    self.on_written(len(model_rows))
            except Exception as e:  # never let logging take the server down: count and remember
                self._tables.pop(model, None)  # the table may have been dropped or changed: look again next time
                self.error = f"writing {len(model_rows)} rows of {model}: {e}"
                self.dropped += len(model_rows)
                if self.on_dropped is not None:
                    self.on_dropped(len(model_rows))

    def _append(self, model: str, rows: list[dict[str, Any]]) -> None:
        names: list[str] = list(COLUMNS)
        for row in rows:
            names += [n for n in row if n not in names and n not in PREDICTION_COLUMNS]
        names += list(PREDICTION_COLUMNS)
        table = exp.Table(this=exp.to_identifier(model, quoted=True), db=exp.to_identifier(self.schema, quoted=True))
        self._ensure_table(model, table, names)
        data = pa.table({n: pa.array([row.get(n) for row in rows], _ARROW[column_type(n)]) for n in names})
        session = self.connection.session
        name = f"__mallard_traffic_{id(data)}"
        session.register(name, data)
        try:
            session.sql(f"INSERT INTO {table.sql('duckdb')} BY NAME SELECT * FROM {exp.to_identifier(name).sql('duckdb')}")
        finally:
            session.unregister(name)

    def _ensure_table(self, model: str, table: exp.Table, names: list[str]) -> None:
        known = self._tables.get(model)
        if known is not None and all(n in known for n in names):
            return
        session = self.connection.session
        session.sql(f"CREATE SCHEMA IF NOT EXISTS {exp.to_identifier(self.schema, quoted=True).sql('duckdb')}")
        columns = ", ".join(f"{exp.to_identifier(n, quoted=True).sql('duckdb')} {column_type(n)}" for n in names)
        session.sql(f"CREATE TABLE IF NOT EXISTS {table.sql('duckdb')} ({columns})")
        existing = {r[0] for r in session.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [self.schema, model]).fetchall()}
        for n in names:
            if n not in existing:
                session.sql(f"ALTER TABLE {table.sql('duckdb')} ADD COLUMN "
                            f"{exp.to_identifier(n, quoted=True).sql('duckdb')} {column_type(n)}")
        self._tables[model] = existing | set(names)
