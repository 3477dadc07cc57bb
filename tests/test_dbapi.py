"""PEP 249 (DB-API 2.0) compliance, written from the PEP's text, section by section."""
from __future__ import annotations

import datetime
import time

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

import engine

# Module interface -------------------------------------------------------------------------


def test_module_globals():
    assert engine.apilevel == "2.0"
    assert engine.threadsafety == 2  # threads may share connections (each with its own cursors)
    assert engine.paramstyle == "qmark"


def test_exception_hierarchy_is_the_peps():
    assert issubclass(engine.Warning, Exception)
    assert issubclass(engine.Error, Exception)
    assert not issubclass(engine.Warning, engine.Error)
    assert issubclass(engine.InterfaceError, engine.Error)
    assert issubclass(engine.DatabaseError, engine.Error)
    assert not issubclass(engine.InterfaceError, engine.DatabaseError)
    for sub in (engine.DataError, engine.OperationalError, engine.IntegrityError, engine.InternalError,
                engine.ProgrammingError, engine.NotSupportedError):
        assert issubclass(sub, engine.DatabaseError), sub


def test_exceptions_are_connection_attributes(con):
    for name in ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
                 "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError"):
        assert getattr(con, name) is getattr(engine, name)


def test_connect_returns_a_connection_whose_required_methods_work(db_path):
    con = engine.connect(str(db_path))
    assert isinstance(con, engine.Connection) and not con.closed
    cur = con.cursor()
    assert isinstance(cur, engine.Cursor) and cur.connection is con
    cur.execute("CREATE TABLE t AS SELECT 1 AS x")
    con.rollback()
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 't'").fetchone() == (0,)
    cur.execute("CREATE TABLE t AS SELECT 2 AS x")
    con.commit()
    con.close()
    assert con.closed
    with engine.connect(str(db_path), read_only=True) as again:
        assert again.execute("SELECT x FROM t").fetchall() == [(2,)]


def test_connect_accepts_path_keyword_and_duckdb_config(tmp_path):
    path = tmp_path / "kw.duckdb"
    with engine.connect(path=str(path), threads=1) as con:
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
    assert path.exists()


# Connection objects ----------------------------------------------------------------------------


def test_close_makes_connection_unusable():
    con = engine.connect()
    cur = con.cursor()
    con.close()
    con.close()  # closing twice is harmless
    for action in (con.cursor, con.commit, con.rollback, lambda: con.execute("SELECT 1"),
                   lambda: cur.execute("SELECT 1")):
        with pytest.raises(engine.InterfaceError, match="is closed"):
            action()


def test_commit_persists_and_rollback_undoes(db_path):
    con = engine.connect(db_path)
    cur = con.cursor()
    cur.execute("CREATE TABLE t (x INTEGER)")
    con.commit()
    cur.execute("INSERT INTO t VALUES (1)")
    con.rollback()
    assert cur.execute("SELECT count(*) FROM t").fetchone() == (0,)
    cur.execute("INSERT INTO t VALUES (2)")
    con.commit()
    cur.execute("INSERT INTO t VALUES (3)")
    con.close()  # closing without committing rolls back
    with engine.connect(db_path, read_only=True) as again:
        assert again.execute("SELECT x FROM t").fetchall() == [(2,)]


def test_autocommit_is_off_by_default_and_can_be_turned_on(db_path):
    con = engine.connect(db_path)
    assert con.autocommit is False
    con.autocommit = True
    con.execute("CREATE TABLE t AS SELECT 1 AS x")
    con.rollback()  # nothing to roll back: the statement committed itself
    assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
    con.close()


def test_explicit_transactions_in_autocommit_mode(con):
    con.execute("CREATE TABLE t (x INTEGER)")
    con.execute("BEGIN")
    con.execute("INSERT INTO t VALUES (1)")
    con.execute("ROLLBACK")
    assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_connection_context_manager_commits_then_closes(db_path):
    with engine.connect(db_path) as con:
        con.execute("CREATE TABLE t AS SELECT 7 AS x")
    assert con.closed
    with pytest.raises(RuntimeError), engine.connect(db_path) as con2:
        con2.execute("INSERT INTO t VALUES (8)")
        raise RuntimeError("boom")
    with engine.connect(db_path) as con3:
        assert con3.execute("SELECT x FROM t").fetchall() == [(7,)]


# Cursor objects -------------------------------------------------------------------------------------


