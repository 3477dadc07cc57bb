"""Executors of the weak-supervision statements (the work lives in :mod:`engine.labeling`)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from engine.dialect.labeling import (
    AddGoldLabels,
    AnalyzeLabelingFunctions,
    CreateLabelingFunction,
    DropLabelingFunction,
    Label,
    ShowClassBalance,
    ShowLabelAnalysis,
    ShowLabelingFunctions,
)
from engine.labeling import functions, gold, label, runs
from engine.statement_result import StatementResult

if TYPE_CHECKING:
    from engine.session import Session


def create_labeling_function(session: Session, node: CreateLabelingFunction) -> StatementResult:
    """``CREATE [OR REPLACE] LABELING FUNCTION <name> ON <table> AS <expression>``: stored in the catalog."""
    session.require_writable(node.NAME)
    name = functions.create_sql_function(session, node.this, node.args["table"], node.args["expression"],
                                         bool(node.args.get("replace")))
    return StatementResult(message=f"CREATE LABELING FUNCTION {name}")


def drop_labeling_function(session: Session, node: DropLabelingFunction) -> StatementResult:
    """``DROP LABELING FUNCTION [IF EXISTS] <name>``."""
    session.require_writable(node.NAME)
    dropped = functions.drop_function(session, node.this, bool(node.args.get("exists")))
    return StatementResult(message=f"DROP LABELING FUNCTION {node.this.name}" + ("" if dropped else " (there was none)"))


def show_labeling_functions(session: Session, node: ShowLabelingFunctions) -> StatementResult:
    """``SHOW LABELING FUNCTIONS [ON <table>]``: name, table, kind and definition of each."""
    rows = functions.listing(session, node.args.get("table"))
    names = ("name", "table_name", "kind", "definition")
    return StatementResult(rows=pa.table({n: pa.array([r[i] for r in rows], pa.string()) for i, n in enumerate(names)}))


def label_table(session: Session, node: Label) -> StatementResult:
    """``LABEL <table> USING <lf>, ... [WITH (...)] INTO [OR REPLACE] <target>``: one label per row, in one transaction."""
    outcome = label.label(session, node)
    record = outcome.record
    patterns = (f"~{record.n_patterns} vote patterns, fitted per row" if outcome.fit_on == "rows"
                else f"{record.n_patterns} vote patterns")
    return StatementResult(rowcount=record.n_rows, message=(
        f"LABEL: {record.n_rows} rows of {record.source.sql('duckdb')} into {record.target.sql('duckdb')} "
        f"({record.model}, {len(outcome.stats)} functions, {patterns}, "
        f"{record.n_covered / max(record.n_rows, 1):.1%} covered, {record.n_gold} gold) in {record.total_seconds:.2f} s; "
        f"run {outcome.run_id}{outcome.cluster_summary()}"
    ))


def add_gold_labels(session: Session, node: AddGoldLabels) -> StatementResult:
    """``ADD GOLD LABELS TO <table> FROM <table> | (<query>) [WITH (key = <column>, label = <column>)]``."""
    count = gold.add_gold_labels(session, node.this, node.args["source"], node)
    return StatementResult(rowcount=count, message=f"ADD GOLD LABELS: {count} gold labels for {node.this.sql('duckdb')}")


def analyze_labeling_functions(session: Session, node: AnalyzeLabelingFunctions) -> StatementResult:
    """``ANALYZE LABELING FUNCTIONS <lf>, ... ON <table> [WITH (classes, key, fault_tolerant)]``: the LF analysis, nothing written."""
    return StatementResult(rows=label.analyze(session, node))


def show_label_analysis(session: Session, node: ShowLabelAnalysis) -> StatementResult:
    """``SHOW LABEL ANALYSIS FOR <label table>``: the analysis recorded by the LABEL run that wrote it."""
    return StatementResult(rows=session.relation(runs.ANALYSIS_QUERY, [runs.latest_run(session, node.this)]))


def show_class_balance(session: Session, node: ShowClassBalance) -> StatementResult:
    """``SHOW CLASS BALANCE FOR <label table>``: estimated class balance and label shares."""
    return StatementResult(rows=session.relation(runs.CLASS_BALANCE_QUERY, [runs.latest_run(session, node.this)]))
