"""The IPython extension: %load_ext engine gives %sql and %%sql returning DataFrames."""
from __future__ import annotations

import pandas as pd
import pytest
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

import engine
from engine.magic import SqlMagics
from tests.conftest import data_file


@pytest.fixture
def ip():
    """IPython with the extension loaded anew: each test gets fresh magics (their own in-memory
    database) and leaves no variables behind."""
    shell = start_ipython() or get_ipython()  # the global test shell, started once
    shell.run_line_magic("load_ext", "engine")
    magics = SqlMagics(shell)
    shell.register_magics(magics)
    names = set(shell.user_ns)
    yield shell
    magics.close()
    for name in set(shell.user_ns) - names:
        del shell.user_ns[name]


def test_each_test_starts_with_an_empty_database(ip):
    assert ip.run_line_magic("sql", "SELECT count(*) AS n FROM duckdb_tables() WHERE schema_name = 'main'"
                             )["n"].tolist() == [0]
    ip.run_line_magic("sql", "CREATE TABLE leftover AS SELECT 1 AS x")


def test_line_magic_returns_a_dataframe(ip):
    frame = ip.run_line_magic("sql", "SELECT 42 AS answer")
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict("records") == [{"answer": 42}]


def test_cell_magic_runs_a_script_and_returns_the_last_result(ip):
    frame = ip.run_cell_magic("sql", "", f"LOAD OR REPLACE VIDEO '{data_file('carphone.mp4')}' INTO clip "
                                         "WITH (limit = 4);\nSELECT count(*) AS n FROM clip")
    assert frame["n"].tolist() == [4]


def test_statements_without_rows_print_their_summary(ip, capsys):
    assert ip.run_line_magic("sql", "CREATE OR REPLACE TABLE t AS SELECT 1 AS x") is None
    assert ip.run_line_magic("sql", "INSERT INTO t VALUES (2)") is None
    assert "1 rows affected" in capsys.readouterr().out


def test_connect_to_a_file_and_store_the_result(ip, tmp_path):
    path = tmp_path / "magic.duckdb"
    ip.run_line_magic("sql", f"--connect {path}")
    ip.run_cell_magic("sql", "--out stored", "CREATE TABLE kept AS SELECT 'yes' AS v; SELECT v FROM kept")
    assert ip.user_ns["stored"]["v"].tolist() == ["yes"]
    ip.run_line_magic("sql", "--connect :memory:")
    with engine.connect(path) as con:
        assert con.execute("SELECT v FROM kept").fetchall() == [("yes",)]


def test_bind_to_a_connection_variable(ip):
    con = engine.connect(autocommit=True)
    con.execute("CREATE TABLE mine AS SELECT 7 AS seven")
    ip.user_ns["my_con"] = con
    assert ip.run_line_magic("sql", "--conn my_con SELECT seven FROM mine")["seven"].tolist() == [7]


def test_errors_print_one_line(ip, capsys):
    assert ip.run_line_magic("sql", "SELECT * FROM nowhere_at_all") is None
    out = capsys.readouterr().out
    assert out.startswith("Error (ProgrammingError)") and "Traceback" not in out
    ip.run_line_magic("sql", "--conn not_a_connection SELECT 1")
    assert "expected a variable holding an engine.Connection" in capsys.readouterr().out
