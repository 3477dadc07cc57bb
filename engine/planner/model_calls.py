"""Model calls in a query: what the planner's inference rules look for.

A *model call* is ``<model>(frame)``, ``features(<model>, frame)`` or ``logits(<model>,
frame)``.  Each becomes a reference to an output column (``prediction``, ``features``,
``logits``) of a *scan relation*: the results of one inference scan of a frames table,
joined back to the query by ``frame_id``.

>>> import sqlglot
>>> from engine.inference.functions import PlannedFunction
>>> functions = {"m": PlannedFunction("m", "model"), "features": PlannedFunction("features", "features")}
>>> call = model_call(sqlglot.parse_one("features(m, t.frame)"), functions)
>>> call.model, call.output, call.frame.sql()
('m', 'features', 't.frame')
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlglot import exp

from engine.errors import ProgrammingError
from engine.inference.functions import FEATURES, LOGITS, MODEL, TABLE_FUNCTIONS, PlannedFunction

#: The output column of a scan relation that each kind of call reads.
OUTPUT_OF_KIND = {MODEL: "prediction", FEATURES: "features", LOGITS: "logits"}


@dataclass(frozen=True)
class ModelCall:
    """One call of a model function in a query."""

    node: exp.Expr
    model: str
    output: str             # 'prediction' | 'features' | 'logits'
    frame: exp.Column


def function_name(node: exp.Expr) -> str | None:
    """The lower-case name of a function call node that sqlglot does not know (Anonymous)."""
    if isinstance(node, exp.Anonymous) and isinstance(node.this, str):
        return node.this.lower()
    return None


def model_call(node: exp.Expr, functions: Mapping[str, PlannedFunction]) -> ModelCall | None:
    """The call of an image model over frames ``node`` is, None if it is not one (a numeric
    model's call is :func:`numeric_call`'s); ProgrammingError if it is malformed."""
    name = function_name(node)
    info = functions.get(name) if name else None
    if name is None or info is None or info.kind in TABLE_FUNCTIONS or numeric_model(node, functions) is not None:
        return None
    args = list(node.expressions)
    if info.kind == MODEL:
        if len(args) != 1:
            raise ProgrammingError(f"model function {name}(frame) takes one argument, the frame column; found {len(args)}")
        return ModelCall(node, name, OUTPUT_OF_KIND[MODEL], frame_argument(name, args[0]))
    if len(args) != 2:
        raise ProgrammingError(f"{name}(<model>, frame) takes two arguments, a model and the frame column; found {len(args)}")
    model = model_argument(name, args[0], functions)
    return ModelCall(node, model, OUTPUT_OF_KIND[info.kind], frame_argument(name, args[1]))


def numeric_model(node: exp.Expr, functions: Mapping[str, PlannedFunction]) -> PlannedFunction | None:
    """The numeric model ``node`` calls (``m(a, b)``, ``logits(m, a, b)``, ``features(m, a, b)``), else None."""
    name = function_name(node)
    info = functions.get(name) if name else None
    if info is None:
        return None
    if info.kind == MODEL:
        return info if info.is_numeric else None
    if info.kind in (FEATURES, LOGITS) and node.expressions:
        first = node.expressions[0]
        named = first.name.lower() if isinstance(first, exp.Column) and not first.table else (
            first.this.lower() if isinstance(first, exp.Literal) and first.is_string else None)
        model = functions.get(named) if named else None
        return model if model is not None and model.is_numeric else None
    return None


def model_argument(function: str, arg: exp.Expr, functions: Mapping[str, PlannedFunction]) -> str:
    """The model named by a function's first argument (a bare name or a string)."""
    if isinstance(arg, exp.Column) and not arg.table:
        name = arg.name.lower()
    elif isinstance(arg, exp.Literal) and arg.is_string:
        name = arg.this.lower()
    else:
        raise ProgrammingError(f"{function}(<model>, frame) expects a model name first, found {arg.sql('duckdb')}")
    info = functions.get(name)
    if info is None or info.kind != MODEL:
        known = ", ".join(sorted(n for n, f in functions.items() if f.kind == MODEL)) or "none (CREATE MODEL registers one)"
        raise ProgrammingError(f"{function}({name}, ...): unknown model {name!r}; models in this database: {known}")
    return name


