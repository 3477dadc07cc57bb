"""Every example in the docstrings of ``engine`` and ``udfs`` runs and prints what it shows.

The examples run in a subprocess of their own, from the project root (as the README's do:
``data/`` is there): some declare functions, labeling functions or architectures in
process-wide registries, which must not leak into the other tests.
"""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

RUNNER = r"""
import doctest, importlib, json, pkgutil, sys
import engine, udfs

names = []
for package in (engine, udfs):
    names.append(package.__name__)
    names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
report = {"modules": sorted(names), "attempted": 0, "failed": {}}
flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
for name in sorted(names):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=flags)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    report["attempted"] += result.attempted
    if result.failed:
        report["failed"][name] = result.failed
print("REPORT " + json.dumps(report))
"""


def test_docstring_examples_run() -> None:
    done = subprocess.run([sys.executable, "-c", RUNNER], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.rsplit("REPORT ", 1)[1])
    assert {"engine.connection", "engine.cursor", "udfs.architectures", "engine.inference.incremental.engine"} <= set(
        report["modules"])
    assert report["attempted"] > 150
    assert report["failed"] == {}, f"failing docstring examples per module: {report['failed']}\n" + done.stdout[-6000:]
