"""The result cache (as EVA reuses function results across queries): per-frame results of a
model version over a video in one mode, stored in ``mallard.inference_cache``.

A key names the model version, the video (see :mod:`engine.inference.frames`) and the
mode with its configuration; a scan reads what the key already holds and computes only
the missing frames.  A new model version deletes the older versions' rows; frames
reloaded with other content get another video key, and their table's old rows go.

>>> import engine, numpy as np
>>> from engine.inference.frame_results import FrameResults
>>> con = engine.connect()
>>> cache = ResultCache(con.session, CacheKey("m", 1, "v0", "clip", "full"))
>>> cache.store(FrameResults.from_arrays([0, 1], np.eye(2, dtype=np.float32), np.ones((2, 3), np.float32),
...                                      ["full"] * 2, [5, 5], [5, 5]))
>>> cache.cached_ids(np.array([0, 1, 2])).tolist()
[0, 1]
>>> cache.read(np.array([1]), {"features"}).features.tolist()
[[1.0, 1.0, 1.0]]
"""
from __future__ import annotations

import datetime
from collections.abc import Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine.inference.frame_results import FrameResults, float_lists, matrix
from engine.inference.frames import arrow_query

if TYPE_CHECKING:
    from engine.session import Session

_IDS = "__mallard_cache_ids"
_ROWS = "__mallard_cache_rows"


@dataclass(frozen=True)
class CacheKey:
    """What results are valid for: a model version, a video, a mode (with its configuration)."""

    model: str
    version: int
    video_key: str
    table_name: str
    mode_key: str

    def where(self, alias: str = "c") -> str:
        return (f"{alias}.model = ? AND {alias}.version = ? AND {alias}.video_key = ? AND "
                f"{alias}.mode_key = ?")

    def params(self) -> list[Any]:
        return [self.model, self.version, self.video_key, self.mode_key]


class ResultCache:
    """Reads and writes the cached results of one key."""

    def __init__(self, session: Session, key: CacheKey) -> None:
        self.session = session
        self.key = key

    def cached_ids(self, frame_ids: np.ndarray) -> np.ndarray:
        """Those of ``frame_ids`` whose results are cached, ascending."""
        if len(frame_ids) == 0:
            return np.empty(0, np.int64)
        self.session.register(_IDS, pa.table({"frame_id": pa.array(frame_ids, pa.int64())}))
        try:
            rows = self.session.sql(
                f"SELECT DISTINCT c.frame_id FROM mallard.inference_cache c SEMI JOIN {_IDS} i"
                f" ON c.frame_id = i.frame_id WHERE {self.key.where()} ORDER BY 1", self.key.params(),
            ).fetchall()
        finally:
            self.session.unregister(_IDS)
        return np.array([r[0] for r in rows], dtype=np.int64)

    def read(self, frame_ids: np.ndarray, outputs: Set[str]) -> FrameResults:
        """The cached results of ``frame_ids`` (all cached), with logits/features only if in ``outputs``."""
        if len(frame_ids) == 0:
            return FrameResults.empty()
        lists = [c for c in ("logits", "features") if c in outputs]
        select = ", ".join(["c.frame_id", "c.class_id", "c.score", "c.kind", "c.macs", "c.macs_full"]
                           + [f"c.{c}" for c in lists])
        self.session.register(_IDS, pa.table({"frame_id": pa.array(frame_ids, pa.int64())}))
        try:
            table = arrow_query(
                self.session,
                f"SELECT {select} FROM mallard.inference_cache c SEMI JOIN {_IDS} i ON c.frame_id = i.frame_id"
                f" WHERE {self.key.where()} QUALIFY row_number() OVER (PARTITION BY c.frame_id) = 1"
                " ORDER BY c.frame_id", self.key.params(),
            )
        finally:
            self.session.unregister(_IDS)
        n = table.num_rows
        self._touch(frame_ids)
        return FrameResults(
            frame_ids=table.column("frame_id").to_numpy().astype(np.int64),
            class_ids=table.column("class_id").to_numpy().astype(np.int32),
            scores=table.column("score").to_numpy().astype(np.float64),
            logits=matrix(table.column("logits"), 0) if "logits" in lists else np.empty((n, 0), np.float32),
            features=matrix(table.column("features"), 0) if "features" in lists else np.empty((n, 0), np.float32),
            kinds=np.asarray(table.column("kind").to_pylist(), dtype=object),
            macs=table.column("macs").to_numpy(zero_copy_only=False).astype(np.int64),
            macs_full=table.column("macs_full").to_numpy(zero_copy_only=False).astype(np.int64),
        )

    def _touch(self, frame_ids: np.ndarray) -> None:
        """Record that these results were used now (the order a cache limit evicts in)."""
        if self.session.read_only or len(frame_ids) == 0:
            return
        self.session.register(_IDS, pa.table({"frame_id": pa.array(frame_ids, pa.int64())}))
        try:
            self.session.sql(
                f"UPDATE mallard.inference_cache c SET last_used_at = current_timestamp FROM {_IDS} i"
                f" WHERE c.frame_id = i.frame_id AND {self.key.where()}", self.key.params())
        finally:
            self.session.unregister(_IDS)

    def store(self, results: FrameResults) -> None:
        """Add the rows of ``results`` (frames not cached yet under this key)."""
        if len(results) == 0:
            return
        n = len(results)
        rows = pa.table({
            "model": pa.array([self.key.model] * n, pa.string()),
            "version": pa.array(np.full(n, self.key.version, np.int32)),
            "video_key": pa.array([self.key.video_key] * n, pa.string()),
            "table_name": pa.array([self.key.table_name] * n, pa.string()),
            "mode_key": pa.array([self.key.mode_key] * n, pa.string()),
            "frame_id": pa.array(results.frame_ids, pa.int64()),
            "class_id": pa.array(results.class_ids, pa.int32()),
            "score": pa.array(results.scores, pa.float64()),
            "logits": float_lists(results.logits),
            "features": float_lists(results.features),
            "kind": pa.array(results.kinds.tolist(), pa.string()),
            "macs": pa.array(results.macs, pa.int64()),
            "macs_full": pa.array(results.macs_full, pa.int64()),
            "last_used_at": pa.array([datetime.datetime.now()] * n, pa.timestamp("us")),
        })
        self.session.register(_ROWS, rows)
        try:
            self.session.sql(
                f"INSERT INTO mallard.inference_cache ({', '.join(rows.column_names)}) "
                f"SELECT {', '.join(rows.column_names)} FROM {_ROWS}"
            )
        finally:
            self.session.unregister(_ROWS)


