"""Inference over frames tables: the model catalog, the inference scan with its result
cache, EXPLAIN of inference plans and occlusion maps (engine A); the Krypton-style
incremental engine lives in :mod:`engine.inference.incremental` (engine B).

SQL reaches this package through ``engine/dialect/inference.py`` (statements),
``engine/executors/inference.py`` (their executors) and the planner rules in
``engine/planner/`` (which lift model calls out of queries into inference scans).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.connection import Connection


def scan_statistics(con: Connection) -> list[Any]:
    """The :class:`~engine.inference.scan.ScanStats` of a connection's recent inference scans,
    oldest first (frames served from the script, the cache, or computed; kinds; multiply-adds).

    >>> import engine
    >>> scan_statistics(engine.connect())
    []
    """
    from engine.inference.scan import STATS

    return list(con.session.state.get(STATS, []))


def backbone_frames(con: Connection) -> int:
    """How many frames this connection has run through a network so far (all scans).

    >>> import engine
    >>> backbone_frames(engine.connect())
    0
    """
    from engine.inference.scan import BACKBONE_FRAMES

    return int(con.session.state.get(BACKBONE_FRAMES, 0))

