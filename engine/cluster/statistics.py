"""A span's statistics on a Ray cluster: partitions of rows summarized in tasks, merged here.

The driver streams the table's rows out of DuckDB in partitions of ``cluster_partition_rows``
rows.  A task loads its partition into a DuckDB of its own (in memory, one thread, Mallard's
catalog and macros), with the columns' types as the driver sees them, and runs the span scans'
own queries (:mod:`engine.validation.span_statistics`) over it, returning as Arrow:

* scan 1's partial of each column (counts, and for non-integer numbers the finite values'
  min, max, mean and M2);
* scan 3's counts (each string value, each integer, each other number's sketch bin);
* the distinct 64-bit hashes of its whole rows (scan 2).

The driver merges them into the one span staged under the statement's key: counts add; min
and max take the extreme; means and M2 combine as spans do (Chan et al.: the merged mean is
the count-weighted mean, M2 adds each part's ``m2 + n (mean - merged mean)^2``); scan 3's
counts add key by key, and the same SQL as on one node then derives the bins, the integers'
moments, distinct counts, lengths, top values, value shapes and KMV sketches from them; the
duplicate rows are the rows less the distinct hashes of the union (a row equal to one in
another partition is a duplicate, as on one node).  So the staged span is the one node's:
exact for every count, min, max, bin, distinct count, value, shape and hash; the mean and M2 of
a non-integer column differ only by float rounding (the order of the additions).

What reaches the driver: one row per column and partition, one count per distinct value (or
bin) and partition, and 8 bytes per distinct row; DuckDB merges them (and may spill).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp
from sqlglot.errors import ParseError

from engine.cluster.connection import connect, session_cluster
from engine.cluster.tasks import BASE_MODULES, RETRIES, TaskPlace, partition_results, require_modules, task_place
from engine.system_catalog import catalog_name

if TYPE_CHECKING:
    from engine.session import Session
    from engine.validation.span_statistics import SourceColumn

#: The partition's table inside a task's DuckDB.
PARTITION = "__mallard_partition"


@dataclass
class PartitionSummary:
    """What one task returns: its rows, scan 1's partials, scan 3's counts, its distinct row hashes."""

    rows: int
    partials: pa.Table
    counts: pa.Table | None
    hashes: pa.Table
    place: TaskPlace


@dataclass
class ClusterSpan:
    """How a span was computed on the cluster: the partitions, where each ran, the wall time."""

    places: list[TaskPlace] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """'; summarized in N partitions on M cluster nodes (S s)'."""
        parts, nodes = len(self.places), len({p.node_id for p in self.places})
        return (f"; summarized in {parts} partition{'s' * (parts != 1)} on {nodes} cluster node{'s' * (nodes != 1)}"
                f" ({self.seconds:.2f} s)")


def summarize_partition(columns: list[SourceColumn], rows: pa.RecordBatch) -> PartitionSummary:
    """The task: the span scans' partials of one partition of rows (the columns in order)."""
    import duckdb

    from engine.system_catalog import load_macros, migrate
    from engine.validation.span_statistics import aggregate_query, count_query, row_hash

    duck = duckdb.connect(config={"threads": 1})
    try:
        migrate(duck)
        load_macros(duck)
        duck.register(f"{PARTITION}_arrow", pa.Table.from_batches([rows]))
        duck.execute(_typed_view(duck, columns).sql("duckdb"))
        source = exp.to_table(PARTITION)
        partials = duck.execute(f"SELECT unnest(columns, recursive := true) FROM ({aggregate_query(source, columns).sql('duckdb')})"
                                ).to_arrow_table()
        counted = count_query(source, columns)
        counts = duck.execute(counted.sql("duckdb")).to_arrow_table() if counted is not None else None
        hashes = duck.execute(exp.select(exp.alias_(row_hash(columns), "h")).distinct().from_(source).sql("duckdb")
                              ).to_arrow_table()
    finally:
        duck.close()
    return PartitionSummary(len(rows), partials, counts, hashes, task_place())


def _typed_view(duck: Any, columns: list[SourceColumn]) -> exp.Create:
    """A view of the partition whose columns have the driver's types (Arrow may carry some
    differently, an ENUM as a dictionary, say)."""
    arrived = {row[0]: row[1] for row in duck.execute(f"DESCRIBE SELECT * FROM {PARTITION}_arrow").fetchall()}
    selected = []
    for c in columns:
        ref: exp.Expr = c.ref
        if arrived.get(c.name) != c.sql_type:
            with contextlib.suppress(ParseError):  # a type sqlglot cannot spell keeps DuckDB's conversion
                ref = exp.cast(c.ref, exp.DataType.build(c.sql_type, dialect="duckdb"))
        selected.append(exp.alias_(ref, exp.to_identifier(c.name, quoted=True)))
    return exp.Create(this=exp.to_table(PARTITION), kind="VIEW",
                      expression=exp.select(*selected).from_(f"{PARTITION}_arrow"))