def forget_replaced_video(session: Session, table_name: str, video_key: str) -> None:
    """Delete cached results and engine state of ``table_name`` made from other content."""
    for table in ("inference_cache", "inference_state"):
        session.sql(f"DELETE FROM mallard.{table} WHERE table_name = ? AND video_key <> ?", [table_name, video_key])


#: Bytes a cached row takes besides its logits and features (ids, scores, kind, times).
ROW_OVERHEAD = 64

_ROW_BYTES = f"({ROW_OVERHEAD} + 4 * (len(logits) + len(features)))"


def cache_bytes(session: Session) -> int:
    """The result cache's size: the bytes its rows hold."""
    return int(session.scalar(f"SELECT coalesce(sum({_ROW_BYTES}), 0) FROM mallard.inference_cache"))


def evict_to_limit(session: Session, limit: int | None) -> int:
    """Delete the least recently used results until the cache holds at most ``limit`` bytes;
    returns how many rows went.  ``None`` means no limit.

    >>> import engine, numpy as np
    >>> from engine.inference.frame_results import FrameResults
    >>> con = engine.connect(autocommit=True)
    >>> cache = ResultCache(con.session, CacheKey("m", 1, "v0", "clip", "full"))
    >>> cache.store(FrameResults.from_arrays(range(10), np.eye(10, dtype=np.float32), np.ones((10, 6), np.float32),
    ...                                      ["full"] * 10, [5] * 10, [5] * 10))
    >>> evict_to_limit(con.session, 4 * (ROW_OVERHEAD + 4 * 16)), cache_bytes(con.session)
    (6, 512)
    """
    if limit is None:
        return 0
    deleted = session.scalar(
        f"""WITH ranked AS (
              SELECT model, version, video_key, mode_key, frame_id,
                     sum({_ROW_BYTES}) OVER (ORDER BY coalesce(last_used_at, computed_at) DESC, model, version,
                                             video_key, mode_key, frame_id ROWS UNBOUNDED PRECEDING) AS kept
              FROM mallard.inference_cache)
            SELECT count(*) FROM ranked WHERE kept > ?""", [limit])
    if deleted:
        session.sql(
            f"""DELETE FROM mallard.inference_cache c USING (
                  SELECT model, version, video_key, mode_key, frame_id FROM (
                    SELECT model, version, video_key, mode_key, frame_id,
                           sum({_ROW_BYTES}) OVER (ORDER BY coalesce(last_used_at, computed_at) DESC, model, version,
                                                   video_key, mode_key, frame_id ROWS UNBOUNDED PRECEDING) AS kept
                    FROM mallard.inference_cache) WHERE kept > ?) e
                WHERE c.model = e.model AND c.version = e.version AND c.video_key = e.video_key
                  AND c.mode_key = e.mode_key AND c.frame_id = e.frame_id""", [limit])
    return int(deleted or 0)
