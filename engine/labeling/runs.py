"""The record of each LABEL run (``mallard.label_runs``, ``mallard.label_run_functions``),
so a label table can always be traced to the functions, options and model that made it."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from sqlglot import exp

from engine.errors import ProgrammingError
from engine.labeling.analysis import LFStats
from engine.labeling.classes import LabelClasses
from engine.labeling.functions import LabelingFunction
from engine.system_catalog import catalog_name

if TYPE_CHECKING:
    from engine.session import Session


@dataclass
class RunRecord:
    """Everything stored about one LABEL run."""

    target: exp.Table
    source: exp.Table
    key: str
    model: str
    classes: LabelClasses
    seed: int
    options_json: str
    n_rows: int
    n_covered: int
    n_patterns: int
    n_gold: int
    iterations: int
    converged: bool
    class_balance: np.ndarray
    label_share: np.ndarray
    apply_seconds: float
    fit_seconds: float
    write_seconds: float
    total_seconds: float = 0.0


def record_run(session: Session, run: RunRecord, lfs: Sequence[LabelingFunction], stats: Sequence[LFStats],
               failures: Sequence[int]) -> int:
    """Insert the run and its functions; returns the run id."""
    run_id = int(session.scalar("SELECT coalesce(max(run_id), 0) + 1 FROM mallard.label_runs"))
    session.sql(
        "INSERT INTO mallard.label_runs (run_id, target_table, source_table, key_column, model, classes, label_type,"
        " seed, options, n_rows, n_covered, n_patterns, n_gold, iterations, converged, class_balance, label_share,"
        " apply_seconds, fit_seconds, write_seconds, total_seconds)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, catalog_name(run.target), catalog_name(run.source), run.key, run.model, list(run.classes.texts),
         run.classes.label_type, run.seed, run.options_json, run.n_rows, run.n_covered, run.n_patterns, run.n_gold,
         run.iterations, run.converged, [float(x) for x in run.class_balance], [float(x) for x in run.label_share],
         run.apply_seconds, run.fit_seconds, run.write_seconds, run.total_seconds],
    )
    rows = pa.table({
        "run_id": pa.array([run_id] * len(lfs), pa.int64()),
        "position": pa.array(range(len(lfs)), pa.int64()),
        "lf": pa.array([lf.name for lf in lfs], pa.string()),
        "kind": pa.array([lf.kind for lf in lfs], pa.string()),
        "definition": pa.array([lf.definition for lf in lfs], pa.string()),
        "polarity": pa.array([s.polarity for s in stats], pa.list_(pa.string())),
        **{name: pa.array([getattr(s, name) for s in stats], pa.float64())
           for name in ("coverage", "overlaps", "conflicts")},
        "correct": pa.array([s.correct for s in stats], pa.int64()),
        "incorrect": pa.array([s.incorrect for s in stats], pa.int64()),
        "emp_acc": pa.array([s.emp_acc for s in stats], pa.float64()),
        "learned_acc": pa.array([s.learned_acc for s in stats], pa.float64()),
        "failures": pa.array(list(failures), pa.int64()),
    })
    name = f"__mallard_label_run_functions_{id(rows):x}"
    session.register(name, rows)  # one insert from Arrow: executemany costs ~1 ms a row
    try:
        session.sql(f'INSERT INTO mallard.label_run_functions (run_id, position, lf, kind, definition, polarity, coverage,'
                    f' "overlaps", conflicts, correct, incorrect, emp_acc, learned_acc, failures) SELECT * FROM {name}')
    finally:
        session.unregister(name)
    return run_id


def latest_run(session: Session, target: exp.Table) -> int:
    """The id of the last LABEL run that wrote ``target``."""
    row = session.sql("SELECT max(run_id) FROM mallard.label_runs WHERE target_table = ?", [catalog_name(target)]).fetchone()
    if row is None or row[0] is None:
        raise ProgrammingError(f"no LABEL run wrote {target.sql('duckdb')}; LABEL <table> USING ... INTO it first")
    return int(row[0])


ANALYSIS_QUERY = (
    'SELECT lf, polarity, coverage, "overlaps", conflicts, correct, incorrect, emp_acc, learned_acc, failures'
    " FROM mallard.label_run_functions WHERE run_id = ? ORDER BY position"
)

CLASS_BALANCE_QUERY = (
    "SELECT unnest(classes) AS class, unnest(class_balance) AS balance, unnest(label_share) AS label_share"
    " FROM mallard.label_runs WHERE run_id = ?"
)
