"""``LABEL``: labeling functions -> label matrix -> label model -> label table, atomically.

1. check everything without writing (table, target, functions, columns, key, options);
2. one DuckDB query applies every function and stores the packed votes of each row;
3. the label model is fitted on the distinct vote patterns (a GROUP BY) and predicts per
   pattern; 4. the label table is a view joining the stored rows' vote codes to the stored
   predictions per pattern, gold labels overriding weak ones (:mod:`engine.labeling.storage`;
   ``WITH (storage = 'table')`` joins them into a table instead); 5. the run is recorded in
   the catalog.
When nearly every row has its own vote pattern, 3-4 read the rows instead (no GROUP BY, no
join: the label table is a view computing each row's label from the model's lookup tables,
:mod:`engine.labeling.per_row`);
:mod:`engine.labeling.fit_path` chooses.
Steps 2-5 run in one transaction: any failure leaves the database as it was.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from engine.errors import DataError, ProgrammingError
from engine.labeling.analysis import LFStats, analysis_arrow, lf_analysis
from engine.labeling.dawid_skene import DawidSkene
from engine.labeling.fit_path import ROWS, FitPath, choose_fit_path, estimate_patterns
from engine.labeling.functions import resolve
from engine.labeling.majority import MajorityVote
from engine.labeling.matrix import LabelMatrix
from engine.labeling.options import LabelOptions, label_options
from engine.labeling.patterns import CHUNK, VotePatterns
from engine.labeling.per_row import RowMatrix, write_rows
from engine.labeling.runs import RunRecord, record_run
from engine.labeling.storage import (
    drop_orphans,
    drop_target,
    model_view_parameters,
    new_token,
    rows_table,
    session_runner,
    write_model_view,
    write_view,
)
from engine.labeling.table import require_table
from engine.labeling.vote_plan import VotePlan
from engine.labeling.writer import Predictions, check_key_name, gold_classes_arrow, write_label_table
from engine.system_catalog import require_user_table

if TYPE_CHECKING:
    from engine.session import Session

#: The label model needs at least this many functions (it is not identifiable with fewer).
MIN_LABEL_MODEL_FUNCTIONS = 3


@dataclass
class LabelOutcome:
    """What a LABEL run did: its id, rows written, and the record stored."""

    run_id: int
    record: RunRecord
    stats: list[LFStats]
    cluster_places: list[Any] = field(default_factory=list)  # where cluster tasks ran (engine.cluster)
    cluster_seconds: float = 0.0
    merged_partitions: int = 0  # partitions whose vote-pattern counts were summed for the fit (0: counted here)
    fit_on: str = "patterns"  # the label model's input: 'patterns' or 'rows' (engine.labeling.fit_path)
    storage: str = "view"  # the label table: 'view' (engine.labeling.storage) or 'table'

    def cluster_summary(self) -> str:
        """'; Python functions in N tasks on M cluster nodes (S s)', and, when the label model was
        fitted on the tasks' merged pattern counts, '; label model fitted on the vote-pattern counts
        of N partitions, merged'; '' when the functions ran here."""
        if not self.cluster_places:
            return ""
        nodes = len({p.node_id for p in self.cluster_places})
        tasks = len(self.cluster_places)
        merged = (f"; label model fitted on the vote-pattern counts of {self.merged_partitions} partitions, merged"
                  if self.merged_partitions else "")
        return (f"; Python functions in {tasks} task{'s' * (tasks != 1)} on {nodes} cluster node{'s' * (nodes != 1)}"
                f" ({self.cluster_seconds:.2f} s){merged}")


