"""Executors: one module per capability; each statement class reaches its executor through
the :data:`EXECUTORS` table (no if/elif ladder over plan types).

An executor is ``fn(session, node, params) -> Result``.  It validates first, without
writing, and does its writes inside ``session.atomic()`` so a failure leaves nothing.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Sequence

from sqlglot import exp

from engine.result import Result

Executor = Callable[[Any, exp.Expression, Sequence[Any] | None], Result]

#: Statement class -> executor.
EXECUTORS: dict[type[exp.Expression], Executor] = {}


def executes(*node_types: type[exp.Expression]) -> Callable[[Executor], Executor]:
    """Register the decorated function as the executor of ``node_types``."""

    def register(fn: Executor) -> Executor:
        for node_type in node_types:
            EXECUTORS[node_type] = fn
        return fn

    return register


def executor_for(node: exp.Expression) -> Executor | None:
    return EXECUTORS.get(type(node))


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
