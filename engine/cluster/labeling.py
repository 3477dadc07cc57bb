"""Python labeling functions over row partitions in Ray tasks.

The driver streams the columns the Python functions read (with each row's key) out of
DuckDB in partitions of ``cluster_partition_rows`` rows; a task applies every Python
function to its partition exactly as the label-matrix query would (same codes, same failure
counting, same errors) and returns the votes as Arrow.  The driver registers the votes and
the one label-matrix query joins them by key, so SQL functions, gold labels and the label
table are the same code and the same result as on one node.

When every function of the run is a Python function, a task also returns its partition's
vote-pattern counts (:mod:`engine.labeling.pattern_counts`: pattern -> rows, keyed by the
label matrix's packed code columns), and the driver fits the label model on their sum instead
of counting the patterns of the whole matrix again (a GROUP BY over every row in DuckDB).  With
SQL functions mixed in, a pattern is the joint vote of every function, SQL ones included,
which a task never sees (they run in the driver's label-matrix query, and may read other
tables); counts over the Python functions alone would not give the joint patterns, so then only
the votes and the failure counts are merged, and the driver counts the patterns of the label
matrix as on one node.  Either way the label table needs each row's label, so the per-row votes
still come back and the label-matrix query still joins them by key.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from engine.cluster.connection import connect, session_cluster
from engine.cluster.tasks import BASE_MODULES, RETRIES, TaskPlace, partition_results, require_modules, task_place
from engine.labeling.classes import LabelClasses
from engine.labeling.functions import LabelingFunction
from engine.labeling.matrix import CodeLayout
from engine.labeling.pattern_counts import PatternCounts
from engine.labeling.python_votes import PythonVotes
from engine.labeling.table import quote_column

if TYPE_CHECKING:
    from engine.labeling.vote_plan import VotePlan

#: The key column of the votes a cluster returns.
REMOTE_KEY = "__mallard_remote_key"


def vote_column(j: int) -> str:
    """The column of the j-th Python function's vote codes in the returned votes."""
    return f"__mallard_vote_{j}"


@dataclass
class PartitionVotes:
    """What one task returns: the partition's keys and vote codes, failures per function, where it
    ran, and (every function a Python one) the partition's vote-pattern counts as Arrow."""

    votes: pa.Table
    failures: list[int]
    place: TaskPlace
    patterns: pa.Table | None = None


@dataclass
class ClusterVotes:
    """The Python functions' votes over the whole table, gathered from the cluster."""

    table: pa.Table
    failures: dict[str, int]
    places: list[TaskPlace] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the cluster phase (partitions out, votes back)
    patterns: PatternCounts | None = None  # the merged counts (every function a Python one)


def vote_partition(lfs: list[LabelingFunction], classes: LabelClasses, fault_tolerant: bool,
                   rows: pa.RecordBatch, layout: CodeLayout | None = None) -> PartitionVotes:
    """The task: every Python function over one partition (``rows``: the key, then the columns);
    with a ``layout`` (the run's functions are all these), the partition's pattern counts too."""
    keys = rows.column(0)
    out: dict[str, Any] = {REMOTE_KEY: keys}
    failures = []
    codes = np.zeros((len(keys), len(lfs)), dtype=np.int8)
    for j, lf in enumerate(lfs):
        votes = PythonVotes(lf, classes, fault_tolerant, udf_name="")
        columns = [rows.column(c.lower()) for c in lf.columns()]
        codes[:, j] = votes.vote_partition(keys, columns)
        out[vote_column(j)] = pa.array(codes[:, j], pa.int8())
        failures.append(votes.failures)
    patterns = PatternCounts.of_votes(codes, layout).to_arrow(layout) if layout is not None else None
    return PartitionVotes(pa.table(out), failures, task_place(), patterns)


def cluster_votes(plan: VotePlan) -> ClusterVotes | None:
    """The plan's Python functions applied on the session's cluster; None without a cluster."""
    session = plan.session
    address = session_cluster(session)
    lfs = [lf for lf in plan.lfs if lf.kind == "python"]
    if address is None or not lfs or plan.n_rows == 0:
        return None
    started = time.perf_counter()
    ray = connect(address)
    what = f"LABEL {plan.source.sql('duckdb')}"
    require_modules(ray, {**BASE_MODULES, **_function_modules(lfs)}, what)
    rows_per_task = int(session.settings["cluster_partition_rows"])
    columns = sorted({c.lower(): c for lf in lfs for c in lf.columns()}.values(), key=str.lower)
    query = exp.select(exp.alias_(plan.key.column(), REMOTE_KEY),
                       *[exp.alias_(quote_column(c), exp.to_identifier(c.lower(), quoted=True)) for c in columns]).from_(
        plan.source.copy())
    reader = session.relation(query).to_arrow_reader(rows_per_task)
    task = ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)(vote_partition)
    shared = ray.put(lfs)
    partitions = -(-plan.n_rows // rows_per_task)
    in_flight = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    bar = session.progress(partitions, f"{what}: Python functions on the cluster", unit="partition")
    results: list[PartitionVotes] = []

    layout = plan.layout if len(lfs) == len(plan.lfs) else None  # counts merge only over every function's votes

    def submit(batch: pa.RecordBatch) -> Any:
        return task.options(scheduling_strategy="SPREAD").remote(shared, plan.classes, plan.fault_tolerant, batch,
                                                                layout)

    results = partition_results(ray, submit, reader, rows_per_task, what, in_flight, bar)
    failures = np.sum(np.array([r.failures for r in results], dtype=np.int64), axis=0).tolist()
    table = pa.concat_tables([r.votes for r in results])
    patterns = None
    if layout is not None:
        patterns = PatternCounts.merge([PatternCounts.from_arrow(r.patterns, layout) for r in results
                                        if r.patterns is not None], layout)
    return ClusterVotes(table, {lf.name: int(f) for lf, f in zip(lfs, failures)}, [r.place for r in results],
                        time.perf_counter() - started, patterns)



def _function_modules(lfs: list[LabelingFunction]) -> dict[str, str]:
    """The module each function must be imported from on a node (a function defined in a
    script or notebook travels by value and needs none)."""
    modules: dict[str, str] = {}
    for lf in lfs:
        assert lf.python is not None
        module = getattr(lf.python.fn, "__module__", None)
        if module and module != "__main__":
            modules.setdefault(module, f"labeling function {lf.name}")
    return modules

