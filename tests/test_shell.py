"""The `mallard` console script: -c, run, piped input, the interactive shell in a real
pseudo-terminal (completion, multi-line editing, Ctrl-C, history), and the demo."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine.result_formats import format_table
from engine.shell import Shell, statement_complete
from engine.shell_completion import candidates, dot_candidates
from engine.shell_names import mallard_keywords, read_names, statement_options
from engine.shell_prompt import MallardLexer
from tests.conftest import ROOT, data_file
from tests.shell_terminal import Terminal

MALLARD = shutil.which("mallard", path=str(Path(sys.executable).parent)) or "mallard"
ENV = {"CI": "1", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}


def run(*args, stdin=None, cwd=ROOT):
    return subprocess.run([MALLARD, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**ENV, "HOME": str(cwd)})


def no_control_codes(*texts: str) -> bool:
    return not any("\x1b" in t or "\r" in t for t in texts)


def test_dash_c_runs_statements_and_prints_aligned_tables():
    result = run("-c", "SELECT 1 AS n, 'a' AS s UNION ALL SELECT 22, NULL ORDER BY n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["n  | s", "---+-----", " 1 | a", "22 | NULL", "(2 rows)"]
    assert no_control_codes(result.stdout, result.stderr)


def test_explain_prints_plans_whole():
    result = run("-c", "CREATE TABLE t AS SELECT range AS x FROM range(10); EXPLAIN SELECT sum(x) FROM t")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "-- physical_plan" in lines and "…" not in result.stdout
    assert any("SEQ_SCAN" in line.upper().replace(" ", "_") or "TABLE_SCAN" in line.upper().replace(" ", "_")
               for line in lines), result.stdout


def test_errors_print_one_line_without_traceback_and_fail():
    result = run("-c", "SELECT * FROM nowhere")
    assert result.returncode == 1
    assert result.stderr.startswith("Error (ProgrammingError): Catalog Error")
    assert "Traceback" not in result.stderr


def test_run_file_against_a_database_file(tmp_path):
    script = tmp_path / "load.sql"
    script.write_text(f"LOAD VIDEO '{data_file('carphone.mp4')}' INTO clip WITH (limit = 3);\n"
                      "SELECT count(*) AS frames\nFROM clip;\n")
    db = tmp_path / "shell.duckdb"
    result = run("run", str(script), "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "LOAD VIDEO: 3 frames of 176x144" in result.stdout
    assert "frames\n------\n     3\n(1 row)" in result.stdout
    assert no_control_codes(result.stdout, result.stderr)
    again = run(str(db), "-c", "SELECT frame_count FROM mallard.videos")
    assert "3" in again.stdout.splitlines()[2]


def test_run_stops_at_the_first_error(tmp_path):
    script = tmp_path / "bad.sql"
    script.write_text("SELECT 1;\nLOAD VIDEO INTO t;\nSELECT 'never';\n")
    result = run("run", str(script))
    assert result.returncode == 1
    assert "Expected a video file path" in result.stderr and "never" not in result.stdout
    assert run("run", str(tmp_path / "missing.sql")).returncode == 1


def test_piped_input_reads_multi_line_statements_survives_errors_and_prints_no_prompts(tmp_path):
    session = "SELECT 40\n  + 2 AS answer;\nSELECT nope;\n.timer on\nSELECT 'still here' AS s;\n.quit\n"
    result = run(str(tmp_path / "i.duckdb"), stdin=session, cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("answer\n------\n    42")  # no banner, no prompt
    assert "Error (ProgrammingError)" in result.stderr and "Traceback" not in result.stderr
    assert "still here" in result.stdout and "Run time:" in result.stdout
    assert "mallard>" not in result.stdout and no_control_codes(result.stdout, result.stderr)
    assert not (tmp_path / ".mallard_history").exists()  # history is the terminal's


def test_dot_commands_switch_modes_and_write_files(tmp_path):
    out = tmp_path / "out.csv"
    session = (".mode csv\nSELECT 1 AS a, 'x,y' AS b;\n.mode json\nSELECT 2 AS a, [1, 2] AS l;\n"
               f".output {out}\n.mode csv\nSELECT range AS n FROM range(3);\n.output\n.mode table\n"
               ".explain on\nSELECT 42 AS answer;\n.explain off\n.mode xml\n.timer maybe\n.nonsense\n")
    result = run(stdin=session, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'a,b\n1,"x,y"\n' in result.stdout
    assert '[{"a": 2, "l": [1, 2]}]' in result.stdout
    assert out.read_text() == "n\n0\n1\n2\n"
    explained = result.stdout.split("-- physical_plan", 1)[1]
    assert "answer\n------\n    42" in explained
    assert "expected a mode among table, csv, json, found 'xml'" in result.stderr
    assert "expected on or off, found 'maybe'" in result.stderr
    assert "unknown command .nonsense; try .help" in result.stderr


def test_catalog_dot_commands(tmp_path):
    session = ("CREATE TABLE trips AS SELECT range AS id, range % 3 AS kind FROM range(30);\n"
               "INFER SCHEMA trip_schema FROM trips;\n.tables\n.schemas\n.models\n.functions\n.help\n")
    result = run(stdin=session, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "main    | trips" in result.stdout and "mallard | videos" in result.stdout
    assert "trip_schema |              1 |        1" in result.stdout
    assert "(0 rows)" in result.stdout  # no models yet
    functions = result.stdout.split(".functions")[0] if ".functions" in result.stdout else result.stdout
    assert "frame_diff" in functions and "validation_statistics" in functions and "features" in functions
    assert ".mode table|csv|json" in result.stdout


def test_completion_offers_what_fits_where_the_cursor_is(con):
    con.execute("CREATE TABLE traffic AS SELECT range AS frame_id, range * 2 AS motion FROM range(4)")
    con.execute("CREATE TABLE trips (fare DOUBLE, city VARCHAR)")
    con.execute("INFER SCHEMA trip_schema FROM trips")
    con.execute("CREATE LABELING FUNCTION lf_cheap ON trips AS CASE WHEN fare < 5 THEN 'cheap' END")
    con.execute("COMPUTE STATISTICS FOR trips AS trip_stats")
    names = read_names(con)

    def words(text):
        return [c for c, _ in candidates(text, names)]

    assert words("SELECT * FROM tra") == ["traffic", "training_history"]  # a table macro fits FROM too
    assert words("select * from traffic t where t.mo") == ["motion"]
    assert words("SELECT traffic.fr") == ["frame_id"]
    assert words("SELECT * FROM traffic WHERE mot") == ["motion"]
    assert words("LABEL trips USING lf_") == ["lf_cheap"]
    assert words("LABEL trips USING lf_cheap, lf_") == ["lf_cheap"]
    assert words("VALIDATE trips AGAINST trip_") == ["trip_schema"]
    assert words("SHOW STATISTICS tri") == ["trip_stats"]
    assert words("UPDATE SCHEMA trip_schema FROM tri") == ["trip_stats", "trips"]
    assert words("VALIDATE trips AGAINST trip_schema WITH (previous = tri") == ["trip_stats", "trips"]
    assert words("SET inference_mo") == ["inference_mode"]
    assert words("LOAD VIDEO 'v.avi' INTO t WITH (wid") == ["width"]
    assert words("LOAD VIDEO 'v.avi' INTO t WITH (width = 8, ev") == ["every"]
    assert words("SELECT * FROM mallard.vid") == ["videos"]
    assert "labeling" in words("create lab")  # keywords in the case they are typed
    assert {"LABELING", "VIDEO", "AGAINST", "GOLD"} <= mallard_keywords()
    assert statement_options("COMPUTE STATISTICS FOR t WITH (") == ["max_values"]
    assert dot_candidates(".mo") == [(".models", "command"), (".mode", "command")]


def test_the_shell_reads_names_again_after_statements_that_change_the_catalog(con):
    calls = []
    shell = Shell(con, out=io.StringIO(), err=io.StringIO())
    shell.on_catalog_change = lambda: calls.append(True)
    assert shell.run_sql("SELECT 1; SHOW MALLARD SETTINGS;") and calls == []
    assert shell.run_sql("CREATE TABLE fresh (x INT);") and calls == [True]
    assert "fresh" in read_names(con).tables


def test_mallard_words_are_highlighted_as_keywords():
    tokens = [(str(token), value) for _, token, value in MallardLexer().get_tokens_unprocessed(
        "VALIDATE april AGAINST trips") if value.strip()]
    assert tokens == [("Token.Keyword", "VALIDATE"), ("Token.Name", "april"), ("Token.Keyword", "AGAINST"),
                      ("Token.Name", "trips")]


@pytest.fixture
def terminal(tmp_path):
    shell = Terminal(MALLARD, [str(tmp_path / "t.duckdb")], cwd=tmp_path, env={**ENV, "HOME": str(tmp_path)})
    yield shell
    shell.close()


def test_interactive_shell_completes_a_table_name_with_tab(terminal, tmp_path):
    terminal.wait_for("mallard>")
    terminal.type("CREATE TABLE traffic_counts AS SELECT range AS id FROM range(7);\r")
    terminal.wait_for("mallard>", count=2)
    terminal.type("SELECT count(*) AS n FROM traffic_c\t")
    terminal.wait_for("FROM traffic_counts")
    terminal.type(";\r")
    screen = terminal.wait_for("(1 row)")
    assert "n\n-\n7\n(1 row)" in screen
    assert "\x1b[" in terminal.raw.decode(errors="replace")  # highlighted: colours on a terminal
    terminal.type(".quit\r")
    assert terminal.wait_exit() == 0
    assert "SELECT count(*) AS n FROM traffic_counts;" in (tmp_path / ".mallard_history").read_text()


def test_interactive_shell_edits_multi_line_statements(terminal):
    terminal.wait_for("mallard>")
    terminal.type("SELECT 40\r")
    terminal.wait_for("...>")
    terminal.type("  + 2 AS answer;\r")
    screen = terminal.wait_for("(1 row)")
    assert "answer\n------\n    42" in screen


def test_ctrl_c_cancels_the_running_statement_and_keeps_the_shell(terminal):
    terminal.wait_for("mallard>")
    terminal.type("SELECT sum(hash(a.range * b.range)) FROM range(1000000) a, range(1000000) b;\r")
    terminal.wait_for("b;")
    import time

    time.sleep(1.0)
    terminal.interrupt()
    terminal.wait_for("Interrupted", timeout=30)
    terminal.type("SELECT 'alive' AS s;\r")
    assert "alive" in terminal.wait_for("(1 row)")
    terminal.type("\x04")  # Ctrl-D leaves
    assert terminal.wait_exit() == 0


def test_statement_completion():
    assert statement_complete("SELECT 1;")
    assert not statement_complete("SELECT 1")
    assert not statement_complete("SELECT ';")
    assert statement_complete("SELECT ';';")


def test_format_table_shortens_blobs_and_long_text():
    text = format_table(["b", "t"], [(b"\x00" * 10, "x" * 100)])
    assert "<BLOB 10 bytes>" in text and "…" in text


def test_json_mode_writes_values_json_can_read(con):
    out = io.StringIO()
    shell = Shell(con, out=out, err=io.StringIO())
    shell.mode = "json"
    assert shell.run_sql("SELECT DATE '2024-03-01' AS d, 'nan'::DOUBLE AS x, '\\x00'::BLOB AS b, {'k': 1} AS s;")
    assert json.loads(out.getvalue()) == [{"d": "2024-03-01", "x": None, "b": "\\x00", "s": {"k": 1}}]


def test_demo_runs_end_to_end(tmp_path):
    (tmp_path / "data").symlink_to(ROOT / "data")
    result = run("demo", "--db", str(tmp_path / "demo.duckdb"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "LOAD VIDEO: 795 frames of 224x224 from vtest.avi" in result.stdout
    assert "CREATE MODEL: mobilenet version 1 (mobilenet_v2, 1000 classes)" in result.stdout
    plan = result.stdout.split("INFERENCE SCAN mobilenet (version 1) OVER traffic")[1]
    assert "frames needed           200" in plan and "incremental" in plan
    assert "Done in" in result.stdout
    with engine.connect(str(tmp_path / "demo.duckdb"), read_only=True) as con:
        # the repeated query was served from the cache: 100 full results, plus the 200 exact ones
        rows = con.execute("SELECT split_part(mode_key, ':', 1), count(*) FROM mallard.inference_cache"
                           " GROUP BY 1 ORDER BY 1").fetchall()
        assert rows == [("exact", 200), ("full", 100)]
