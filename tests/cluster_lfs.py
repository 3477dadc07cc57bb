"""Python labeling functions for the cluster tests and benchmark, in a module the cluster's
nodes import (the driver's working directory is on their path): keyword functions over the
SMS collection, a vectorized one, and ones whose worker process dies (SIGKILL) on one row."""
from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

#: Where the fault functions keep their markers; set for the Ray nodes when they start.
FAULTS_ENV = "MALLARD_TEST_FAULTS"

#: The row whose labeling kills the worker process running it.
FATAL_ROW = 3000

_PRIZE = re.compile(r"(?i)\b(prize|won|winner|claim|reward)\b")
_CHAT = re.compile(r"(?i)\b(lol|haha|hey|ok|okay|gonna|wanna)\b")


def prize(text: str) -> str | None:
    return "spam" if _PRIZE.search(text) else None


def chat(text: str) -> str | None:
    return "ham" if _CHAT.search(text) else None


def long_number_vectorized(text: Any) -> Any:
    """One vote per row of an Arrow batch: spam where the text holds a 5-digit number."""
    return pc.if_else(pc.match_substring_regex(text, r"\d{5,}"), pa.scalar("spam"), pa.scalar(None, pa.string()))


def short_by_id(id: int, text: str) -> str | None:
    """ham for short texts (the same votes as :func:`dies_once` when nothing dies)."""
    return "ham" if len(text) < 25 else None


def picky(id: int, text: str) -> str | None:
    """Raises on every 1000th row (for strict and fault-tolerant runs)."""
    if id % 1000 == 0:
        raise ValueError(f"cannot read row {id}")
    return "spam" if "free" in text.lower() else None


def dies_once(id: int, text: str) -> str | None:
    """Like :func:`short_by_id`, but the first time a Ray worker reaches :data:`FATAL_ROW` it is killed."""
    if id == FATAL_ROW and _on_cluster():
        marker = Path(os.environ[FAULTS_ENV]) / "died_once"
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
    return short_by_id(id, text)


def dies_always(id: int, text: str) -> str | None:
    """Kills every Ray worker that reaches :data:`FATAL_ROW` (so retries cannot help)."""
    if id == FATAL_ROW and _on_cluster():
        os.kill(os.getpid(), signal.SIGKILL)
    return short_by_id(id, text)


def _on_cluster() -> bool:
    """True inside a Ray worker process of the test cluster (never in the test process)."""
    return FAULTS_ENV in os.environ and _ray_worker()


def _ray_worker() -> bool:
    import sys

    if "ray" not in sys.modules:
        return False
    import ray

    return ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE


def column_vote(vote: Any) -> Any:
    """Vectorized: the column's own values are the votes (class indexes, NULL abstains), for
    synthetic label matrices stored as tables."""
    return vote


#: Seconds :func:`stalls` waits on :data:`FATAL_ROW` (long enough for a test to kill the head meanwhile).
STALL_SECONDS = 60


def stalls(id: int, text: str) -> str | None:
    """Like :func:`short_by_id`, but a Ray worker reaching :data:`FATAL_ROW` marks it (file
    ``stalled`` under the faults folder) and waits :data:`STALL_SECONDS`: the statement is then
    surely running on the cluster, for a test that kills the head."""
    if id == FATAL_ROW and _on_cluster():
        import time

        (Path(os.environ[FAULTS_ENV]) / "stalled").touch()
        time.sleep(STALL_SECONDS)
    return short_by_id(id, text)
