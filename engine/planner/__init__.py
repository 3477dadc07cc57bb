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

from engine.planner.lift_model_calls import lift_model_calls  # noqa: E402  (rules need PlanContext)
from engine.planner.lift_occlusion_maps import lift_occlusion_maps  # noqa: E402
from engine.planner.push_frame_predicates import push_frame_predicates  # noqa: E402
from engine.planner.share_backbones import share_backbones  # noqa: E402

#: The ordered rewrite rules, each in its own module of this package.
RULES: tuple[Rule, ...] = (
    lift_occlusion_maps,     # inference: occlusion_map(...) in FROM -> a relation computed first
    lift_model_calls,        # inference: model calls -> scan requests + lookups by frame_id
    push_frame_predicates,   # inference: WHERE/LIMIT on the frames table restrict the scans
    share_backbones,         # inference: one scan per (model, frames table): the backbone runs once
)


def optimize(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """Apply every rule in order to a copy of ``expression``."""
    tree = expression.copy()
    for rule in RULES:
        tree = rule(tree, context)
    return tree
