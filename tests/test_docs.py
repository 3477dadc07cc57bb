"""The documentation site (docs/, mkdocs.yml): its generated pages are current, every statement,
setting, function and architecture is documented, every example runs as written, and the
site builds with warnings as errors."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine.dialect import split_statements
from engine.registry import SETTINGS, STATEMENTS, builtin_functions
from engine.statement_docs import slug, syntax
from tests.conftest import ROOT
from udfs.architectures import ARCHITECTURES

DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent


def _reference_module():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "scripts" / "docs_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _reference_module()
PAGES = reference.hand_pages()


def blocks(page: Path, kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", page.read_text(), re.S)


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "data").symlink_to(ROOT / "data")
    return tmp_path


def test_generated_pages_are_current():
    assert reference.stale_pages() == [], "run `make docs` (scripts/docs_reference.py)"


def test_a_statement_without_a_page_is_caught(tmp_path, monkeypatch):
    copy = tmp_path / "docs"
    shutil.copytree(DOCS, copy)
    (copy / "sql" / "label.md").unlink()
    (copy / "sql" / "retired-statement.md").write_text("# RETIRED\n")
    monkeypatch.setattr(reference, "DOCS", copy)
    monkeypatch.setattr(reference, "ROOT", tmp_path)
    assert reference.stale_pages() == ["docs/sql/label.md is missing", "docs/sql/retired-statement.md documents no statement"]


def test_every_statement_has_a_syntax_line_a_capability_page_and_an_example():
    examples = reference.statement_examples()
    problems = [f"{cls.NAME}: no ``syntax`` line in its docstring or its executor's" for cls in STATEMENTS
                if not syntax(cls)]
    problems += [f"{cls.NAME}: its capability page docs/{reference.capability_page(cls)} is missing"
                 for cls in STATEMENTS if not (DOCS / reference.capability_page(cls)).exists()]
    problems += [f"{cls.NAME}: no example in any page of docs/" for cls in STATEMENTS if not examples.get(cls)]
    assert not problems, problems
    assert all((DOCS / "sql" / f"{slug(cls)}.md").exists() for cls in STATEMENTS)


def test_every_setting_function_and_architecture_is_documented():
    text = "\n".join(p.read_text() for p in PAGES)
    missing = [f"setting {name}" for name in SETTINGS if f"`{name}`" not in (DOCS / "settings.md").read_text()]
    missing += [f"function {f.name}" for f in builtin_functions() if f"{f.name}(" not in text]
    builtin = [name for name, spec in ARCHITECTURES.items() if spec.factory.__module__ == "udfs.architectures"]
    assert "mobilenet_v2" in builtin                    # the tests' own architectures are not the library's
    missing += [f"architecture {name}" for name in builtin if f"'{name}'" not in text and f"`{name}`" not in text]
    assert not missing, f"docs/ does not document: {', '.join(missing)}"


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "sql")], ids=lambda p: p.name)
def test_sql_examples_of_each_page_run_in_order(workdir, page, monkeypatch):
    monkeypatch.chdir(workdir)
    with engine.connect(autocommit=True, progress="off") as con:
        for block in blocks(page, "sql"):
            for statement in split_statements(block):
                cursor = con.execute(statement)
                if cursor.description is not None:
                    cursor.fetchall()


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")], ids=lambda p: p.name)
def test_python_examples_of_each_page_run_in_order(workdir, page):
    script = "\n\n".join(blocks(page, "python"))
    result = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True, timeout=600,
                            env={"CI": "1", "HOME": str(workdir), "PATH": f"{BIN}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr


def transcripts() -> list[tuple[str, str, list[str]]]:
    """(page, command, expected output lines) of every ``$ command`` in a ```console block."""
    found = []
    for page in PAGES:
        for block in blocks(page, "console"):
            for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
                command, *output = chunk.rstrip("\n").split("\n")
                found.append((page.name, command, output))
    return found


@pytest.mark.parametrize("page, command, expected", transcripts(), ids=lambda v: v if isinstance(v, str) else "")
def test_console_examples_print_what_the_page_shows(workdir, page, command, expected):
    result = subprocess.run(["bash", "-c", command], cwd=workdir, capture_output=True, text=True, timeout=300,
                            env={"CI": "1", "HOME": str(workdir), "PATH": f"{BIN}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    result = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "sql" / "label" / "index.html").exists()
    assert "Abort" not in result.stderr and "WARNING" not in result.stderr, result.stderr


def test_a_page_left_out_of_the_nav_fails_the_build(tmp_path):
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    (tmp_path / "docs" / "training.md").write_text("# Training\n\nA capability page nobody added to the nav.\n")
    result = subprocess.run([str(BIN / "mkdocs"), "build", "--strict"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode != 0 and "training.md" in result.stderr
