"""Rule: restrict each inference scan to the frames the query can use.

Conjuncts of the WHERE clause that read only the frames table's own columns (no
subqueries, parameters, aggregates, windows or random values) are copied into the scan
request, so the scan computes only frames that can pass the filter.  When the whole WHERE
is pushed and the SELECT reads only the frames table ordered by ``frame_id`` with a
literal LIMIT, the limit is pushed too.  Rows the scan did not compute cannot pass the
query's own WHERE, so no result changes.  A request's SELECT is found from the tree's
shape (the SELECT its lookups correlate with), so the rule reads nothing but its inputs.

>>> import sqlglot
>>> from engine.planner.annotations import CatalogSnapshot, Plan
>>> from engine.planner.lift_model_calls import lift_model_calls
>>> from engine.inference.functions import PlannedFunction
>>> catalog = CatalogSnapshot.of({"m": PlannedFunction("m", "model")})
>>> query = sqlglot.parse_one("SELECT m(t.frame) FROM traffic t WHERE t.frame_id < 300 AND m(t.frame).score > 0.5", read="duckdb")
>>> push_frame_predicates(lift_model_calls(Plan(query), catalog), catalog).scans[0].predicate.sql("duckdb")
'frame_id < 300'
"""
from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from engine.planner.annotations import CatalogSnapshot, Plan, ScanRequest
from engine.planner.model_calls import lookup_scopes, scope_sources

#: Nodes that make a conjunct unsafe to evaluate in the scan.
_UNPUSHABLE = (exp.Subquery, exp.Exists, exp.Placeholder, exp.Parameter, exp.AggFunc, exp.Window, exp.Rand,
               exp.Star, exp.Select)


def push_frame_predicates(plan: Plan, catalog: CatalogSnapshot) -> Plan:
    """Fill each scan request's ``predicate`` (and ``limit``) from the SELECT it serves."""
    if not plan.scans:
        return plan
    return plan.but(scans=tuple(_push(request, plan.tree) for request in plan.scans))


def _push(request: ScanRequest, tree: exp.Expr) -> ScanRequest:
    scopes = lookup_scopes(tree, request.relation)
    if len(scopes) != 1:
        return request  # served to several SELECTs (or none): every frame
    scope = scopes[0]
    single = len(scope_sources(scope)) == 1
    where = scope.args.get("where")
    conjuncts = list(_conjuncts(where.this)) if where is not None else []
    pushed = [_unqualified(c) for c in conjuncts if _pushable(c, request.alias, single)]
    predicate = exp.and_(*pushed) if pushed else None
    if len(pushed) == len(conjuncts) and single:
        limit = _frame_limit(scope)
        if limit is not None:
            return request.restricted(predicate, *limit)
    return request.restricted(predicate)


def _conjuncts(condition: exp.Expr) -> Iterator[exp.Expr]:
    if isinstance(condition, exp.And):
        yield from _conjuncts(condition.left)
        yield from _conjuncts(condition.right)
    elif isinstance(condition, exp.Paren):
        yield from _conjuncts(condition.this)
    else:
        yield condition


def _pushable(condition: exp.Expr, alias: str, single: bool) -> bool:
    if any(True for _ in condition.find_all(*_UNPUSHABLE)):
        return False
    for column in condition.find_all(exp.Column):
        if column.args.get("db") is not None:
            return False
        if column.table and column.table.lower() != alias:
            return False
        if not column.table and not single:
            return False
    return True


def _unqualified(condition: exp.Expr) -> exp.Expr:
    copy = condition.copy()
    for column in copy.find_all(exp.Column):
        column.set("table", None)
    return copy


def _frame_limit(scope: exp.Select) -> tuple[int, str] | None:
    """(rows, 'asc'|'desc') when the SELECT is ``... ORDER BY frame_id LIMIT n [OFFSET k]``."""
    if any(scope.args.get(k) for k in ("group", "having", "qualify", "distinct", "joins")):
        return None
    if any(True for p in scope.expressions for _ in p.find_all(exp.AggFunc, exp.Window)):
        return None
    limit, offset, order = scope.args.get("limit"), scope.args.get("offset"), scope.args.get("order")
    if not isinstance(limit, exp.Limit) or order is None or len(order.expressions) != 1:
        return None
    key = order.expressions[0]
    if not (isinstance(key.this, exp.Column) and key.this.name.lower() == "frame_id"):
        return None
    rows = _whole_number(limit.expression)
    skip = _whole_number(offset.expression) if isinstance(offset, exp.Offset) else 0
    if rows is None or skip is None:
        return None
    return rows + skip, "desc" if key.args.get("desc") else "asc"


def _whole_number(node: exp.Expr | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    return None
