"""Regressions from a hostile probe: only engine.Error escapes, with the wording promised, and
the database stays usable.  Each test here failed before its fix."""
from __future__ import annotations

import logging
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import duckdb
import pytest

import engine
from engine import instances

DOUBLE_DOTS = [
    "SHOW LABELING FUNCTIONS ON ..sms", "LABEL ..sms USING a INTO b", "LABEL sms USING a INTO ..b",
    "COMPUTE STATISTICS FOR ..x", "LOAD VIDEO 'a.avi' INTO ..x", "VALIDATE ..x AGAINST s",
    "INFER SCHEMA s FROM ..x", "SHOW LABEL ANALYSIS FOR ..x", "ADD GOLD LABELS TO ..x FROM y",
    "UPDATE SCHEMA s FROM ..x", "SHOW CLASS BALANCE FOR ..x", "CREATE LABELING FUNCTION f ON ..x AS 1",
    "ANALYZE LABELING FUNCTIONS a ON ..x",
]


@pytest.mark.parametrize("sql", DOUBLE_DOTS)
def test_empty_name_parts_are_parse_errors(con, sql):
    with pytest.raises(engine.ProgrammingError, match=r"Expected a (table|label table|table or statistics) name|"
                                                      r"Expected a table, a \(query\) or a table function"):
        con.execute(sql)


def test_the_shell_prints_such_errors_without_a_traceback(tmp_path):
    shell = str(Path(sys.executable).parent / "mallard")
    result = subprocess.run([shell, "-c", "SHOW LABELING FUNCTIONS ON ..sms"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path, env={"CI": "1", "HOME": str(tmp_path)})
    assert result.returncode != 0
    assert "Expected a table name after SHOW LABELING FUNCTIONS ON" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("value", [bytearray(b"clip.avi"), uuid.UUID(int=7), memoryview(b"x")])
def test_odd_parameter_types_bind_in_extended_statements(con, value):
    with pytest.raises(engine.ProgrammingError, match="expected the video path as a string, found"):
        con.execute("LOAD VIDEO ? INTO t", [value])


def test_parameter_types_sql_cannot_hold_are_programming_errors_naming_the_parameter(con):
    with pytest.raises(engine.ProgrammingError, match="parameter 2: cannot bind a value of type set"):
        con.execute("LOAD VIDEO ? INTO t WITH (every = ?)", ["a.avi", {1, 2}])
    with pytest.raises(engine.ProgrammingError, match="parameter 1: cannot bind a value of type object"):
        con.execute("EXPORT SCHEMA s TO ?", [object()])


def test_parameter_count_is_checked_for_every_statement(con):
    with pytest.raises(engine.ProgrammingError, match="expected 0 parameters for the \\? in the statement, found 3"):
        con.execute("SHOW STATISTICS", [1, 2, 3])
    with pytest.raises(engine.ProgrammingError, match="expected 1 parameters"):
        con.execute("LOAD VIDEO ? INTO t")
    with pytest.raises(engine.ProgrammingError):
        con.execute("SELECT ?", [1, 2])


def test_mallard_schema_is_refused_as_a_target_and_a_damaged_catalog_fails_cleanly(tmp_path):
    path = str(tmp_path / "a.duckdb")
    with engine.connect(path, autocommit=True) as con:
        with pytest.raises(engine.ProgrammingError, match="cannot write mallard.meta: the mallard schema holds"):
            con.execute("LOAD OR REPLACE VIDEO 'data/carphone.mp4' INTO mallard.meta")
        con.execute("CREATE TABLE sms AS SELECT 1 AS id, 'x' AS text")
        con.execute("CREATE LABELING FUNCTION lf_a ON sms AS 'spam'")
        with pytest.raises(engine.ProgrammingError, match="LABEL cannot write mallard.videos"):
            con.execute("LABEL sms USING lf_a WITH (model = 'majority') INTO OR REPLACE mallard.videos")
    duck = duckdb.connect(path)
    duck.execute("DROP TABLE mallard.meta")
    duck.execute("CREATE TABLE mallard.meta AS SELECT 1 AS x")
    duck.close()
    with pytest.raises(engine.OperationalError, match="Mallard catalog \\(schema mallard\\) cannot be read"):
        engine.connect(path)


def test_two_connections_to_one_file_share_the_functions_and_outlive_each_other(tmp_path):
    path = str(tmp_path / "shared.duckdb")
    first = engine.connect(path, autocommit=True)
    second = engine.connect(path, autocommit=True)
    first.execute("CREATE TABLE t AS SELECT '\\x01\\x02\\x03'::BLOB AS b")
    assert second.execute("SELECT frame_mean(b) FROM t").fetchone() == (2.0,)
    first.close()
    assert second.execute("SELECT frame_mean(b) FROM t").fetchone() == (2.0,)  # freed memory before
    held = instances.open_instances()
    second.close()
    assert instances.open_instances() == held - 1  # the last connection closed the instance


def test_a_second_connection_leaves_another_ones_staging_tables_alone(tmp_path):
    path = str(tmp_path / "loading.duckdb")
    loading = engine.connect(path, autocommit=True)
    loading.execute("CREATE TABLE __mallard_loading_inflight (x INTEGER)")  # as a load in progress has it
    other = engine.connect(path, autocommit=True)
    assert other.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = '__mallard_loading_inflight'"
                         ).fetchone() == (1,)
    other.close()
    loading.close()
    with engine.connect(path) as reopened:  # nobody has it open: the abandoned staging table goes
        assert reopened.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__mallard_loading%'"
                                ).fetchone() == (0,)


