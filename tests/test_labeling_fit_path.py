"""The label model's two inputs: the pattern table and the rows themselves (engine.labeling.fit_path,
engine.labeling.per_row): the same labels either way, the choice following the estimated sizes,
and LABEL completing under a small DuckDB memory limit (DuckDB spills)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

import engine
from engine.labeling import fit_path
from engine.labeling.fit_path import choose_fit_path
from engine.labeling.synthetic import synthetic_votes, synthetic_votes_query
from tests.test_labeling_model import load_votes

TIGHT = "tol = 1e-12, max_iter = 100000"  # both paths run EM to the same fixed point


def label_rows(con, table: str) -> dict[int, tuple]:
    rows = con.execute(f"SELECT id, label, probs, n_votes, provenance, weight FROM {table}").fetchall()
    return {r[0]: r[1:] for r in rows}


def last_run(con) -> tuple:
    return con.execute("SELECT options, n_patterns, iterations, class_balance FROM mallard.label_runs"
                       " ORDER BY run_id DESC LIMIT 1").fetchone()


@pytest.mark.parametrize("k, model, gold", [(2, "label_model", False), (3, "label_model", True), (3, "majority", True)])
def test_rows_path_gives_the_labels_of_the_pattern_path(con, k, model, gold):
    """Fit and writer both differ (EM over rows, labels from Arrow; EM over patterns, labels
    joined in SQL): the same labels, probabilities, gold overrides and majority-vote ties."""
    data = synthetic_votes(n=30_000, m=12, k=k, seed=11)
    names = ", ".join(load_votes(con, data))
    if gold:  # a gold label on every 40th row, its true class
        ids = np.arange(0, 30_000, 40)
        con.duckdb_connection.register("g", pa.table({"id": ids, "label": data.truth[ids].astype(np.int64)}))
        con.execute("ADD GOLD LABELS TO votes FROM (SELECT * FROM g)")
    runs = {}
    for path in ("patterns", "rows"):
        con.execute(f"LABEL votes USING {names} WITH (classes = {list(range(k))}, model = '{model}', fit_on = '{path}',"
                    f" {TIGHT}) INTO labels_{path}")
        runs[path] = last_run(con)
        assert json.loads(runs[path][0])["fit_on"] == path
    by_patterns, by_rows = label_rows(con, "labels_patterns"), label_rows(con, "labels_rows")
    assert by_patterns.keys() == by_rows.keys() and len(by_rows) == 30_000
    for key, (label, probs, n_votes, provenance, weight) in by_patterns.items():
        other = by_rows[key]
        assert (label, n_votes, provenance) == (other[0], other[2], other[3])
        assert np.abs(np.array(probs) - np.array(other[1])).max() < 1e-6 and abs(weight - other[4]) < 1e-6
    assert np.abs(np.array(runs["patterns"][3]) - np.array(runs["rows"][3])).max() < 1e-6  # class balance
    if gold:
        assert sum(r[3] == "gold" for r in by_rows.values()) == 750
    if model == "majority":
        assert any(r[0] is None for r in by_rows.values())  # ties give no label either way
    if model == "label_model":
        assert abs(runs["patterns"][2] - runs["rows"][2]) <= 1  # EM iterations


def test_the_bound_decides_without_an_estimate_and_the_estimate_decides_otherwise():
    def never() -> int:
        raise AssertionError("the estimate should not be needed")

    assert choose_fit_path("auto", n_rows=200_000, m=10, k=2, estimate=never).path == "patterns"  # 3^10 <= 100,000
    assert choose_fit_path("rows", n_rows=100, m=3, k=2, estimate=never).path == "rows"
    assert choose_fit_path("patterns", n_rows=10**6, m=30, k=2, estimate=never).path == "patterns"
    share = fit_path.ROWS_SHARE
    assert choose_fit_path("auto", n_rows=1000, m=30, k=2, estimate=lambda: int(share * 1000) + 1).path == "rows"
    assert choose_fit_path("auto", n_rows=1000, m=30, k=2, estimate=lambda: int(share * 1000)).path == "patterns"


@pytest.mark.parametrize("m, expected", [(4, "patterns"), (30, "rows")])
def test_auto_takes_the_smaller_input(con, m, expected):
    """4 functions: at most 3^4 = 81 patterns over 5,000 rows; 30 functions: nearly every row its own."""
    data = synthetic_votes(n=5_000, m=m, k=2, seed=5)
    names = ", ".join(load_votes(con, data))
    message = con.execute(f"LABEL votes USING {names} WITH (classes = [0, 1]) INTO labels").message
    options, n_patterns, _, _ = last_run(con)
    assert json.loads(options)["fit_on"] == expected
    assert ("vote patterns, fitted per row" in message) == (expected == "rows")
    exact = len(np.unique(data.votes, axis=0))
    assert abs(n_patterns - exact) <= 0.1 * exact  # exact on the pattern path, DuckDB's estimate on the rows path
    assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 5_000


@pytest.mark.parametrize("m, path", [(10, "patterns"), (30, "rows")])
def test_label_completes_under_a_small_memory_limit(tmp_path, m, path):
    """Millions of rows with DuckDB held to 256 MB (its least for a few million distinct keys):
    the key check, the label matrix, the GROUP BY and the join writing the label table spill
    to DuckDB's temporary directory."""
    n = 3_000_000 if m == 10 else 1_000_000
    with engine.connect(str(tmp_path / "big.duckdb"), autocommit=True, progress="off", memory_limit="256MB",
                        threads=2) as con:
        con.execute(f"CREATE TABLE votes AS {synthetic_votes_query(n, m, k=2, seed=3)}")
        names = [f"lf{j}" for j in range(m)]
        for name in names:
            con.execute(f"CREATE LABELING FUNCTION {name} ON votes AS {name}")
        con.execute(f"LABEL votes USING {', '.join(names)} WITH (classes = [0, 1]) INTO labels")
        assert json.loads(last_run(con)[0])["fit_on"] == path
        rows, accuracy = con.execute("SELECT count(*), avg((l.label = v.truth)::DOUBLE) FROM labels l"
                                     " JOIN votes v USING (id)").fetchone()
        assert rows == n and accuracy > (0.8 if m == 10 else 0.95)
