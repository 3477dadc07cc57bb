"""Every notebook under notebooks/ runs top to bottom without a failing cell, and its committed
outputs are current in structure: the same cells, the same kinds of output in each (streams,
tables, plots), tables of the same shape. Numbers may differ. `make notebooks` refreshes them."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tests.conftest import ROOT
from tests.notebook_outputs import _table_shape, execute, structure

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert any(p.name == "00_quickstart.ipynb" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_outputs_show_the_plots_and_no_warnings(path: Path):
    notebook = nbformat.read(path, as_version=4)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "commit the notebook executed: make notebooks"
    assert all(c.get("execution_count") for c in notebook.cells if c.cell_type == "code" and c.source.strip())
    stderr = [o["text"] for o in outputs if o["output_type"] == "stream" and o["name"] == "stderr"]
    assert not stderr, stderr
    assert not any(o["output_type"] == "error" for o in outputs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_and_its_committed_outputs_are_current(path: Path):
    committed = nbformat.read(path, as_version=4)
    fresh = execute(path)  # raises CellExecutionError naming the failing cell
    for index, (old, new) in enumerate(zip(structure(committed), structure(fresh), strict=True)):
        assert old == new, (f"{path.name} cell {index}: committed outputs {old[2]} but it now gives {new[2]}; "
                            "run `make notebooks`")


def test_structure_sees_a_changed_table_shape_and_a_lost_plot():
    html = "<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td><td>2</td></tr></tbody></table>"
    assert _table_shape(html) == (1, 2)
    assert _table_shape("<table>...</table>\n<p>120 rows × 4 columns</p>") == (120, 4)
    cell = nbformat.v4.new_code_cell("plot()", outputs=[
        nbformat.v4.new_output("display_data", data={"image/png": "", "text/plain": "<Figure>"}),
        nbformat.v4.new_output("stream", name="stdout", text="a"),
        nbformat.v4.new_output("stream", name="stdout", text="b")])
    notebook = nbformat.v4.new_notebook(cells=[cell])
    assert structure(notebook) == [("code", "plot()", (("display_data", ("image/png", "text/plain"), None),
                                                       ("stream", "stdout")))]
    cell.outputs = cell.outputs[1:]
    assert structure(notebook)[0][2] == (("stream", "stdout"),)
