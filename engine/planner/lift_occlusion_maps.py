"""Rule: turn the table function ``occlusion_map(<model>, (<frame query>), patch => 16,
stride => 4)`` into a relation computed before the query runs (Krypton's occlusion-based
explanation, as batched incremental inference over every patch position).

The frame query selects one frame column of a frames table; the rule adds the table's
``height`` and ``width`` so the step can decode the frame.

>>> import sqlglot
>>> from engine.planner import PlanContext
>>> from engine.inference.functions import PlannedFunction
>>> context = PlanContext(functions={"m": PlannedFunction("m", "model"),
...                                  "occlusion_map": PlannedFunction("occlusion_map", "occlusion_map")})
>>> sql = "SELECT * FROM occlusion_map(m, (SELECT frame FROM traffic WHERE frame_id = 10), stride => 8)"
>>> lift_occlusion_maps(sqlglot.parse_one(sql, read="duckdb"), context).sql("duckdb")
'SELECT * FROM __mallard_occlusion_1 AS occlusion_map'
>>> context.steps[0].describe()
'__mallard_occlusion_1: occlusion_map(m, SELECT frame, height, width FROM traffic WHERE frame_id = 10, patch => 16, stride => 8)'
"""
from __future__ import annotations

from typing import Any

from sqlglot import exp

from engine.errors import ProgrammingError
from engine.inference.functions import OCCLUSION_MAP
from engine.inference.occlusion import OCCLUSION_OPTIONS, OcclusionMap
from engine.inference.plan import function_name, model_argument


def lift_occlusion_maps(expression: exp.Expression, context: Any) -> exp.Expression:
    """Replace each ``occlusion_map(...)`` in FROM by a relation its step computes."""
    if OCCLUSION_MAP not in context.functions:
        return expression
    calls = [n for n in expression.find_all(exp.Anonymous) if function_name(n) == OCCLUSION_MAP]
    for call in calls:
        table = call.parent
        if not isinstance(table, exp.Table) or table.this is not call:
            raise ProgrammingError(
                "occlusion_map(...) is a table function: write SELECT * FROM occlusion_map(<model>, "
                "(SELECT frame FROM <frames table> WHERE ...), patch => 16, stride => 4)"
            )
        relation = f"__mallard_occlusion_{sum(isinstance(s, OcclusionMap) for s in context.steps) + 1}"
        context.steps.append(_occlusion_step(call, relation, context.functions))
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(OCCLUSION_MAP)))
        table.set("this", exp.to_identifier(relation))
    return expression


def _occlusion_step(call: exp.Anonymous, relation: str, functions: dict[str, Any]) -> OcclusionMap:
    positional = [a for a in call.expressions if not isinstance(a, (exp.Kwarg, exp.PropertyEQ))]
    named = [a for a in call.expressions if isinstance(a, (exp.Kwarg, exp.PropertyEQ))]
    if len(positional) != 2:
        raise ProgrammingError(
            f"occlusion_map takes a model and a frame query, then named options; found {len(positional)} "
            "positional arguments"
        )
    model = model_argument(OCCLUSION_MAP, positional[0], functions)
    options: dict[str, Any] = {}
    for arg in named:
        name = arg.this.name.lower()
        if name not in OCCLUSION_OPTIONS:
            raise ProgrammingError(f"unknown occlusion_map option {name!r}; expected one of {', '.join(OCCLUSION_OPTIONS)}")
        options[name] = _literal(name, arg.expression)
    return OcclusionMap(model=model, frame_query=_frame_query(positional[1]), options=options, relation=relation)


def _literal(name: str, node: exp.Expression) -> Any:
    from engine.dialect.base import literal_value

    try:
        return literal_value(node)
    except ValueError:
        raise ProgrammingError(f"occlusion_map option {name}: expected a literal, found {node.sql('duckdb')}") from None


def _frame_query(node: exp.Expression) -> exp.Select:
    """``(SELECT <frame column> FROM ...)`` with the frame's height and width added."""
    query = node.this if isinstance(node, exp.Subquery) else None
    if not isinstance(query, exp.Select) or len(query.expressions) != 1:
        raise ProgrammingError(
            "occlusion_map expects its second argument to be a query of one frame, such as "
            f"(SELECT frame FROM traffic WHERE frame_id = 10); found {node.sql('duckdb')}"
        )
    projection = query.expressions[0]
    column = projection.this if isinstance(projection, exp.Alias) else projection
    if not isinstance(column, exp.Column):
        raise ProgrammingError(f"occlusion_map expects the frame query to select a frame column, found {projection.sql('duckdb')}")
    query = query.copy()
    table = column.args.get("table")
    query.set("expressions", [
        column.copy(),
        exp.column("height", table=table.copy() if table else None),
        exp.column("width", table=table.copy() if table else None),
    ])
    return query
