"""The README's examples run as written, and everything users can call is documented there."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine.dialect import split_statements
from engine.registry import SETTINGS, STATEMENTS, builtin_functions
from tests.conftest import ROOT
from udfs.architectures import ARCHITECTURES

README = (ROOT / "README.md").read_text()
MALLARD = str(Path(sys.executable).parent / "mallard")


def example(kind: str) -> str:
    match = re.search(rf"<!-- example: {kind} -->\s*```{kind}\n(.*?)```", README, re.S)
    assert match, f"README has no {kind} example"
    return match.group(1)


def sections() -> dict[str, list[str]]:
    """The ```sql blocks of each '## ' section."""
    found: dict[str, list[str]] = {}
    for part in re.split(r"^## ", README, flags=re.M)[1:]:
        title = part.splitlines()[0].strip()
        found[title] = re.findall(r"```sql\n(.*?)```", part, re.S)
    return found


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "data").symlink_to(ROOT / "data")
    return tmp_path


def test_set_up_commands_are_the_makefile_targets():
    assert "make demo" in README and "make test" in README
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("kind", ["sql", "python"])
def test_examples_are_about_ten_lines(kind):
    lines = [line for line in example(kind).splitlines() if line.strip()]
    assert 5 <= len(lines) <= 10, lines


def test_sql_example_runs_as_written(workdir):
    (workdir / "example.sql").write_text(example("sql"))
    result = subprocess.run([MALLARD, "run", "example.sql"], cwd=workdir, capture_output=True, text=True,
                            timeout=300, env={"CI": "1", "HOME": str(workdir)})
    assert result.returncode == 0, result.stderr
    assert "LOAD VIDEO: 159 frames of 224x224" in result.stdout
    assert "traffic    | msmpeg4" in result.stdout


def test_python_example_runs_as_written(workdir):
    result = subprocess.run([sys.executable, "-c", example("python")], cwd=workdir, capture_output=True, text=True,
                            timeout=300, env={"CI": "1", "HOME": str(workdir)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "(5, 144, 176, 3) uint8"
    assert lines[1] == "[('frame_id', 'BIGINT'), ('brightness', 'DOUBLE')]"
    assert (workdir / "demo.duckdb").exists()


@pytest.mark.parametrize("title", [t for t, blocks in sections().items() if blocks])
def test_sql_blocks_of_each_section_run(workdir, title, monkeypatch):
    monkeypatch.chdir(workdir)
    with engine.connect(autocommit=True, progress="off") as con:
        for block in sections()[title]:
            for statement in split_statements(block):
                cursor = con.execute(statement)
                if cursor.description is not None:
                    cursor.fetchall()


def test_every_statement_setting_and_function_is_documented():
    missing = [f"statement {cls.NAME}" for cls in STATEMENTS if not cls.NAME or cls.NAME not in README]
    missing += [f"setting {name}" for name in SETTINGS if f"`{name}`" not in README]
    missing += [f"function {f.name}" for f in builtin_functions() if f"{f.name}(" not in README]
    missing += [f"architecture {name}" for name in ARCHITECTURES
                if not name.startswith("tiny_") and f"'{name}'" not in README and f"`{name}`" not in README]
    assert not missing, f"README does not document: {', '.join(missing)}"
