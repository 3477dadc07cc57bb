"""Executors of the weak-supervision statements (the work lives in :mod:`engine.labeling`)."""
from __future__ import annotations

from typing import Any, Sequence

import pyarrow as pa

from engine.dialect.labeling import (AddGoldLabels, AnalyzeLabelingFunctions, CreateLabelingFunction,
                                     DropLabelingFunction, Label, ShowClassBalance, ShowLabelAnalysis,
                                     ShowLabelingFunctions)
from engine.dialect.base import bind_parameters
from engine.executors import executes
from engine.labeling import functions, gold, label, runs
from engine.result import Result


@executes(CreateLabelingFunction)
def create_labeling_function(session: Any, node: CreateLabelingFunction, params: Sequence[Any] | None) -> Result:
    node = bind_parameters(node, params)
    session.require_writable(node.NAME)
    name = functions.create_sql_function(session, node.this, node.args["table"], node.args["expression"],
                                         bool(node.args.get("replace")))
    return Result(message=f"CREATE LABELING FUNCTION {name}")


@executes(DropLabelingFunction)
def drop_labeling_function(session: Any, node: DropLabelingFunction, params: Sequence[Any] | None) -> Result:
    node = bind_parameters(node, params)
    session.require_writable(node.NAME)
    dropped = functions.drop_function(session, node.this, bool(node.args.get("exists")))
    return Result(message=f"DROP LABELING FUNCTION {node.this.name}" + ("" if dropped else " (there was none)"))


@executes(ShowLabelingFunctions)
def show_labeling_functions(session: Any, node: ShowLabelingFunctions, params: Sequence[Any] | None) -> Result:
    node = bind_parameters(node, params)
    rows = functions.listing(session, node.args.get("table"))
    names = ("name", "table_name", "kind", "definition")
    return Result(arrow=pa.table({n: pa.array([r[i] for r in rows], pa.string()) for i, n in enumerate(names)}))


@executes(Label)
def label_table(session: Any, node: Label, params: Sequence[Any] | None) -> Result:
    node = bind_parameters(node, params)
    outcome = label.label(session, node)
    record = outcome.record
    return Result(rowcount=record.n_rows, message=(
        f"LABEL: {record.n_rows} rows of {record.source.sql('duckdb')} into {record.target.sql('duckdb')} "
        f"({record.model}, {len(outcome.stats)} functions, {record.n_patterns} vote patterns, "
        f"{record.n_covered / max(record.n_rows, 1):.1%} covered, {record.n_gold} gold) in {record.total_seconds:.2f} s; "
        f"run {outcome.run_id}"
    ))


@executes(AddGoldLabels)
def add_gold_labels(session: Any, node: AddGoldLabels, params: Sequence[Any] | None) -> Result:
    node = bind_parameters(node, params)
    count = gold.add_gold_labels(session, node.this, node.args["source"], node)
    return Result(rowcount=count, message=f"ADD GOLD LABELS: {count} gold labels for {node.this.sql('duckdb')}")


@executes(AnalyzeLabelingFunctions)
def analyze_labeling_functions(session: Any, node: AnalyzeLabelingFunctions, params: Sequence[Any] | None) -> Result:
    node = bind_parameters(node, params)
    return Result(arrow=label.analyze(session, node))


@executes(ShowLabelAnalysis)
def show_label_analysis(session: Any, node: ShowLabelAnalysis, params: Sequence[Any] | None) -> Result:
    node = bind_parameters(node, params)
    return Result(query=runs.ANALYSIS_QUERY, params=[runs.latest_run(session, node.this)])


@executes(ShowClassBalance)
def show_class_balance(session: Any, node: ShowClassBalance, params: Sequence[Any] | None) -> Result:
    node = bind_parameters(node, params)
    return Result(query=runs.CLASS_BALANCE_QUERY, params=[runs.latest_run(session, node.this)])