def test_inferring_a_schema_over_doubles_near_the_largest_double(con):
    con.execute("CREATE TABLE big AS SELECT * FROM (VALUES (1e308), (-1.7e308), (1.5e308)) v(x)")
    row = con.execute("INFER SCHEMA s FROM big").fetchall()[0]
    assert row[0] == "x" and row[1] == "FLOAT"
    assert con.execute("VALIDATE big AGAINST s").fetchall() == []


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe\x00binary", "expected a UTF-8 text schema file, found bytes that are not UTF-8 at byte 0"),
    (b"[" * 100_000 + b"]" * 100_000, "found JSON nested too deeply"),
    (b"[1, 2]", "expected a JSON object \\(a schema document\\), found list"),
])
def test_import_schema_of_files_that_are_not_schemas(con, tmp_path, content, message):
    path = tmp_path / "schema.json"
    path.write_bytes(content)
    with pytest.raises(engine.DataError, match=message):
        con.execute("IMPORT SCHEMA s FROM ?", [str(path)])
    assert con.execute("SELECT count(*) FROM mallard.schemas").fetchone() == (0,)


@pytest.mark.parametrize(("path", "message"), [
    ("/dev/zero", "expected a schema file \\(a regular file\\), found a character device: /dev/zero"),
    ("/", "expected a schema file, found a directory: /"),
])
def test_import_schema_refuses_devices_and_directories(con, path, message):
    with pytest.raises(engine.DataError, match=message):
        con.execute("IMPORT SCHEMA s FROM ?", [path])


def test_a_labels_file_that_is_not_utf8(con, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"cat\n\xe9t\xe9\n")
    with pytest.raises(engine.DataError, match="expected a UTF-8 text labels file, found bytes that are not UTF-8"):
        con.execute("CREATE MODEL m FROM 'data/mobilenet_v2.pth' WITH (architecture = 'mobilenet_v2', labels = ?)",
                    [str(labels)])
    assert con.execute("SELECT count(*) FROM mallard.models").fetchone() == (0,)


def test_an_option_out_of_range_blames_the_option_not_the_file(con):
    with pytest.raises(engine.DataError, match="LOAD VIDEO option width: expected a whole number in \\[1, 16384\\], "
                                               "found 100000"):
        con.execute("LOAD VIDEO 'no/such/file.avi' INTO t WITH (width = 100000)")


def test_sqlglot_warnings_do_not_leak(con, capfd, caplog):
    with caplog.at_level(logging.WARNING), pytest.raises(engine.Error):
        con.execute("SET progress = 'on'; PRAGMA nonsense_pragma_x")
    assert "Falling back to parsing as a 'Command'" not in capfd.readouterr().err
    assert not [r for r in caplog.records if "Falling back" in r.getMessage()]


def test_an_empty_select_item_is_a_syntax_error_also_with_model_calls(con):
    engine.frames_from_numpy(con, "clip", __import__("numpy").zeros((2, 8, 8, 3), "uint8"))
    con.execute("CREATE MODEL tiny FROM 'data/mobilenet_v2.pth' WITH (architecture = 'mobilenet_v2')")
    with pytest.raises(engine.ProgrammingError, match="Expected an item after ,"):
        con.execute("SELECT frame_id,, tiny(frame).label FROM clip")


def test_cursors_of_one_connection_used_by_four_threads_each_get_their_own_results(con):
    con.execute("CREATE TABLE n AS SELECT range AS i FROM range(1000)")
    failures: list[str] = []

    def worker(offset: int) -> None:
        cursor = con.cursor()
        for round_ in range(60):
            low = (offset * 97 + round_ * 13) % 900
            try:
                cursor.execute("SELECT sum(i), count(*) FROM n WHERE i >= ? AND i < ?", [low, low + 50])
                row = cursor.fetchone()
            except engine.Error as e:  # allowed, but it must be an engine error
                failures.append(f"error {e}")
                continue
            if row != (sum(range(low, low + 50)), 50):
                failures.append(f"thread {offset} round {round_}: {row}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_connection_per_thread_on_one_file(tmp_path):
    path = str(tmp_path / "threads.duckdb")
    with engine.connect(path) as setup:
        setup.execute("CREATE TABLE n AS SELECT range AS i FROM range(1000)")
    results: dict[int, object] = {}

    def worker(k: int) -> None:
        with engine.connect(path) as con:
            results[k] = con.execute("SELECT sum(i) FROM n WHERE i % 4 = ?", [k]).fetchone()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {k: (sum(i for i in range(1000) if i % 4 == k),) for k in range(4)}


def test_what_a_statement_registers_is_gone_when_it_ends(con):
    def mallard_relations() -> list[str]:
        return [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE '\\_\\_mallard%' ESCAPE '\\'"
        ).fetchall()]

    first = con.execute("SHOW MALLARD SETTINGS")
    first.fetchone()
    first.fetchall()
    assert mallard_relations() == []  # fully fetched: released
    unread = con.execute("SHOW MALLARD SETTINGS")
    unread.fetchone()
    assert mallard_relations() == []  # another cursor needed the connection: the rows went to memory
    assert len(unread.fetchall()) == len(con.execute("SHOW MALLARD SETTINGS").fetchall()) - 1
    second = con.cursor()
    second.execute("SHOW MALLARD SETTINGS")
    second.execute("SELECT 1")
    assert mallard_relations() == []  # the cursor ran another statement
    third = con.cursor()
    third.execute("SHOW MALLARD SETTINGS")
    third.close()
    assert mallard_relations() == []  # the cursor closed
