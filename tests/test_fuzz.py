"""Random text fed to cursor.execute raises only engine.Error subclasses, never anything else."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine

WORDS = [
    "LOAD", "VIDEO", "OR", "REPLACE", "INTO", "WITH", "SELECT", "FROM", "WHERE", "SET", "RESET", "SHOW",
    "MALLARD", "SETTINGS", "progress", "CREATE", "TABLE", "DROP", "INSERT", "VALUES", "BEGIN", "COMMIT",
    "ROLLBACK", "EXPLAIN", "t", "x", "frame", "(", ")", ",", ";", "=", "'data/carphone.mp4'", "'nope.avi'",
    "'", '"', "1", "-2", "0.5", "'on'", "NULL", "TRUE", "[1, 2]", "*", "--", "/*", "*/", "width", "every",
    "frame_diff", "frame_mean", "?", "$1", "\n",
]

token_soup = st.lists(st.sampled_from(WORDS), min_size=0, max_size=12).map(" ".join)
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


def _run(sql: str) -> None:
    con = engine.connect(progress="off", autocommit=True)
    try:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
        try:
            cursor = con.execute(sql)
            if cursor.description is not None:
                cursor.fetchmany(5)
        except engine.Error:
            pass  # the only kind of exception allowed
    finally:
        con.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_soup)
def test_token_soup_raises_only_engine_errors(sql):
    _run(sql)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_random_text_raises_only_engine_errors(sql):
    _run(sql)


def test_the_fuzzer_reaches_real_errors():
    """The property above is not vacuous: malformed input does raise engine errors."""
    con = engine.connect()
    for sql in ("LOAD VIDEO", "SELECT FROM WHERE", "'", "SET progress = 'loud'"):
        try:
            con.execute(sql)
        except engine.Error:
            continue
        raise AssertionError(f"{sql!r} should have failed")
