"""The `mallard` console script: -c, run, the interactive shell, and the demo."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import engine
from engine.shell import format_table, statement_complete
from tests.conftest import ROOT, data_file

MALLARD = shutil.which("mallard", path=str(Path(sys.executable).parent)) or "mallard"


def run(*args, stdin=None, cwd=ROOT):
    return subprocess.run([MALLARD, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={"CI": "1", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
                               "HOME": str(cwd)})


def test_dash_c_runs_statements_and_prints_aligned_tables():
    result = run("-c", "SELECT 1 AS n, 'a' AS s UNION ALL SELECT 22, NULL ORDER BY n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["n  | s", "---+-----", " 1 | a", "22 | NULL", "(2 rows)"]


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
    again = run(str(db), "-c", "SELECT frame_count FROM mallard.videos")
    assert "3" in again.stdout.splitlines()[2]


def test_run_stops_at_the_first_error(tmp_path):
    script = tmp_path / "bad.sql"
    script.write_text("SELECT 1;\nLOAD VIDEO INTO t;\nSELECT 'never';\n")
    result = run("run", str(script))
    assert result.returncode == 1
    assert "Expected a video file path" in result.stderr and "never" not in result.stdout
    assert run("run", str(tmp_path / "missing.sql")).returncode == 1


def test_interactive_shell_reads_multi_line_statements_and_survives_errors(tmp_path):
    session = "SELECT 40\n  + 2 AS answer;\nSELECT nope;\n.timer on\nSELECT 'still here' AS s;\n.quit\n"
    result = run(str(tmp_path / "i.duckdb"), stdin=session, cwd=tmp_path)
    assert result.returncode == 0
    assert "answer\n------\n    42" in result.stdout
    assert "Error (ProgrammingError)" in result.stderr and "Traceback" not in result.stderr
    assert "still here" in result.stdout and "Run time:" in result.stdout
    assert (tmp_path / ".mallard_history").exists()  # readline history is kept


def test_statement_completion():
    assert statement_complete("SELECT 1;")
    assert not statement_complete("SELECT 1")
    assert not statement_complete("SELECT ';")
    assert statement_complete("SELECT ';';")


def test_format_table_shortens_blobs_and_long_text():
    text = format_table(["b", "t"], [(b"\x00" * 10, "x" * 100)])
    assert "<BLOB 10 bytes>" in text and "…" in text


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
