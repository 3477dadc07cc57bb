"""Rule: lift calls of model functions out of DuckDB's row-at-a-time evaluation.

Each call ``<model>(frame)``, ``features(<model>, frame)`` or ``logits(<model>, frame)``
becomes a scan request (one per model, frames table and SELECT) and, in the query, a
correlated lookup of the scan's result by ``frame_id``.  Unaliased projections keep the
name the call would have had (``label`` for ``m(frame).label``).

>>> import sqlglot
>>> from engine.planner.annotations import CatalogSnapshot, Plan
>>> from engine.inference.functions import PlannedFunction
>>> catalog = CatalogSnapshot.of({"m": PlannedFunction("m", "model")})
>>> plan = lift_model_calls(Plan(sqlglot.parse_one("SELECT m(frame).label FROM traffic", read="duckdb")), catalog)
>>> plan.tree.sql("duckdb")
'SELECT (SELECT __mallard_call_1.prediction FROM __mallard_call_1 WHERE __mallard_call_1.frame_id = traffic.frame_id).label AS label FROM traffic'
>>> [r.describe() for r in plan.scans]
['__mallard_call_1: m ON traffic (frame) OUTPUTS prediction']
"""
from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from engine.errors import ProgrammingError
from engine.inference.functions import PlannedFunction
from engine.planner.annotations import CatalogSnapshot, Plan, ScanRequest
from engine.planner.model_calls import ModelCall, model_call, name_projections, relation_reference, scope_sources


def lift_model_calls(plan: Plan, catalog: CatalogSnapshot) -> Plan:
    """Replace model calls by lookups into scan relations; one ScanRequest per scan."""
    if not _calls(plan.tree, catalog.functions):
        return plan
    tree = plan.tree.copy()
    name_projections(tree, lambda projection: bool(_calls(projection, catalog.functions)))
    requests: list[ScanRequest] = list(plan.scans)
    scopes: list[exp.Select] = [exp.Select() for _ in requests]  # earlier requests: no scope in this tree
    for call in _calls(tree, catalog.functions):
        scope, table = frames_source(call)
        column = call.frame.name.lower()
        index = next((i for i, r in enumerate(requests) if scopes[i] is scope and r.model == call.model
                      and r.table_key == _key(table) and r.alias == table.alias_or_name.lower()
                      and r.frame_column == column), None)
        if index is None:
            requests.append(ScanRequest(model=call.model, table=table.copy(), frame_column=column,
                                        outputs=frozenset(), relation=f"__mallard_call_{len(requests) + 1}"))
            scopes.append(scope)
            index = len(requests) - 1
        requests[index] = requests[index].with_outputs({call.output})
        call.node.replace(relation_reference(requests[index].relation, call.output, table.alias_or_name))
    return plan.but(tree=tree, scans=tuple(requests))


def _key(table: exp.Table) -> tuple[str, ...]:
    return tuple(p.lower() for p in (table.catalog, table.db, table.name))


def _calls(expression: exp.Expr, functions: Mapping[str, PlannedFunction]) -> list[ModelCall]:
    if not functions:
        return []
    calls = [model_call(node, functions) for node in expression.find_all(exp.Anonymous)]
    return [c for c in calls if c is not None]


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


def _frames_table(source: exp.Expr, call: ModelCall) -> exp.Table:
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier) and not _is_cte(source):
        return source
    raise ProgrammingError(
        f"{call.model}({call.frame.sql('duckdb')}) applies to the frame column of a frames table named in "
        f"FROM (as LOAD VIDEO makes it); found {source.sql('duckdb')}, which is a subquery, CTE or function"
    )


def _is_cte(table: exp.Table) -> bool:
    if table.db:
        return False
    node: exp.Expr | None = table
    while node is not None:
        with_ = node.args.get("with_") or node.args.get("with") if isinstance(node, exp.Expr) else None
        if isinstance(with_, exp.With) and any(cte.alias.lower() == table.name.lower() for cte in with_.expressions):
            return True
        node = node.parent
    return False
