"""Rule: a selection under an accuracy contract becomes a cascade (NoScope inside the planner).

Under ``SET inference_accuracy = a`` (the plan's ``accuracy``), a query whose one model call
is a conjunct of its WHERE clause comparing a field of the prediction with a constant has
that conjunct replaced by membership in a cascade relation (the frame_ids where the answer
is yes), and gets a :class:`~engine.planner.annotations.CascadeRequest`.  The other
conjuncts stay in the query and, where they read only the frames table, also restrict the
frames the cascade considers.  Any other shape computes exactly, and the plan notes why.

>>> import sqlglot
>>> from engine.planner.annotations import CatalogSnapshot, Plan
>>> from engine.inference.functions import PlannedFunction
>>> catalog = CatalogSnapshot.of({"m": PlannedFunction("m", "model")})
>>> tree = sqlglot.parse_one("SELECT frame_id FROM v WHERE m(frame).label = 'bus' AND frame_id < 9", read="duckdb")
>>> plan = plan_cascades(Plan(tree, accuracy=0.95), catalog)
>>> plan.tree.sql("duckdb")
'SELECT frame_id FROM v WHERE v.frame_id IN (SELECT frame_id FROM __mallard_cascade_1) AND frame_id < 9'
>>> plan.cascades[0].describe()
"__mallard_cascade_1: m ON v (frame) WHERE label = 'bus' ACCURACY 0.95 RESTRICT frame_id < 9"
>>> plan_cascades(Plan(sqlglot.parse_one("SELECT m(frame).label FROM v", read="duckdb"), accuracy=0.9), catalog).notes
('inference_accuracy = 0.9 not applied: a cascade answers a WHERE condition <model>(frame).<label|class_id|score> <op> <constant>, and this query calls m elsewhere; exact inference',)
"""
from __future__ import annotations

from sqlglot import exp

from engine.planner.annotations import (
    PREDICATE_OPERATORS,
    CascadeRequest,
    CatalogSnapshot,
    FramePredicate,
    Plan,
)
from engine.planner.model_calls import ModelCall, model_call, scope_sources

#: Prediction fields a cascade's question may compare, and whether their constant is text.
FIELDS = {"label": True, "class_id": False, "score": False}
_FLIPPED = {"=": "=", "<>": "<>", ">": "<", ">=": "<=", "<": ">", "<=": ">="}
_SHAPE = "a cascade answers a WHERE condition <model>(frame).<label|class_id|score> <op> <constant>"


def plan_cascades(plan: Plan, catalog: CatalogSnapshot) -> Plan:
    """Replace the one model condition of a selection under a contract by a cascade relation."""
    if plan.accuracy is None or plan.accuracy >= 1:
        return plan
    calls = [c for c in (model_call(n, catalog.functions) for n in plan.tree.find_all(exp.Anonymous)) if c is not None]
    if not calls:
        return plan
    tree = plan.tree.copy()
    calls = [c for c in (model_call(n, catalog.functions) for n in tree.find_all(exp.Anonymous)) if c is not None]
    found = _cascade_condition(tree, calls)
    if isinstance(found, str):
        note = f"inference_accuracy = {plan.accuracy:g} not applied: {found}; exact inference"
        return plan.but(notes=(*plan.notes, note))
    condition, question, table = found
    call = calls[0]
    relation = f"__mallard_cascade_{len(plan.cascades) + 1}"
    alias = table.alias_or_name
    membership = exp.column("frame_id", table=alias).isin(query=exp.select("frame_id").from_(relation))
    condition.replace(membership)
    assert isinstance(tree, exp.Select)
    request = CascadeRequest(model=call.model, table=table.copy(), frame_column=call.frame.name.lower(),
                             question=question, accuracy=plan.accuracy, relation=relation,
                             restriction=_restriction(tree, alias, membership))
    return plan.but(tree=tree, cascades=(*plan.cascades, request))


