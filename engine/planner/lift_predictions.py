"""Rule: lift ``predict(<model>, (<query>), ...)`` table functions out of FROM.

Each becomes a relation computed before the statement runs: the rows of the query with the
model's prediction of each (``predicted_label``, ``predicted_class_id``,
``predicted_score``), computed in Arrow batches (:mod:`engine.serving.offline`).  The second
argument is a query in parentheses, or a table name (read whole).  The query is kept as
written and planned when the step runs, so it may itself call models or ``predict``: only
the outermost calls are lifted here.  Named arguments are checked as statement options are
(:mod:`engine.options`).

>>> import sqlglot
>>> from engine.dialect import Mallard
>>> from engine.planner.annotations import CatalogSnapshot, Plan
>>> from engine.inference.functions import PlannedFunction
>>> catalog = CatalogSnapshot.of({"m": PlannedFunction("m", "model"), "predict": PlannedFunction("predict", "predict")})
>>> sql = "SELECT * FROM predict(m, (SELECT x, y FROM points WHERE x > 0), batch_size => 64)"
>>> plan = lift_predictions(Plan(sqlglot.parse_one(sql, read=Mallard)), catalog)
>>> plan.tree.sql("duckdb")
'SELECT * FROM __mallard_predict_1 AS predict'
>>> plan.predictions[0].describe()
'__mallard_predict_1: predict(m, (SELECT x, y FROM points WHERE x > 0), batch_size => 64)'
"""
from __future__ import annotations

from typing import Any

from sqlglot import exp

from engine.errors import ProgrammingError
from engine.inference.functions import PREDICT
from engine.options import check_value
from engine.planner.annotations import CatalogSnapshot, Plan, PredictionRequest
from engine.planner.model_calls import function_name, model_argument
from engine.serving.offline import PREDICT_OPTIONS

USAGE = "SELECT * FROM predict(<model>, (<query>)[, batch_size => N][, version => N][, input => '<column>'])"


def lift_predictions(plan: Plan, catalog: CatalogSnapshot) -> Plan:
    """Replace each outermost ``predict(...)`` in FROM by a relation computed first."""
    if PREDICT not in catalog.functions:
        return plan
    tree = plan.tree.copy()
    calls = [n for n in tree.find_all(exp.Anonymous, exp.Predict) if _is_predict(n) and not _inside_predict(n)]
    if not calls:
        return plan
    requests = list(plan.predictions)
    for call in calls:
        table = call.parent
        if not isinstance(table, exp.Table) or table.this is not call:
            raise ProgrammingError(f"predict(...) is a table function: write {USAGE}")
        relation = f"__mallard_predict_{len(requests) + 1}"
        requests.append(_request(_arguments(call), relation, catalog))
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(PREDICT)))
        table.set("this", exp.to_identifier(relation))
    return plan.but(tree=tree, predictions=tuple(requests))


def _is_predict(node: exp.Expr) -> bool:
    """``predict(...)`` as Mallard's dialect reads it (a call sqlglot does not know), or as
    DuckDB's dialect reads it (sqlglot's BigQuery-style ``Predict``)."""
    return isinstance(node, exp.Predict) or function_name(node) == PREDICT


def _inside_predict(node: exp.Expr) -> bool:
    parent = node.parent
    while parent is not None:
        if _is_predict(parent):
            return True
        parent = parent.parent
    return False


def _arguments(call: exp.Expr) -> list[exp.Expr]:
    if isinstance(call, exp.Predict):
        found = [call.this, call.expression, call.args.get("params_struct")]
        return [a for a in found if isinstance(a, exp.Expr)]
    return list(call.expressions)


def _request(args: list[exp.Expr], relation: str, catalog: CatalogSnapshot) -> PredictionRequest:
    positional = [a for a in args if not isinstance(a, (exp.Kwarg, exp.PropertyEQ))]
    named = [a for a in args if isinstance(a, (exp.Kwarg, exp.PropertyEQ))]
    if len(positional) != 2:
        raise ProgrammingError(f"predict takes a model and a query, then named options ({USAGE}); found "
                               f"{len(positional)} positional arguments")
    model = model_argument(PREDICT, positional[0], catalog.functions)
    options: list[tuple[str, Any]] = []
    for arg in named:
        name = arg.this.name.lower()
        if name not in PREDICT_OPTIONS:
            raise ProgrammingError(f"unknown predict option {name!r}; expected one of {', '.join(sorted(PREDICT_OPTIONS))}")
        options.append((name, check_value(f"predict option {name}", PREDICT_OPTIONS[name].validator, arg.expression)))
    return PredictionRequest(model=model, query=_query(positional[1]), options=tuple(options), relation=relation)


def _query(node: exp.Expr) -> exp.Query:
    """The rows to predict: ``(<query>)``, or a table name read whole."""
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Query):
        return node.this.copy()
    if isinstance(node, exp.Column) and isinstance(node.this, exp.Identifier):
        parts = [p.copy() for p in node.parts]
        table = exp.Table(this=parts[-1], db=parts[-2] if len(parts) > 1 else None,
                          catalog=parts[-3] if len(parts) > 2 else None)
        return exp.select("*").from_(table)
    raise ProgrammingError(f"predict expects a query in parentheses or a table name second ({USAGE}); "
                           f"found {node.sql('duckdb')}")