def test_description_is_seven_tuples(con):
    cur = con.execute("SELECT 1::INTEGER AS i, 'a' AS s, 2.5::DECIMAL(10,2) AS d")
    assert [len(col) for col in cur.description] == [7, 7, 7]
    assert [col[0] for col in cur.description] == ["i", "s", "d"]
    assert cur.description[2][4:6] == (10, 2)


def test_description_is_none_after_statements_without_rows(con):
    cur = con.cursor()
    assert cur.description is None  # nothing executed yet
    cur.execute("CREATE TABLE t (x INTEGER)")
    assert cur.description is None
    cur.execute("INSERT INTO t VALUES (1)")
    assert cur.description is None
    cur.execute("SET threads = 1")
    assert cur.description is None


def test_type_objects_compare_equal_to_type_codes(con):
    con.execute("CREATE TABLE one AS SELECT 1 AS x")
    cur = con.execute(
        "SELECT 1::INTEGER, 1.5::DOUBLE, 'x'::VARCHAR, 'ab'::BLOB, DATE '2024-01-02',"
        " TIMESTAMP '2024-01-02 03:04:05', rowid FROM one"
    )
    codes = [col[1] for col in cur.description]
    assert codes[0] == engine.NUMBER and codes[1] == engine.NUMBER
    assert codes[2] == engine.STRING and codes[2] != engine.NUMBER
    assert codes[3] == engine.BINARY
    assert codes[4] == engine.DATETIME and codes[5] == engine.DATETIME
    assert codes[6] == engine.ROWID


def test_rowcount(con):
    cur = con.cursor()
    assert cur.rowcount == -1
    cur.execute("CREATE TABLE t (x INTEGER)")
    assert cur.rowcount == -1
    cur.execute("INSERT INTO t VALUES (1), (2), (3)")
    assert cur.rowcount == 3
    cur.execute("UPDATE t SET x = x + 1 WHERE x > 1")
    assert cur.rowcount == 2
    cur.execute("DELETE FROM t")
    assert cur.rowcount == 3
    cur.execute("SELECT 1")
    assert cur.rowcount == -1  # not determined for queries


def test_execute_binds_qmark_parameters(con):
    cur = con.cursor()
    cur.execute("CREATE TABLE t (i INTEGER, s VARCHAR)")
    cur.execute("INSERT INTO t VALUES (?, ?)", (1, "it's"))
    assert cur.execute("SELECT s FROM t WHERE i = ?", [1]).fetchone() == ("it's",)


def test_executemany_runs_each_parameter_set(con):
    cur = con.cursor()
    cur.execute("CREATE TABLE t (i INTEGER, s VARCHAR)")
    cur.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "c")])
    assert cur.rowcount == 3
    assert cur.execute("SELECT sum(i), string_agg(s, '' ORDER BY i) FROM t").fetchone() == (6, "abc")


def test_fetchone_fetchmany_fetchall(con):
    cur = con.execute("SELECT range AS n FROM range(10)")
    assert cur.fetchone() == (0,)
    assert cur.arraysize == 1
    assert cur.fetchmany() == [(1,)]  # honours arraysize
    cur.arraysize = 3
    assert cur.fetchmany() == [(2,), (3,), (4,)]
    assert cur.fetchmany(2) == [(5,), (6,)]
    assert cur.fetchall() == [(7,), (8,), (9,)]
    assert cur.fetchone() is None
    assert cur.fetchmany() == []
    assert cur.fetchall() == []


def test_fetch_without_a_result_set_raises(con):
    cur = con.cursor()
    with pytest.raises(engine.ProgrammingError, match="produced no result set"):
        cur.fetchone()
    cur.execute("CREATE TABLE t (x INTEGER)")
    for fetch in (cur.fetchone, cur.fetchall, cur.fetchmany):
        with pytest.raises(engine.ProgrammingError):
            fetch()


def test_cursor_iteration(con):
    assert [row for row in con.execute("SELECT * FROM range(4)")] == [(0,), (1,), (2,), (3,)]


def test_close_makes_cursor_unusable(con):
    cur = con.cursor()
    cur.execute("SELECT 1")
    cur.close()
    for action in (lambda: cur.execute("SELECT 1"), cur.fetchone, cur.fetchall, lambda: cur.setinputsizes([1])):
        with pytest.raises(engine.InterfaceError, match="cursor is closed"):
            action()


