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
    relation = f"__mallard_cascade_{len(plan.cascades) + 1}"
    blazeit = plan_estimate(tree, calls, relation, plan.accuracy)
    if blazeit is not None:
        rewritten, request = blazeit
        return plan.but(tree=rewritten, cascades=(*plan.cascades, request))
    found = _cascade_condition(tree, calls)
    if isinstance(found, str):
        note = f"inference_accuracy = {plan.accuracy:g} not applied: {found}; exact inference"
        return plan.but(notes=(*plan.notes, note))
    condition, question, table = found
    call = calls[0]
    alias = table.alias_or_name
    membership = exp.column("frame_id", table=alias).isin(query=exp.select("frame_id").from_(relation))
    condition.replace(membership)
    assert isinstance(tree, exp.Select)
    request = CascadeRequest(model=call.model, table=table.copy(), frame_column=call.frame.name.lower(),
                             question=question, accuracy=plan.accuracy, relation=relation,
                             restriction=_restriction(tree, alias, membership))
    return plan.but(tree=tree, cascades=(*plan.cascades, request))


def _cascade_condition(tree: exp.Expr,
                       calls: list[ModelCall]) -> tuple[exp.Binary, FramePredicate, exp.Table] | str:
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


def plan_estimate(tree: exp.Expr, calls: list[ModelCall], relation: str,
                  accuracy: float) -> tuple[exp.Expr, CascadeRequest] | None:
    """An aggregate (BlazeIt) or top-k query under a contract as a cascade request and the
    tree that reads its relation; None when ``tree`` is none of these shapes:

    * ``SELECT count(*) FROM t WHERE m(frame).<field> <op> <constant> [AND <restriction>]``
    * ``SELECT avg(m(frame).score) FROM t [WHERE <restriction>]``
    * ``SELECT <columns, m(frame).score> FROM t [WHERE m(frame).<question> AND <restriction>]
      ORDER BY m(frame).score DESC LIMIT k``

    where every other WHERE conjunct reads only the frames table's columns.
    """
    sources = scope_sources(tree) if isinstance(tree, exp.Select) else {}
    table = next(iter(sources.values()), None) if len(sources) == 1 else None
    if not isinstance(tree, exp.Select) or not isinstance(table, exp.Table) or not calls \
            or any(tree.args.get(k) for k in ("with_", "group", "having", "distinct", "offset", "joins")) \
            or len({(c.model, c.frame.name.lower(), c.output) for c in calls}) != 1 or calls[0].output != "prediction":
        return None
    alias = table.alias_or_name
    if any(c.frame.table and c.frame.table.lower() != alias.lower() for c in calls):
        return None
    scores = [c for c in calls if _field_name(c.node.parent) == "score" and not _in_where(tree, c.node)]
    conditions = [c for c in calls if _in_where(tree, c.node)]
    if len(conditions) > 1 or len(scores) + len(conditions) != len(calls):
        return None
    question: FramePredicate | None = None
    condition: exp.Expr | None = None
    if conditions:
        found = _cascade_condition(tree, conditions)
        if isinstance(found, str):
            return None
        condition, question, _ = found
    others = _other_conjuncts(tree, condition)
    if any(not _reads_frames_only(t, alias) for t in others):
        return None
    shape = _estimate_shape(tree, scores, question)
    if shape is None:
        return None
    kind, limit = shape
    restriction = _plain(others)
    request = CascadeRequest(model=calls[0].model, table=table.copy(), frame_column=calls[0].frame.name.lower(),
                             question=question, accuracy=accuracy, relation=relation, restriction=restriction,
                             kind=kind, limit=limit)
    if kind in ("count", "avg"):
        projection = tree.expressions[0]
        name = projection.alias if isinstance(projection, exp.Alias) else (
            "count_star()" if kind == "count" else projection.sql("duckdb"))
        return exp.select(exp.alias_(exp.column("estimate"), name, quoted=True)).from_(relation), request
    return _top_k_tree(tree, alias, relation, condition, scores), request


def _estimate_shape(tree: exp.Select, scores: list[ModelCall],
                    question: FramePredicate | None) -> tuple[str, int | None] | None:
    """('count' | 'avg' | 'top_k', k) for the shapes :func:`plan_estimate` answers."""
    projections = tree.expressions
    first = projections[0].unalias() if len(projections) == 1 else None
    order = tree.args.get("order")
    if order is None and tree.args.get("limit") is None and first is not None:
        if isinstance(first, exp.Count) and isinstance(first.this, exp.Star) and question is not None and not scores:
            return "count", None
        if isinstance(first, exp.Avg) and question is None and len(scores) == 1 \
                and first.this is scores[0].node.parent:
            return "avg", None
        return None
    limit = tree.args.get("limit")
    count = limit.expression if isinstance(limit, exp.Limit) else None
    keys = order.expressions if order is not None else []
    if len(keys) != 1 or not keys[0].args.get("desc") or not isinstance(count, exp.Literal) or count.is_string \
            or not count.this.isdigit() or int(count.this) < 1 \
            or not any(keys[0].this is c.node.parent for c in scores) or tree.find(exp.AggFunc) is not None:
        return None
    return "top_k", int(count.this)


def _top_k_tree(tree: exp.Select, alias: str, relation: str, condition: exp.Expr | None,
                scores: list[ModelCall]) -> exp.Expr:
    """The top-k query reading the cascade's relation: its frames, and their score by frame_id."""
    membership = exp.column("frame_id", table=alias).isin(query=exp.select("frame_id").from_(relation))
    if condition is not None:
        condition.replace(membership)
    else:
        tree.where(membership, copy=False)
    for call in scores:
        field = call.node.parent
        assert field is not None
        lookup = exp.select(exp.column("score", table="__c")).from_(exp.to_table(relation).as_("__c")).where(
            exp.column("frame_id", table="__c").eq(exp.column("frame_id", table=alias)))
        field.replace(exp.Subquery(this=lookup))
    return tree


def _in_where(tree: exp.Select, node: exp.Expr) -> bool:
    where = tree.args.get("where")
    parent = node.parent
    while parent is not None and parent is not where:
        parent = parent.parent
    return where is not None and parent is where


def _other_conjuncts(tree: exp.Select, condition: exp.Expr | None) -> list[exp.Expr]:
    """The WHERE conjuncts other than ``condition``."""
    where = tree.args.get("where")
    if where is None:
        return []
    terms = where.this.flatten() if isinstance(where.this, exp.And) else [where.this]
    return [t for t in terms if t is not condition and not (isinstance(t, exp.Paren) and t.this is condition)]


def _reads_frames_only(term: exp.Expr, alias: str) -> bool:
    columns = list(term.find_all(exp.Column))
    return term.find(exp.Subquery, exp.Anonymous, exp.AggFunc) is None \
        and all(not c.table or c.table.lower() == alias.lower() for c in columns)


def _plain(terms: list[exp.Expr]) -> exp.Expr | None:
    """``terms`` AND-ed, with their columns unqualified (as a restriction reads them)."""
    kept: list[exp.Expr] = []
    for term in terms:
        plain = term.copy()
        for column in plain.find_all(exp.Column):
            column.set("table", None)
        kept.append(plain.unnest() if isinstance(plain, exp.Paren) else plain)
    return exp.and_(*kept) if kept else None


__all__ = ["FIELDS", "plan_cascades", "plan_estimate"]
