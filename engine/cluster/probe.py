"""What a cluster node can import: a task sent to every node before work that needs modules.

This module imports nothing of Mallard's, and its functions travel to the nodes by value,
so the probe runs even on a node where Mallard itself is missing, and says so.

>>> missing_modules(["json", "no_such_module_here"])
{'no_such_module_here': "ModuleNotFoundError: No module named 'no_such_module_here'"}
"""
from __future__ import annotations

import importlib


def missing_modules(names: list[str]) -> dict[str, str]:
    """The modules of ``names`` this process cannot import, with the error of each."""
    missing = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:
            missing[name] = f"{type(e).__name__}: {e}"
    return missing