def _cascade_condition(tree: exp.Expr,
                       calls: list[ModelCall]) -> tuple[exp.Expr, FramePredicate, exp.Table] | str:
    """The WHERE conjunct a cascade answers, its question and the frames table; or why none."""
    names = ", ".join(sorted({c.model for c in calls}))
    if not isinstance(tree, exp.Select):
        return f"{_SHAPE} of a SELECT, and this statement is a {tree.key.upper()}"
    if len(calls) != 1 or calls[0].output != "prediction":
        return f"{_SHAPE}, and this query has {len(calls)} model calls ({names})"
    call = calls[0]
    sources = scope_sources(tree)
    table = next(iter(sources.values()), None) if len(sources) == 1 else None
    if not isinstance(table, exp.Table) or tree.args.get("with_") is not None:
        return f"{_SHAPE} over one frames table named in FROM"
    if call.frame.table and call.frame.table.lower() != table.alias_or_name.lower():
        return f"{_SHAPE} over the frames table in FROM, and {call.frame.sql('duckdb')} names another table"
    field_node = call.node.parent
    field = _field_name(field_node)
    comparison = field_node.parent if field_node is not None else None
    if field is None or comparison is None or type(comparison).__name__ not in PREDICATE_OPERATORS \
            or not _is_conjunct(tree, comparison):
        return f"{_SHAPE}, and this query calls {names} elsewhere"
    assert isinstance(comparison, exp.Binary)
    operator = PREDICATE_OPERATORS[type(comparison).__name__]
    constant = comparison.right if comparison.left is field_node else comparison.left
    if comparison.left is not field_node:
        operator = _FLIPPED[operator]
    value = _constant(constant)
    if value is None or isinstance(value, str) != FIELDS[field]:
        expected = "a string" if FIELDS[field] else "a number"
        return f"{_SHAPE}; {field} is compared with {constant.sql('duckdb')}, expected {expected} constant"
    if field == "label" and operator not in ("=", "<>"):
        return f"{_SHAPE}; a label is compared with = or <>, found {operator}"
    return comparison, FramePredicate(field, operator, value), table


def _field_name(node: exp.Expr | None) -> str | None:
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Identifier):
        name = node.expression.name.lower()
    elif (isinstance(node, exp.Bracket) and len(node.expressions) == 1
          and isinstance(node.expressions[0], exp.Literal) and node.expressions[0].is_string):
        name = str(node.expressions[0].this).lower()
    else:
        return None
    return name if name in FIELDS else None


def _is_conjunct(tree: exp.Select, node: exp.Expr) -> bool:
    """Whether ``node`` is the WHERE clause of ``tree`` or one of its AND-ed terms."""
    where = tree.args.get("where")
    parent = node.parent
    while isinstance(parent, (exp.And, exp.Paren)):
        parent = parent.parent
    return where is not None and parent is where


def _constant(node: exp.Expr) -> str | int | float | None:
    negative = isinstance(node, exp.Neg)
    literal = node.this if negative else node
    if not isinstance(literal, exp.Literal):
        return None
    if literal.is_string:
        return None if negative else str(literal.this)
    number = float(literal.this)
    value: int | float = int(number) if number.is_integer() and "." not in literal.this else number
    return -value if negative else value


def _restriction(tree: exp.Select, alias: str, membership: exp.Expr) -> exp.Expr | None:
    """The other WHERE conjuncts that read only the frames table's columns (unqualified)."""
    where = tree.args.get("where")
    if where is None:
        return None
    kept: list[exp.Expr] = []
    for term in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        if term is membership or term.find(exp.Subquery, exp.Anonymous, exp.AggFunc) is not None:
            continue
        columns = list(term.find_all(exp.Column))
        if columns and all(not c.table or c.table.lower() == alias.lower() for c in columns):
            plain = term.copy()
            for column in plain.find_all(exp.Column):
                column.set("table", None)
            kept.append(plain.unnest() if isinstance(plain, exp.Paren) else plain)
    return exp.and_(*kept) if kept else None


__all__ = ["FIELDS", "plan_cascades"]