def cluster_span(session: Session, source: exp.Table, key: str, columns: list[SourceColumn],
                 max_values: int) -> ClusterSpan | None:
    """Stage the statistics of ``source`` under ``key`` from partitions summarized on the
    session's cluster; None without a cluster (or without rows: nothing to spread)."""
    address = session_cluster(session)
    if address is None:
        return None
    started = time.perf_counter()
    ray = connect(address)
    n_rows = session.scalar(exp.select(exp.Count(this=exp.Star())).from_(source.copy()))
    if not n_rows:
        return None
    what = f"the statistics of {source.sql('duckdb')}"
    require_modules(ray, BASE_MODULES, what)
    results = _summaries(session, ray, source, columns, n_rows, what)
    seconds = time.perf_counter() - started
    merge_summaries(session, source, key, results, max_values, seconds)
    return ClusterSpan([r.place for r in results], time.perf_counter() - started)


def _summaries(session: Session, ray: Any, source: exp.Table, columns: list[SourceColumn], n_rows: int,
               what: str) -> list[PartitionSummary]:
    rows_per_task = int(session.settings["cluster_partition_rows"])
    session.quiesce()
    reader = session.relation(exp.select(*[c.ref for c in columns]).from_(source.copy())).to_arrow_reader(rows_per_task)
    task = ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)(summarize_partition)
    shared = ray.put(columns)
    in_flight = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    results: list[PartitionSummary] = []

    def submit(batch: pa.RecordBatch) -> Any:
        return task.options(scheduling_strategy="SPREAD").remote(shared, batch)

    bar = session.progress(-(-n_rows // rows_per_task), f"{what} on the cluster", unit="partition")
    results.extend(partition_results(ray, submit, reader, rows_per_task, what, in_flight, bar))
    return results


def merge_summaries(session: Session, source: exp.Table, key: str, results: list[PartitionSummary],
                    max_values: int, seconds: float) -> None:
    """Stage (``mallard_span_*``, span 0, under ``key``) the merge of the partitions' summaries."""
    from engine.validation.span_statistics import summarize_counts

    names = {"partials": f"__mallard_cluster_partials_{key}", "hashes": f"__mallard_cluster_hashes_{key}",
             "counts": f"__mallard_cluster_counts_{key}"}
    session.register(names["partials"], pa.concat_tables([r.partials for r in results]))
    session.register(names["hashes"], pa.concat_tables([r.hashes for r in results]))
    counts = [r.counts for r in results if r.counts is not None]
    if counts:
        session.register(names["counts"], pa.concat_tables(counts))
    try:
        rows = sum(r.rows for r in results)
        distinct = session.scalar(f"SELECT count(DISTINCT h) FROM {names['hashes']}")
        session.sql("INSERT INTO mallard_span_rows VALUES (?, 0, ?, ?, ?, current_timestamp, ?)",
                    [key, catalog_name(source), rows, rows - distinct, seconds])
        session.sql(_MERGE_PARTIALS.format(partials=names["partials"]), [key])
        if counts:
            session.sql(f"CREATE OR REPLACE TEMP TABLE mallard_span_counts AS SELECT position, role, value, bin, number,"
                        f" sum(count)::BIGINT AS count FROM {names['counts']} GROUP BY ALL")
            summarize_counts(session, key, max_values)
    finally:
        for name in names.values():
            session.unregister(name)


# Chan et al.'s merge, as validation_statistics merges spans; placeholders (the same in every
# partition) are filled from the merged counts afterwards, as on one node.
_MERGE_PARTIALS = """
INSERT INTO mallard_span_columns BY NAME
SELECT $1 AS statistics, 0 AS span, column_name, position, sql_type, kind,
       sum(present)::BIGINT AS present, sum(finite)::BIGINT AS finite, sum(nan_count)::BIGINT AS nan_count,
       sum(inf_count)::BIGINT AS inf_count, sum(zeros)::BIGINT AS zeros, any_value(merged) AS mean,
       sum(m2 + finite * (mean - merged) ^ 2) FILTER (WHERE finite > 0) AS m2, min(min) AS min, max(max) AS max,
       any_value(bins) AS bins, any_value(distinct_count) AS distinct_count, any_value(length_sum) AS length_sum,
       any_value(unstored_count) AS unstored_count, any_value(distinct_hashes) AS distinct_hashes
FROM {partials} JOIN (SELECT position, sum(finite * mean) / nullif(sum(finite), 0) AS merged
                      FROM {partials} GROUP BY position) USING (position)
GROUP BY column_name, position, sql_type, kind
"""