def frame_argument(function: str, arg: exp.Expr) -> exp.Column:
    """The frame column a model function is applied to; ProgrammingError for anything else."""
    if isinstance(arg, exp.Column) and isinstance(arg.this, exp.Identifier):
        return arg
    raise ProgrammingError(
        f"{function}(...) expects the frame column of a frames table (frame BLOB of RGB pixels with "
        f"frame_id, height and width), found {arg.sql('duckdb')}"
    )


def name_projections(tree: exp.Expr, holds_call: Callable[[exp.Expr], bool]) -> None:
    """Alias each unaliased projection of ``tree`` for which ``holds_call`` is true as DuckDB
    would name it (a rule rewrites the call inside, which would change the name)."""
    for select in list(tree.find_all(exp.Select)):
        for projection in select.expressions:
            if not isinstance(projection, exp.Alias) and holds_call(projection):
                projection.replace(exp.alias_(projection.copy(), projection_name(projection)))


def projection_name(projection: exp.Expr) -> str:
    """``label`` for ``m(frame).label`` or ``m(frame)['label']``; else the expression's text."""
    if isinstance(projection, exp.Dot) and isinstance(projection.expression, exp.Identifier):
        return projection.expression.name
    if (isinstance(projection, exp.Bracket) and len(projection.expressions) == 1
            and isinstance(projection.expressions[0], exp.Literal) and projection.expressions[0].is_string):
        return str(projection.expressions[0].this)
    return projection.sql("duckdb", normalize_functions="lower")


def relation_reference(relation: str, output: str, alias: str) -> exp.Subquery:
    """``(SELECT <relation>.<output> FROM <relation> WHERE <relation>.frame_id = <alias>.frame_id)``."""
    query = (
        exp.select(exp.column(output, table=relation))
        .from_(exp.to_table(relation))
        .where(exp.column("frame_id", table=relation).eq(exp.column("frame_id", table=alias)))
    )
    return exp.Subquery(this=query)


def scope_sources(select: exp.Select) -> dict[str, exp.Expr]:
    """The sources of a SELECT's FROM and JOINs by the name the query uses for them."""
    found: dict[str, exp.Expr] = {}
    sources = []
    if select.args.get("from_") is not None:
        sources.append(select.args["from_"].this)
    sources += [join.this for join in select.args.get("joins") or []]
    for source in sources:
        name = source.alias_or_name
        if name:
            found[name.lower()] = source
    return found


def lookup_scopes(tree: exp.Expr, relation: str) -> list[exp.Select]:
    """The SELECTs whose rows the lookups into ``relation`` (see :func:`relation_reference`)
    are correlated with: found from the tree's shape, so a rule can find a request's scope
    in a copy of the tree."""
    scopes: list[exp.Select] = []
    for subquery in tree.find_all(exp.Subquery):
        inner = subquery.this
        if not isinstance(inner, exp.Select) or _from_name(inner) != relation.lower():
            continue
        alias = _correlated_alias(inner, relation)
        select = subquery.parent.find_ancestor(exp.Select) if subquery.parent is not None else None
        while select is not None and alias is not None and alias not in scope_sources(select):
            select = select.parent.find_ancestor(exp.Select) if select.parent is not None else None
        if select is not None and not any(select is s for s in scopes):
            scopes.append(select)
    return scopes


def _from_name(select: exp.Select) -> str | None:
    source = select.args.get("from_")
    table = source.this if source is not None else None
    return table.name.lower() if isinstance(table, exp.Table) else None


def _correlated_alias(lookup: exp.Select, relation: str) -> str | None:
    where = lookup.args.get("where")
    condition = where.this if where is not None else None
    if not isinstance(condition, exp.EQ):
        return None
    for side in (condition.left, condition.right):
        if isinstance(side, exp.Column) and side.table and side.table.lower() != relation.lower():
            return side.table.lower()
    return None
