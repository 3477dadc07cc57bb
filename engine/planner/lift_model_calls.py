"""Rule: lift calls of model functions out of DuckDB's row-at-a-time evaluation.

Each call ``<model>(frame)``, ``features(<model>, frame)`` or ``logits(<model>, frame)``
becomes a scan request (one per model, frames table and SELECT) and, in the query, a
correlated lookup of the scan's result by ``frame_id``.  Unaliased projections keep the
name the call would have had (``label`` for ``m(frame).label``).

>>> import sqlglot
>>> from engine.planner import PlanContext
>>> from engine.inference.functions import PlannedFunction
>>> context = PlanContext(functions={"m": PlannedFunction("m", "model")})
>>> tree = lift_model_calls(sqlglot.parse_one("SELECT m(frame).label FROM traffic", read="duckdb"), context)
>>> tree.sql("duckdb")
'SELECT (SELECT __mallard_call_1.prediction FROM __mallard_call_1 WHERE __mallard_call_1.frame_id = traffic.frame_id).label AS label FROM traffic'
>>> [r.describe() for r in context.info["inference_scans"]]
['__mallard_call_1: m ON traffic (frame) OUTPUTS prediction']
"""
from __future__ import annotations

from typing import Any

from sqlglot import exp

from engine.errors import ProgrammingError
from engine.inference.plan import ModelCall, ScanRequest, model_call, relation_reference, scan_requests, scope_sources


def lift_model_calls(expression: exp.Expression, context: Any) -> exp.Expression:
    """Replace model calls by lookups into scan relations; record one ScanRequest per scan."""
    if not _calls(expression, context.functions):
        return expression
    _name_projections(expression, context.functions)
    calls = _calls(expression, context.functions)
    requests = scan_requests(context)
    for call in calls:
        scope, table = frames_source(call)
        request = next((r for r in requests if r.scope is scope and r.model == call.model
                        and r.table is table and r.frame_column == call.frame.name.lower()), None)
        if request is None:
            request = ScanRequest(model=call.model, table=table, frame_column=call.frame.name.lower(),
                                  outputs=set(), relation=f"__mallard_call_{len(requests) + 1}", scope=scope)
            requests.append(request)
        request.outputs.add(call.output)
        call.node.replace(relation_reference(request.relation, call.output, table.alias_or_name))
    return expression


def _calls(expression: exp.Expression, functions: dict[str, Any]) -> list[ModelCall]:
    if not functions:
        return []
    calls = [model_call(node, functions) for node in expression.find_all(exp.Anonymous)]
    return [c for c in calls if c is not None]


def _name_projections(expression: exp.Expression, functions: dict[str, Any]) -> None:
    """Alias each unaliased projection holding a model call as DuckDB would name the call."""
    for select in list(expression.find_all(exp.Select)):
        for projection in select.expressions:
            if isinstance(projection, exp.Alias) or not _calls(projection, functions):
                continue
            projection.replace(exp.alias_(projection.copy(), projection_name(projection)))


def projection_name(projection: exp.Expression) -> str:
    """``label`` for ``m(frame).label`` or ``m(frame)['label']``; else the expression's text."""
    if isinstance(projection, exp.Dot) and isinstance(projection.expression, exp.Identifier):
        return projection.expression.name
    if (isinstance(projection, exp.Bracket) and len(projection.expressions) == 1
            and isinstance(projection.expressions[0], exp.Literal) and projection.expressions[0].is_string):
        return projection.expressions[0].this
    return projection.sql("duckdb", normalize_functions="lower")


def frames_source(call: ModelCall) -> tuple[exp.Select, exp.Table]:
    """The SELECT whose FROM names the frames table of ``call``'s frame column, and that table."""
    column = call.frame
    qualifier = column.table.lower() if column.table else None
    select = call.node.find_ancestor(exp.Select)
    while select is not None:
        sources = scope_sources(select)
        if qualifier is not None and qualifier in sources:
            return select, _frames_table(sources[qualifier], call)
        if qualifier is None and len(sources) == 1:
            return select, _frames_table(next(iter(sources.values())), call)
        if qualifier is None and len(sources) > 1:
            raise ProgrammingError(
                f"{call.model}({column.sql('duckdb')}): the query reads several tables "
                f"({', '.join(sources)}); qualify the frame column with its table, e.g. {next(iter(sources))}.{column.name}"
            )
        select = select.parent.find_ancestor(exp.Select) if select.parent is not None else None
    raise ProgrammingError(
        f"{call.model}({column.sql('duckdb')}) expects the frame column of a frames table in the query's FROM, "
        f"found no table{' named ' + qualifier if qualifier else ''} there"
    )


def _frames_table(source: exp.Expression, call: ModelCall) -> exp.Table:
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier) and not _is_cte(source):
        return source
    raise ProgrammingError(
        f"{call.model}({call.frame.sql('duckdb')}) applies to the frame column of a frames table named in "
        f"FROM (as LOAD VIDEO makes it); found {source.sql('duckdb')}, which is a subquery, CTE or function"
    )


def _is_cte(table: exp.Table) -> bool:
    if table.db:
        return False
    node: exp.Expression | None = table
    while node is not None:
        with_ = node.args.get("with_") or node.args.get("with") if isinstance(node, exp.Expression) else None
        if isinstance(with_, exp.With) and any(cte.alias.lower() == table.name.lower() for cte in with_.expressions):
            return True
        node = node.parent
    return False
