"""Plain statements that call functions Mallard plans: rewrite with the planner's rules,
run the steps the rules asked for, then let DuckDB run the rewritten statement."""
from __future__ import annotations

from typing import Any, Sequence

from sqlglot import exp

from engine.planner import PlanContext, optimize
from engine.result import Result


def run_planned_query(session: Any, node: exp.Expression, params: Sequence[Any] | None, text: str) -> Result:
    """Execute ``node`` (parsed from ``text``) after planning it."""
    context = PlanContext(functions=session.functions, info={"params": params})  # rules may read bound values
    rewritten = optimize(node, context)
    for step in context.steps:
        step.run(session)
    if not context.steps and rewritten == node:
        return Result(query=text, params=params)  # nothing to plan: DuckDB runs the user's text
    return Result(query=rewritten.sql("duckdb"), params=params)
