"""Mergeable vote-pattern counts: partitions' counts summed are the counts of the whole, keyed by
the same packed codes the label-matrix query writes, in the order the label model reads."""
from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from sqlglot import exp

from engine.labeling.matrix import CodeLayout
from engine.labeling.pattern_counts import PatternCounts, packed_codes
from engine.labeling.patterns import VotePatterns
from engine.labeling.synthetic import synthetic_votes


# one code column, patterns shared by partitions; two code columns (7 groups of 6 functions), nearly
# every row its own pattern
@pytest.mark.parametrize(("m", "k", "shared"), [(5, 2, True), (40, 3, False)])
def test_counts_of_three_partitions_summed_equal_the_counts_of_the_whole(m: int, k: int, shared: bool) -> None:
    votes = synthetic_votes(n=5000, m=m, k=k, seed=m).votes
    layout = CodeLayout(m, k)
    cuts = [0, 1234, 1235, 5000]  # uneven, one partition of a single row
    parts = [PatternCounts.of_votes(votes[a:b], layout) for a, b in zip(cuts, cuts[1:])]
    merged = PatternCounts.merge(parts, layout)
    whole = PatternCounts.of_votes(votes, layout)
    assert merged == whole and merged.n_rows == 5000
    assert (sum(len(p.counts) for p in parts) > len(merged.counts)) == shared  # patterns met in several partitions
    # and the same patterns and counts as the dense rows counted directly
    patterns = merged.patterns(layout)
    expected = VotePatterns.from_rows(votes, k)
    as_dict = {tuple(v): int(c) for v, c in zip(patterns.votes.tolist(), patterns.counts)}
    assert as_dict == {tuple(v): int(c) for v, c in zip(expected.votes.tolist(), expected.counts)}


def test_merged_counts_arrive_through_arrow_in_code_order() -> None:
    votes = synthetic_votes(n=800, m=8, k=2, seed=1).votes
    layout = CodeLayout(8, 2)
    parts = [PatternCounts.from_arrow(PatternCounts.of_votes(votes[i::3], layout).to_arrow(layout), layout)
             for i in range(3)]
    patterns = PatternCounts.merge(parts, layout).patterns(layout)
    codes = patterns.join_codes["c0"]
    assert codes.tolist() == sorted(codes.tolist()) and patterns.n_rows == 800
    assert PatternCounts.merge([], layout).n_rows == 0


def test_packed_codes_are_those_the_label_matrix_query_writes() -> None:
    votes = synthetic_votes(n=300, m=40, k=3, seed=2).votes
    layout = CodeLayout(40, 3)
    table = pa.table({f"v{j}": pa.array(votes[:, j].astype(np.int64)) for j in range(40)})
    duck = duckdb.connect()
    try:
        duck.register("votes", table)
        query = exp.select(*layout.code_expressions([exp.column(f"v{j}") for j in range(40)])).from_("votes")
        rows = duck.execute(query.sql("duckdb")).fetchnumpy()
    finally:
        duck.close()
    for name, column in zip(layout.names, packed_codes(votes, layout)):
        assert np.array_equal(np.asarray(rows[name], dtype=np.int64), column), name
