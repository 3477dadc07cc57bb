"""Every example in the docstrings of ``engine`` and ``udfs`` runs and prints what it shows."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

from pathlib import Path

import pytest

import engine
import udfs


def _modules() -> list[str]:
    names = []
    for package in (engine, udfs):
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    return sorted(names)


MODULES = _modules()
ROOT = Path(__file__).resolve().parent.parent


def test_modules_are_found() -> None:
    assert {"engine.connection", "engine.cursor", "udfs.architectures", "engine.inference.incremental.engine"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)   # examples run from the project root, as the README's do (data/ is there)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} failed (output above)"
