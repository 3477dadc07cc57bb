"""Execute the notebooks, and describe their outputs by structure (what a reader sees, not the numbers).

``make notebooks`` runs ``python -m tests.notebook_outputs notebooks/*.ipynb``: each notebook is
executed top to bottom in a fresh kernel and written back with its outputs (plots included),
so a code host shows them.  tests/test_notebooks.py executes each again and compares
:func:`structure` of the fresh outputs with the committed ones.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import nbclient
import nbformat

#: A pandas table in HTML: its shape is in the rows of <tbody> and the cells of a row.
_TBODY_ROW = re.compile(r"<tr>.*?</tr>", re.S)
_SHAPE_NOTE = re.compile(r"<p>(\d+) rows × (\d+) columns</p>")


def execute(path: Path, timeout: int = 600) -> nbformat.NotebookNode:
    """The notebook at ``path`` executed in a fresh kernel, in its own folder."""
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=timeout, record_timing=False,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    return notebook


def _table_shape(html: str) -> tuple[int, int] | None:
    """(rows, columns) of a pandas DataFrame's HTML, or None when it holds no table."""
    if "<table" not in html:
        return None
    noted = _SHAPE_NOTE.search(html)
    if noted:
        return int(noted.group(1)), int(noted.group(2))
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    rows = _TBODY_ROW.findall(body)
    columns = len(re.findall(r"<td", rows[0])) if rows else 0
    return len(rows), columns


def _output_kind(output: dict[str, Any]) -> tuple[Any, ...]:
    kind = output["output_type"]
    if kind == "stream":
        return ("stream", output["name"])
    if kind == "error":
        return ("error", output["ename"])
    data = output.get("data", {})
    shape = _table_shape(data["text/html"]) if "text/html" in data else None
    return (kind, tuple(sorted(data)), shape)


def structure(notebook: nbformat.NotebookNode) -> list[tuple[Any, ...]]:
    """Per cell: its type, its source, and for code the kinds of its outputs in order (stream
    name, MIME types, and the shape of a table), with consecutive stream chunks merged."""
    found = []
    for cell in notebook.cells:
        kinds: list[tuple[Any, ...]] = []
        for output in cell.get("outputs", []):
            kind = _output_kind(output)
            if not (kinds and kind[0] == "stream" and kinds[-1] == kind):
                kinds.append(kind)
        found.append((cell.cell_type, cell.source, tuple(kinds)))
    return found


def refresh(path: Path) -> None:
    """Execute the notebook and write it back with its outputs."""
    notebook = execute(path)
    for cell in notebook.cells:
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(notebook, path)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"executing {name}", flush=True)
        refresh(Path(name))
