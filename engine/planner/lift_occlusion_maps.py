"""Rule: lift ``occlusion_map(<model>, (<frame query>), ...)`` table functions out of FROM.

Each becomes a relation computed before the query runs (Krypton's occlusion-based
explanation, as batched incremental inference over every patch position).  The frame query
selects one frame column of a frames table; the rule adds the table's ``height`` and
``width`` so the step can decode the frame.  Named arguments are checked as statement
options are (:mod:`engine.options`).

>>> import sqlglot
>>> from engine.planner.annotations import CatalogSnapshot, Plan
>>> from engine.inference.functions import PlannedFunction
>>> catalog = CatalogSnapshot.of({"m": PlannedFunction("m", "model"),
...                                "occlusion_map": PlannedFunction("occlusion_map", "occlusion_map")})
>>> sql = "SELECT * FROM occlusion_map(m, (SELECT frame FROM traffic WHERE frame_id = 10), stride => 8)"
>>> plan = lift_occlusion_maps(Plan(sqlglot.parse_one(sql, read="duckdb")), catalog)
>>> plan.tree.sql("duckdb")
'SELECT * FROM __mallard_occlusion_1 AS occlusion_map'
>>> plan.occlusion_maps[0].describe()
'__mallard_occlusion_1: occlusion_map(m, (SELECT frame, height, width FROM traffic WHERE frame_id = 10), patch => 16, stride => 8)'
"""
from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from engine.errors import ProgrammingError
from engine.inference.functions import OCCLUSION_MAP, PlannedFunction
from engine.inference.occlusion import OCCLUSION_OPTIONS
from engine.options import named_arguments
from engine.planner.annotations import CatalogSnapshot, OcclusionRequest, Plan
from engine.planner.model_calls import function_name, model_argument


def lift_occlusion_maps(plan: Plan, catalog: CatalogSnapshot) -> Plan:
    """Replace each ``occlusion_map(...)`` in FROM by a relation computed first."""
    if OCCLUSION_MAP not in catalog.functions:
        return plan
    tree = plan.tree.copy()
    calls = [n for n in tree.find_all(exp.Anonymous) if function_name(n) == OCCLUSION_MAP]
    if not calls:
        return plan
    requests = list(plan.occlusion_maps)
    for call in calls:
        table = call.parent
        if not isinstance(table, exp.Table) or table.this is not call:
            raise ProgrammingError(
                "occlusion_map(...) is a table function: write SELECT * FROM occlusion_map(<model>, "
                "(SELECT frame FROM <frames table> WHERE ...), patch => 16, stride => 4)"
            )
        relation = f"__mallard_occlusion_{len(requests) + 1}"
        requests.append(_request(call, relation, catalog.functions))
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(OCCLUSION_MAP)))
        table.set("this", exp.to_identifier(relation))
    return plan.but(tree=tree, occlusion_maps=tuple(requests))


def _request(call: exp.Anonymous, relation: str, functions: Mapping[str, PlannedFunction]) -> OcclusionRequest:
    positional = [a for a in call.expressions if not isinstance(a, (exp.Kwarg, exp.PropertyEQ))]
    named = [a for a in call.expressions if isinstance(a, (exp.Kwarg, exp.PropertyEQ))]
    if len(positional) != 2:
        raise ProgrammingError(
            f"occlusion_map takes a model and a frame query, then named options; found {len(positional)} "
            "positional arguments"
        )
    model = model_argument(OCCLUSION_MAP, positional[0], functions)
    options = named_arguments("occlusion_map", named, OCCLUSION_OPTIONS)
    return OcclusionRequest(model=model, frame_query=_frame_query(positional[1]), options=options,
                            relation=relation)


def _frame_query(node: exp.Expr) -> exp.Select:
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
        raise ProgrammingError(f"occlusion_map expects the frame query to select a frame column, "
                               f"found {projection.sql('duckdb')}")
    query = query.copy()
    table = column.args.get("table")
    query.set("expressions", [
        column.copy(),
        exp.column("height", table=table.copy() if table else None),
        exp.column("width", table=table.copy() if table else None),
    ])
    return query