def test_cursor_context_manager_closes(con):
    with con.cursor() as cur:
        assert cur.execute("SELECT 2").fetchone() == (2,)
    assert cur.closed
    with pytest.raises(engine.InterfaceError):
        cur.execute("SELECT 1")


def test_setinputsizes_and_setoutputsize_are_accepted(con):
    cur = con.cursor()
    cur.setinputsizes([engine.NUMBER, 10])
    cur.setoutputsize(100)
    cur.setoutputsize(100, 0)
    assert cur.execute("SELECT 1").fetchone() == (1,)


def test_callproc_calls_table_functions_and_macros(con):
    cur = con.cursor()
    params = (1, 4)
    assert cur.callproc("range", params) == params
    assert cur.fetchall() == [(1,), (2,), (3,)]
    con.execute("CREATE MACRO evens(n) AS TABLE SELECT range * 2 AS e FROM range(n)")
    cur.callproc("evens", [3])
    assert cur.fetchall() == [(0,), (2,), (4,)]
    with pytest.raises(engine.ProgrammingError, match="no function named 'no_such_function'"):
        cur.callproc("no_such_function", [])


def test_callproc_calls_scalar_functions_as_other_drivers_do(con):
    cur = con.cursor()
    assert cur.callproc("lower", ("FOO",)) == ("FOO",)  # PEP 249: the parameters come back unchanged
    assert cur.fetchall() == [("foo",)]
    assert cur.callproc("frame_mean", [b"\x01\x03"]) == [b"\x01\x03"]
    assert cur.fetchall() == [(2.0,)]


def test_nextset_is_not_supported(con):
    with pytest.raises(engine.NotSupportedError):
        con.execute("SELECT 1").nextset()


def test_arrow_and_pandas_fetches(con):
    table = con.execute("SELECT range AS n, range * 1.5 AS x FROM range(3)").fetch_arrow_table()
    assert isinstance(table, pa.Table) and table.column("n").to_pylist() == [0, 1, 2]
    frame = con.execute("SELECT 'a' AS s UNION ALL SELECT 'b'").fetch_df()
    assert isinstance(frame, pd.DataFrame) and sorted(frame["s"]) == ["a", "b"]


def test_interleaved_cursors_keep_their_own_results(con):
    first = con.execute("SELECT range FROM range(5)")
    assert first.fetchone() == (0,)
    second = con.execute("SELECT 'other'")
    assert second.fetchall() == [("other",)]
    assert first.fetchall() == [(1,), (2,), (3,), (4,)]
    assert first.description[0][0] == "range"


# Type objects and constructors ----------------------------------------------------------------------


def test_constructors_round_trip_through_the_database(con):
    ticks = time.mktime((2024, 5, 6, 7, 8, 9, 0, 0, -1))
    values = [
        engine.Date(2024, 1, 31), engine.Time(13, 14, 15), engine.Timestamp(2024, 1, 31, 13, 14, 15),
        engine.DateFromTicks(ticks), engine.TimeFromTicks(ticks), engine.TimestampFromTicks(ticks),
        engine.Binary(b"\x00\xffmallard"),
    ]
    assert values[3] == datetime.date(2024, 5, 6)
    assert values[4] == datetime.time(7, 8, 9)
    assert values[5] == datetime.datetime(2024, 5, 6, 7, 8, 9)
    con.execute("CREATE TABLE t (d DATE, t TIME, ts TIMESTAMP, d2 DATE, t2 TIME, ts2 TIMESTAMP, b BLOB)")
    con.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", values)
    assert list(con.execute("SELECT * FROM t").fetchone()) == values


# Errors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELEC 1", engine.ProgrammingError),
    ("SELECT * FROM no_such_table", engine.ProgrammingError),
    ("SELECT CAST('abc' AS INTEGER)", engine.DataError),
    ("SELECT no_such_function(1)", engine.ProgrammingError),
])
def test_duckdb_errors_become_pep249_classes_with_the_original_chained(con, sql, expected):
    with pytest.raises(expected) as info:
        con.execute(sql).fetchall()
    assert isinstance(info.value.__cause__, duckdb.Error)


def test_constraint_violation_is_integrity_error(con):
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    con.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(engine.IntegrityError) as info:
        con.execute("INSERT INTO t VALUES (1)")
    assert isinstance(info.value.__cause__, duckdb.Error)


def test_non_string_operation_is_programming_error(con):
    with pytest.raises(engine.ProgrammingError, match="expected the statement as a str"):
        con.execute(42)  # type: ignore[arg-type]