def label(session: Session, node: exp.Expr) -> LabelOutcome:
    """Execute a parsed ``LABEL`` statement."""
    started = time.perf_counter()
    source: exp.Table = node.this
    target: exp.Table = node.args["into"]
    require_user_table(target, "LABEL")
    replace = bool(node.args.get("replace"))
    options = label_options(node)
    session.require_writable("LABEL")
    require_table(session, source, "LABEL")
    if target.sql("duckdb").lower() == source.sql("duckdb").lower():
        raise ProgrammingError(f"LABEL {source.sql('duckdb')} cannot write its labels INTO the table it labels")
    if not replace and session.table_exists(target):
        raise ProgrammingError(
            f"table {target.sql('duckdb')} already exists; use LABEL ... INTO OR REPLACE {target.sql('duckdb')} to replace it"
        )
    lfs = resolve(session, node.expressions)
    if options.model == "label_model" and len(lfs) < MIN_LABEL_MODEL_FUNCTIONS:
        raise ProgrammingError(
            f"the label model needs at least {MIN_LABEL_MODEL_FUNCTIONS} labeling functions, found {len(lfs)} "
            f"({', '.join(lf.name for lf in lfs)}); add functions or use WITH (model = 'majority')"
        )
    plan = VotePlan.prepare(session, source, lfs, options.key, options.classes, options.fault_tolerant)
    check_key_name(plan.key.name)
    if plan.n_rows == 0:
        raise DataError(f"LABEL: table {source.sql('duckdb')} has no rows to label")
    steps = session.progress(4, f"LABEL {source.sql('duckdb')}: apply, fit, write, record", unit="step")
    with steps, session.atomic():
        token = new_token()
        stored = _stores_matrix(plan, options)
        matrix_name = rows_table(token).sql("duckdb") if stored else f"__mallard_label_matrix_{id(plan):x}"
        applied = time.perf_counter()
        matrix = plan.apply(matrix_name)
        kept = False
        try:
            outcome = _fit_and_write(session, plan, matrix, options, target, replace, started, applied, steps, token)
            kept = stored and outcome.storage == "view"
            return outcome
        finally:
            if not kept:
                matrix.drop()


def _stores_matrix(plan: VotePlan, options: LabelOptions) -> bool:
    """Whether the label matrix goes straight into the stored rows of a label view rather than
    a temporary table: whenever the label table may be a view (every path of the label model,
    the pattern path of majority vote)."""
    return options.storage != "table" and not (options.model == "majority" and options.fit_on == ROWS)


def _fit_path(plan: VotePlan, matrix: LabelMatrix, options: LabelOptions) -> FitPath:
    """Patterns or rows (:mod:`engine.labeling.fit_path`); the cluster's merged counts are patterns."""
    if plan.cluster_patterns is not None:
        return FitPath("patterns")
    return choose_fit_path(options.fit_on, plan.n_rows, len(plan.lfs), plan.classes.k,
                           lambda: estimate_patterns(matrix))


def _fit_and_write(session: Session, plan: VotePlan, matrix: LabelMatrix, options: LabelOptions, target: exp.Table,
                   replace: bool, started: float, applied: float, steps: Any, token: str) -> LabelOutcome:
    path = _fit_path(plan, matrix, options)
    rows = RowMatrix.fetch(session, matrix) if path.path == ROWS else None
    patterns = rows.patterns if rows is not None else plan.patterns(matrix)
    gold = matrix.gold_patterns()
    steps.update(1)
    fit_start = time.perf_counter()
    fitted = _fit(patterns, options, plan.classes.k)
    steps.update(1)
    write_start = time.perf_counter()
    ties_abstain = options.model == "majority"
    if replace:
        drop_target(session, target)  # a table or a label view: either may replace the other
    storage = "table"
    share: np.ndarray | None = None
    parameters = (model_view_parameters(fitted, matrix.layout)
                  if rows is not None and options.model == "label_model" and options.storage != "table" else None)
    if rows is not None:
        if parameters is not None:  # a view computing each row's label from its vote codes
            storage = "view"
            write_model_view(session, _stored_rows(session, matrix, token), matrix.layout, matrix.has_gold,
                             parameters, token, target, plan.key.name, plan.classes)
            share = _row_label_share(rows, fitted, plan.classes.k)
        else:  # each row's prediction from its own votes, written from Arrow
            write_rows(session, rows, fitted, plan.classes, target, plan.key.name, ties_abstain)
        n_patterns = path.estimated_patterns if path.estimated_patterns is not None else estimate_patterns(matrix)
    else:  # predictions per pattern: a view over them and the rows' codes, or joined into a table
        predictions = Predictions.from_probs(patterns, fitted.predict_proba(patterns), ties_abstain=ties_abstain)
        storage = "table" if options.storage == "table" else "view"
        _write(session, matrix, plan, predictions, patterns, target, storage, token)
        n_patterns = len(patterns)
        if not matrix.has_gold:
            share = predictions.label_share(patterns.counts, plan.classes.k)
    if replace:
        drop_orphans(session_runner(session))  # what the replaced label view read
    done = time.perf_counter()
    steps.update(1)
    stats = lf_analysis([lf.name for lf in plan.lfs], patterns, gold, plan.classes.texts, fitted.accuracies())
    record = RunRecord(
        target=target, source=plan.source, key=plan.key.name, model=options.model, classes=plan.classes,
        seed=options.seed, options_json=options.to_json(plan.classes, plan.key.name, path.path, storage),
        n_rows=patterns.n_rows, n_covered=patterns.n_covered(), n_patterns=n_patterns,
        n_gold=int(gold.counts.sum()) if gold is not None else 0, iterations=fitted.iterations,
        converged=fitted.converged, class_balance=np.asarray(fitted.class_balance),
        label_share=share if share is not None else _label_share(session, target, plan.classes, patterns.n_rows),
        apply_seconds=fit_start - applied, fit_seconds=write_start - fit_start, write_seconds=done - write_start,
    )
    record.total_seconds = time.perf_counter() - started
    run_id = record_run(session, record, plan.lfs, stats, plan.failures())
    steps.update(1)
    merged = len(plan.cluster_places) if plan.cluster_patterns is not None else 0
    return LabelOutcome(run_id, record, stats, plan.cluster_places, plan.cluster_seconds, merged, path.path, storage)


