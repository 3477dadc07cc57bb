"""Connecting to a cluster that does not answer: each statement's error, and how often it is tried."""
from __future__ import annotations

import time

import pytest

import engine
from engine.cluster import connection


def test_a_slow_failed_attempt_is_remembered_for_a_while_and_then_tried_again(monkeypatch):
    """An address that never answers costs Ray 20-30 s an attempt: statements within
    RETRY_AFTER_S of a slow failure repeat its error at once; a quick failure (refused) is
    tried again by every statement.  Here a refused port stands for the slow one
    (SLOW_ATTEMPT_S = 0), so the test does not wait for Ray's timeout."""
    con = engine.connect(progress="off", cluster="127.0.0.1:1")
    try:
        with pytest.raises(engine.OperationalError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1") as first:
            con.execute("SHOW CLUSTER")
        assert "s ago" not in str(first.value)  # quick failures are not remembered: tried again next time
        with pytest.raises(engine.OperationalError) as again:
            con.execute("SHOW CLUSTER")
        assert "s ago" not in str(again.value)

        monkeypatch.setattr(connection, "SLOW_ATTEMPT_S", 0.0)
        with pytest.raises(engine.OperationalError):
            con.execute("SHOW CLUSTER")  # a "slow" failure now: remembered
        started = time.perf_counter()
        with pytest.raises(engine.OperationalError, match=r"Connection refused.*\(that was \d+ s ago; Mallard tries "
                                                          r"the address again 30 s after a failed attempt\)"):
            con.execute("SHOW CLUSTER")
        assert time.perf_counter() - started < 1.0

        monkeypatch.setattr(connection, "RETRY_AFTER_S", 0.0)  # the while is over: tried again
        with pytest.raises(engine.OperationalError) as retried:
            con.execute("SHOW CLUSTER")
        assert "s ago" not in str(retried.value)
    finally:
        connection._failures.clear()
        con.close()
