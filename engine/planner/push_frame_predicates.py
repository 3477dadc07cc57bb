"""Rule: restrict each inference scan to the frames the query can use.

Conjuncts of the WHERE clause that read only the frames table's own columns (no
subqueries, unbound parameters, aggregates, windows or random values) are copied into the
scan request, so the scan computes only frames that can pass the filter.  When the whole WHERE
is pushed and the SELECT reads only the frames table ordered by ``frame_id`` with a
literal LIMIT, the limit is pushed too.  Rows the scan did not compute cannot pass the
query's own WHERE, so no result changes.

>>> import sqlglot
>>> from engine.planner import PlanContext
>>> from engine.planner.lift_model_calls import lift_model_calls
>>> from engine.inference.functions import PlannedFunction
>>> context = PlanContext(functions={"m": PlannedFunction("m", "model")})
>>> query = sqlglot.parse_one("SELECT m(t.frame) FROM traffic t WHERE t.frame_id < 300 AND m(t.frame).score > 0.5", read="duckdb")
>>> _ = push_frame_predicates(lift_model_calls(query, context), context)
>>> context.info["inference_scans"][0].predicate.sql("duckdb")
'frame_id < 300'
"""
from __future__ import annotations

from typing import Any, Iterator

from sqlglot import exp

from engine.inference.plan import ScanRequest, scan_requests, scope_sources

#: Nodes that make a conjunct unsafe to evaluate in the scan.
_UNPUSHABLE = (exp.Subquery, exp.Exists, exp.Placeholder, exp.Parameter, exp.AggFunc, exp.Window, exp.Rand,
               exp.Star, exp.Select)


def push_frame_predicates(expression: exp.Expression, context: Any) -> exp.Expression:
    """Fill each scan request's ``predicate`` (and ``limit``) from its SELECT.

    With positional parameters bound (``context.info['params']``), a ``?`` in a pushed
    conjunct is replaced by its value in the scan's copy (the query keeps its ``?``).
    """
    requests = [r for r in scan_requests(context) if r.scope is not None]
    if not requests:
        return expression
    values = bound_values(expression, context.info.get("params"))
    for request in requests:
        _push(request, values)
    return expression


def bound_values(expression: exp.Expression, params: Any) -> dict[int, exp.Expression]:
    """id(placeholder node) -> its bound value as a literal, for positional ``?`` parameters.

    A ``?`` binds by its position in the statement's text; the rewritten statement DuckDB
    runs is the tree's SQL, so positions are read from that text (tree order is not text
    order: a CTE's ``?`` comes first in the text, last in the tree).
    """
    holders = [h for h in expression.find_all(exp.Placeholder) if not h.this]
    if not holders or not isinstance(params, (list, tuple)) or len(params) != len(holders):
        return {}
    for index, holder in enumerate(holders):
        holder.set("this", f"mallard_parameter_{index}_")
    try:
        text = expression.sql("duckdb")
    finally:
        for holder in holders:
            holder.set("this", None)
    order = sorted(range(len(holders)), key=lambda i: text.index(f"mallard_parameter_{i}_"))
    values = {}
    for position, index in enumerate(order):
        try:
            values[id(holders[index])] = exp.convert(params[position])
        except ValueError:
            continue  # a value SQL literals cannot express stays a parameter (not pushed)
    return values


def _push(request: ScanRequest, values: dict[int, exp.Expression]) -> None:
    scope: exp.Select = request.scope
    alias = request.table.alias_or_name.lower()
    single = len(scope_sources(scope)) == 1
    where = scope.args.get("where")
    conjuncts = [_bind(c, values) for c in _conjuncts(where.this)] if where is not None else []
    pushed = [_unqualified(c) for c in conjuncts if _pushable(c, alias, single)]
    request.predicate = exp.and_(*pushed) if pushed else None
    if len(pushed) == len(conjuncts) and single:
        limit = _frame_limit(scope)
        if limit is not None:
            request.limit, request.order = limit


def _conjuncts(condition: exp.Expression) -> Iterator[exp.Expression]:
    if isinstance(condition, exp.And):
        yield from _conjuncts(condition.left)
        yield from _conjuncts(condition.right)
    elif isinstance(condition, exp.Paren):
        yield from _conjuncts(condition.this)
    else:
        yield condition


def _bind(condition: exp.Expression, values: dict[int, exp.Expression]) -> exp.Expression:
    """A copy of ``condition`` with its bound ``?`` replaced by their values (if all are bound)."""
    holders = list(condition.find_all(exp.Placeholder))
    if not holders or not all(id(h) in values for h in holders):
        return condition
    copy = condition.copy()
    for holder, original in zip(copy.find_all(exp.Placeholder), holders):
        holder.replace(values[id(original)].copy())
    return copy


def _pushable(condition: exp.Expression, alias: str, single: bool) -> bool:
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


def _unqualified(condition: exp.Expression) -> exp.Expression:
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


def _whole_number(node: exp.Expression | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    return None