def _fit(patterns: VotePatterns, options: LabelOptions, k: int) -> Any:
    """The fitted model (majority vote or the Dawid-Skene label model)."""
    if options.model == "majority":
        return MajorityVote(k).fit(patterns)
    return DawidSkene(k, max_iter=options.max_iter, tol=options.tol, seed=options.seed).fit(patterns)


def _write(session: Session, matrix: LabelMatrix, plan: VotePlan, predictions: Predictions, patterns: VotePatterns,
           target: exp.Table, storage: str, token: str) -> None:
    name = f"__mallard_label_predictions_{id(matrix):x}"
    gold_name = f"__mallard_label_gold_{id(matrix):x}" if matrix.has_gold and storage == "table" else None
    session.register(name, predictions.to_arrow(patterns, plan.classes))
    if gold_name:
        session.register(gold_name, gold_classes_arrow(plan.classes))
    try:
        if storage == "table":
            write_label_table(session, matrix, target, plan.key.name, name, gold_name)
        else:
            write_view(session, _stored_rows(session, matrix, token), matrix.layout.names, matrix.has_gold, name, token,
                       target, plan.key.name, plan.classes)
    finally:
        session.unregister(name)
        if gold_name:
            session.unregister(gold_name)


def _stored_rows(session: Session, matrix: LabelMatrix, token: str) -> exp.Table:
    """The stored rows table of ``token``: the matrix itself, or a copy of a temporary one."""
    rows = rows_table(token)
    if matrix.ref().db != "mallard":
        session.sql(exp.Create(this=rows, kind="TABLE", expression=exp.select("*").from_(matrix.ref())))
    return rows


def _row_label_share(rows: RowMatrix, fitted: Any, k: int) -> np.ndarray:
    """Fraction of rows given each class (gold labels overriding), predicted per row in slices."""
    totals = np.zeros(k)
    for start, chunk in zip(range(0, len(rows), CHUNK), rows.patterns.chunks(CHUNK)):
        labels = fitted.predict_proba(chunk).argmax(axis=1)
        if rows.gold is not None:
            gold = rows.gold[start:start + len(chunk)].astype(np.int64)
            labels = np.where(gold > 0, gold - 1, labels)
        totals += np.bincount(labels, minlength=k)
    return totals / max(len(rows), 1)


def _label_share(session: Session, target: exp.Table, classes: Any, n_rows: int) -> np.ndarray:
    """Fraction of the label table's rows given each class (gold labels included)."""
    query = exp.select("label", exp.Count(this=exp.Star())).from_(target.copy()).group_by("label")
    counts = dict(session.sql(query).fetchall())
    return np.array([counts.get(v, 0) for v in classes.values], dtype=np.float64) / max(n_rows, 1)


def analyze(session: Session, node: exp.Expr) -> pa.Table:
    """Execute ``ANALYZE LABELING FUNCTIONS``: the analysis without a label model; writes nothing."""
    source: exp.Table = node.this
    options = label_options(node)
    require_table(session, source, "ANALYZE LABELING FUNCTIONS")
    lfs = resolve(session, node.expressions)
    plan = VotePlan.prepare(session, source, lfs, options.key, options.classes, options.fault_tolerant)
    with session.atomic():
        matrix = plan.apply(f"__mallard_label_matrix_{id(plan):x}")
        try:
            stats = lf_analysis([lf.name for lf in lfs], plan.patterns(matrix), matrix.gold_patterns(), plan.classes.texts)
        finally:
            matrix.drop()
    table = analysis_arrow(stats)
    return table.append_column("failures", pa.array(plan.failures(), pa.int64()))
