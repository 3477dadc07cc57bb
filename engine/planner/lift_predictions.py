"""Rule: lift the ``predict(<model>, (<query>), ...)`` and ``evaluate(<model>, (<query>), ...)``
table functions out of FROM.

Each becomes a relation computed before the statement runs.  ``predict``: the rows of the
query with the model's prediction of each (``predicted_label``, ``predicted_class_id``,
``predicted_score``), computed in Arrow batches (:mod:`engine.serving.offline`).
``evaluate``: one row per true class with its support, precision, recall, the row of the
confusion matrix, and the model's accuracy and loss over all rows (as ``EVALUATE MODEL``
gives them, :mod:`engine.training.evaluation`).  The second argument is a query in
parentheses, or a table name (read whole).  The query is kept as
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
>>> catalog = CatalogSnapshot.of({"m": PlannedFunction("m", "model"), "evaluate": PlannedFunction("evaluate", "evaluate")})
>>> plan = lift_predictions(Plan(sqlglot.parse_one("SELECT accuracy FROM evaluate(m, points)", read=Mallard)), catalog)
>>> plan.tree.sql("duckdb"), plan.predictions[0].describe()
('SELECT accuracy FROM __mallard_evaluate_1 AS evaluate', '__mallard_evaluate_1: evaluate(m, (SELECT * FROM points))')
"""
from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from engine.dialect.training import EvaluateModel
from engine.errors import ProgrammingError
from engine.inference.functions import EVALUATE, PREDICT
from engine.options import Option, named_arguments
from engine.planner.annotations import CatalogSnapshot, Plan, PredictionRequest
from engine.planner.model_calls import function_name, model_argument
from engine.serving.offline import PREDICT_OPTIONS

USAGE = {
    PREDICT: "SELECT * FROM predict(<model>, (<query>)[, batch_size => N][, version => N][, input => '<column>'])",
    EVALUATE: "SELECT * FROM evaluate(<model>, (<query>)[, version => N][, label => '<column>'])",
}
#: The named arguments of each table function, checked like statement options.
OPTIONS: dict[str, Mapping[str, Option]] = {PREDICT: PREDICT_OPTIONS, EVALUATE: EvaluateModel.OPTIONS}


def lift_predictions(plan: Plan, catalog: CatalogSnapshot) -> Plan:
    """Replace each outermost ``predict(...)`` or ``evaluate(...)`` in FROM by a relation computed first."""
    if PREDICT not in catalog.functions and EVALUATE not in catalog.functions:
        return plan
    tree = plan.tree.copy()
    calls = [n for n in tree.find_all(exp.Anonymous, exp.Predict)
             if _table_function(n, catalog) and not _inside_table_function(n, catalog)]
    if not calls:
        return plan
    requests = list(plan.predictions)
    for call in calls:
        function = _table_function(call, catalog)
        assert function is not None
        table = call.parent
        if not isinstance(table, exp.Table) or table.this is not call:
            raise ProgrammingError(f"{function}(...) is a table function: write {USAGE[function]}")
        relation = f"__mallard_{function}_{len(requests) + 1}"
        requests.append(_request(function, _arguments(call), relation, catalog))
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(function)))
        table.set("this", exp.to_identifier(relation))
    return plan.but(tree=tree, predictions=tuple(requests))


def _table_function(node: exp.Expr, catalog: CatalogSnapshot) -> str | None:
    """'predict' for ``predict(...)`` as Mallard's dialect reads it (a call sqlglot does not
    know) or as DuckDB's dialect reads it (sqlglot's BigQuery-style ``Predict``); 'evaluate'
    for ``evaluate(...)``; else None."""
    if isinstance(node, exp.Predict):
        return PREDICT if PREDICT in catalog.functions else None
    name = function_name(node)
    return name if name in (PREDICT, EVALUATE) and name in catalog.functions else None


def _inside_table_function(node: exp.Expr, catalog: CatalogSnapshot) -> bool:
    parent = node.parent
    while parent is not None:
        if _table_function(parent, catalog):
            return True
        parent = parent.parent
    return False


def _arguments(call: exp.Expr) -> list[exp.Expr]:
    if isinstance(call, exp.Predict):
        found = [call.this, call.expression, call.args.get("params_struct")]
        return [a for a in found if isinstance(a, exp.Expr)]
    return list(call.expressions)


def _request(function: str, args: list[exp.Expr], relation: str, catalog: CatalogSnapshot) -> PredictionRequest:
    positional = [a for a in args if not isinstance(a, (exp.Kwarg, exp.PropertyEQ))]
    named = [a for a in args if isinstance(a, (exp.Kwarg, exp.PropertyEQ))]
    if len(positional) != 2:
        raise ProgrammingError(f"{function} takes a model and a query, then named options ({USAGE[function]}); found "
                               f"{len(positional)} positional arguments")
    model = model_argument(function, positional[0], catalog.functions)
    options = named_arguments(function, named, OPTIONS[function])
    return PredictionRequest(model=model, query=_query(function, positional[1]), options=options,
                             relation=relation, function=function)


def _query(function: str, node: exp.Expr) -> exp.Query:
    """The rows to predict: ``(<query>)``, or a table name read whole."""
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Query):
        return node.this.copy()
    if isinstance(node, exp.Column) and isinstance(node.this, exp.Identifier):
        parts = [p.copy() for p in node.parts]
        table = exp.Table(this=parts[-1], db=parts[-2] if len(parts) > 1 else None,
                          catalog=parts[-3] if len(parts) > 2 else None)
        return exp.select("*").from_(table)
    raise ProgrammingError(f"{function} expects a query in parentheses or a table name second ({USAGE[function]}); "
                           f"found {node.sql('duckdb')}")
