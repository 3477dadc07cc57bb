"""Statements that call functions Mallard plans (models, ``occlusion_map``): plan them, run
the steps the plan asks for, then let DuckDB run the rewritten statement.

The steps come from :func:`engine.planner.steps.plan_steps`, the same reading of the plan
``EXPLAIN`` shows.  Every scan is validated before any runs, so bad input in one of them
fails the statement before anything is computed or written.  Step runners are found by the
step's type in :data:`STEP_RUNNERS`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
from sqlglot import exp

from engine.errors import ProgrammingError
from engine.planner import CatalogSnapshot, optimize
from engine.planner.steps import (
    CascadeStep,
    FunctionStep,
    OcclusionStep,
    PredictStep,
    QueryStep,
    ScanStep,
    Step,
    plan_steps,
)
from engine.router import statement_kind
from engine.statement_result import StatementResult

if TYPE_CHECKING:
    from engine.session import Session


def _run_occlusion(session: Session, step: Step, prepared: dict[str, Any]) -> None:
    from engine.inference.occlusion import compute_occlusion_map

    assert isinstance(step, OcclusionStep)
    session.register_for_statement(step.request.relation, compute_occlusion_map(session, step.request))


def _run_function(session: Session, step: Step, prepared: dict[str, Any]) -> None:
    from engine.serving.row_functions import row_function

    assert isinstance(step, FunctionStep)
    function, parameters, returns = row_function(session, step.request)
    session.register_function_for_statement(step.request.relation, function, parameters, returns)


def _run_prediction(session: Session, step: Step, prepared: dict[str, Any]) -> None:
    assert isinstance(step, PredictStep)
    request = step.request
    query = request.query  # planned like any statement: it may call models itself
    rows = run_planned_statement(session, query, query.sql("duckdb"), None).rows
    if not isinstance(rows, duckdb.DuckDBPyRelation):
        raise ProgrammingError(f"{request.function} expects a query that returns rows, found {query.sql('duckdb')}")
    if request.function == "evaluate":
        from engine.executors.training import evaluation_table

        options = dict(request.options)
        table = evaluation_table(session, request.model, query, rows, options.get("version"), options.get("label"))
    else:
        from engine.serving.offline import predict_relation

        table = predict_relation(session, request, rows)
    session.register_for_statement(request.relation, table)


def _run_scan(session: Session, step: Step, prepared: dict[str, Any]) -> None:
    from engine.inference.scan import scan_relation

    assert isinstance(step, ScanStep)
    session.register_for_statement(step.request.relation, scan_relation(session, prepared[step.request.relation]))


def _run_cascade(session: Session, step: Step, prepared: dict[str, Any]) -> None:
    from engine.cascades.run import cascade_relation

    assert isinstance(step, CascadeStep)
    session.register_for_statement(step.request.relation, cascade_relation(session, step.request))


#: Step type -> what runs it (the query step is the statement's result, run last).
STEP_RUNNERS: Mapping[type, Callable[[Session, Step, dict[str, Any]], None]] = {
    FunctionStep: _run_function,
    OcclusionStep: _run_occlusion,
    PredictStep: _run_prediction,
    CascadeStep: _run_cascade,
    ScanStep: _run_scan,
}


def run_planned_statement(session: Session, tree: exp.Expr, text: str,
                          parameters: Sequence[Any] | Any) -> StatementResult:
    """Execute ``tree`` (parsed from ``text``) after planning it with ``parameters`` bound."""
    from engine.dialect.parameters import bind_parameters
    from engine.inference.scan import PreparedScan

    catalog = CatalogSnapshot.of(session.functions)
    accuracy = session.settings["inference_accuracy"]
    if not plan_steps(optimize(tree, catalog, accuracy))[-1].rewritten:  # type: ignore[union-attr]
        return _final(session, text, parameters)  # nothing to plan: DuckDB runs the user's text and parameters
    steps = plan_steps(optimize(bind_parameters(tree, parameters), catalog, accuracy))  # rules see the bound values
    query = steps[-1]
    assert isinstance(query, QueryStep)
    prepared = {s.request.relation: PreparedScan.prepare(session, s.request) for s in steps if isinstance(s, ScanStep)}
    for step in steps[:-1]:
        STEP_RUNNERS[type(step)](session, step, prepared)
    return _final(session, query.tree.sql("duckdb"), None)


def _final(session: Session, sql: str, parameters: Any) -> StatementResult:
    """A query's rows as a relation; any other statement runs now (DML reports its rowcount)."""
    kind = statement_kind(sql)
    if kind == "rows":
        return StatementResult(rows=session.relation(sql, parameters))
    cursor = session.sql(sql, parameters)
    if kind == "dml":
        return StatementResult(rowcount=cursor.rowcount)
    session.catalog_changed()
    return StatementResult()
