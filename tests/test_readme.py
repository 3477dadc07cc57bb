"""The README's two commands and ten-line tours run as written, and it links to the docs pages
(tests/test_docs.py runs the pages' examples and checks everything is documented there)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
MALLARD = str(Path(sys.executable).parent / "mallard")


def example(kind: str) -> str:
    match = re.search(rf"<!-- example: {kind} -->\s*```{kind}\n(.*?)```", README, re.S)
    assert match, f"README has no {kind} example"
    return match.group(1)


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


def test_readme_links_to_the_docs_pages_and_names_docs_in_its_layout():
    links = re.findall(r"\]\((docs/[^)#]+)", README)
    assert len(links) >= 10, links
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README links to pages that do not exist: {missing}"
    layout = README.split("## Layout", 1)[1]
    assert "| `docs/` |" in layout


def test_cluster_example_runs_as_written(workdir):
    """The "Scaling out" example starts Ray on this machine (cluster 'local') in a process of its own."""
    code = re.search(r"<!-- example: cluster -->\s*```python\n(.*?)```", README, re.S)
    assert code, "README has no cluster example"
    result = subprocess.run([sys.executable, "-c", code.group(1)], cwd=workdir, capture_output=True, text=True,
                            timeout=300, env={"CI": "1", "HOME": str(workdir), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("LABEL: 10000 rows of msgs into labels") and "on 1 cluster node" in lines[0], lines
    assert lines[1].startswith("(True, True, ")


def test_training_section_runs_as_written(workdir):
    block = re.search(r"<!-- section: training \(issue 11\) -->.*?```sql\n(.*?)```", README, re.S)
    assert block, "README has no training example"
    (workdir / "training.sql").write_text(block.group(1))
    result = subprocess.run([MALLARD, "run", "training.sql"], cwd=workdir, capture_output=True, text=True,
                            timeout=300, env={"CI": "1", "HOME": str(workdir)})
    assert result.returncode == 0, result.stderr
    assert "CREATE MODEL: sides version" in result.stdout and (workdir / "sides.safetensors").exists()
    assert "above" in result.stdout and "below" in result.stdout
