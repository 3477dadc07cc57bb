"""The planner: rewrites a parsed statement that calls functions Mallard plans.

Rules are pure functions ``rule(expression, context) -> expression`` listed in one ordered
:data:`RULES` tuple (as sqlglot's optimizer does).  A rule that needs work done before the
rewritten statement runs (an inference scan, say) records a step in ``context.steps``; the
executor of planned queries runs those steps, then the rewritten SQL on DuckDB.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from sqlglot import exp


@dataclass
class PlanContext:
    """What rules may read (the session's catalog view) and write (steps to run first)."""

    functions: dict[str, Any] = field(default_factory=dict)
    steps: list[Any] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


Rule = Callable[[exp.Expression, PlanContext], exp.Expression]

#: The ordered rewrite rules, each in its own module of this package.
RULES: tuple[Rule, ...] = ()


def optimize(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """Apply every rule in order to a copy of ``expression``."""
    tree = expression.copy()
    for rule in RULES:
        tree = rule(tree, context)
    return tree
