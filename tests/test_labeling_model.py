"""The label model on synthetic label matrices with known truth (seeded), through LABEL and directly."""
from __future__ import annotations

import numpy as np
import pytest

from engine.labeling.dawid_skene import DawidSkene
from engine.labeling.majority import MajorityVote
from engine.labeling.matrix import CodeLayout
from engine.labeling.patterns import VotePatterns
from engine.labeling.synthetic import SyntheticVotes, synthetic_votes


def load_votes(con, data: SyntheticVotes, table: str = "votes") -> list[str]:
    """A table (id, lf0, ...) of class indexes (NULL abstains) and one SQL function per column."""
    con.duckdb_connection.register("synthetic_votes", data.to_arrow())
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM synthetic_votes")
    con.duckdb_connection.unregister("synthetic_votes")
    names = [f"lf{j}" for j in range(data.votes.shape[1])]
    for name in names:
        con.execute(f"CREATE OR REPLACE LABELING FUNCTION {name} ON {table} AS {name}")
    return names


def label_accuracy(con, data: SyntheticVotes, table: str) -> float:
    frame = con.execute(f"SELECT id, label FROM {table} ORDER BY id").fetch_df()
    labels = frame["label"].to_numpy(dtype=np.float64, na_value=np.nan)  # a tie (NULL) never matches
    return float((labels == data.truth[frame["id"].to_numpy()]).mean())


@pytest.mark.parametrize(("m", "k", "balance"), [(10, 2, None), (10, 3, [0.6, 0.3, 0.1])])
def test_label_model_recovers_known_accuracies_and_class_balance(con, m, k, balance):
    data = synthetic_votes(n=100_000, m=m, k=k, seed=7, balance=balance)
    names = load_votes(con, data)
    classes = ", ".join(str(c) for c in range(k))
    con.execute(f"LABEL votes USING {', '.join(names)} WITH (classes = [{classes}], seed = 0) INTO labels")
    learned = np.array([r[8] for r in con.execute("SHOW LABEL ANALYSIS FOR labels").fetchall()])
    assert np.abs(learned - data.empirical_accuracies()).max() < 0.01
    assert np.abs(learned - data.accuracy).max() < 0.02  # the generating accuracies, up to sampling noise
    balance_found = np.array([r[1] for r in con.execute("SHOW CLASS BALANCE FOR labels").fetchall()])
    assert np.abs(balance_found - data.balance).max() < 0.01
    con.execute(f"LABEL votes USING {', '.join(names)} WITH (classes = [{classes}], model = 'majority') INTO majority")
    assert label_accuracy(con, data, "labels") > label_accuracy(con, data, "majority") + 0.02


def test_same_seed_gives_identical_labels(con):
    data = synthetic_votes(n=20_000, m=6, k=3, seed=3)
    names = ", ".join(load_votes(con, data))
    for target in ("first", "second"):
        con.execute(f"LABEL votes USING {names} WITH (classes = [0, 1, 2], seed = 11) INTO {target}")
    query = "SELECT id, label, probs, n_votes, provenance, weight FROM {} ORDER BY id"
    assert con.execute(query.format("first")).fetchall() == con.execute(query.format("second")).fetchall()
    runs = con.execute("SELECT class_balance, iterations FROM mallard.label_runs ORDER BY run_id").fetchall()
    assert runs[0] == runs[1]


def test_fitting_on_patterns_equals_fitting_on_rows():
    data = synthetic_votes(n=5_000, m=5, k=2, seed=2)
    patterns = VotePatterns.from_rows(data.votes, k=2)
    rows = VotePatterns.each_row(data.votes, k=2)
    assert len(patterns) < len(rows) / 10
    by_pattern, by_row = DawidSkene(k=2).fit(patterns), DawidSkene(k=2).fit(rows)
    assert np.allclose(by_pattern.theta, by_row.theta) and np.allclose(by_pattern.prior, by_row.prior)
    assert by_pattern.iterations == by_row.iterations


def test_abstaining_is_evidence_the_model_learns():
    """Functions that only ever vote 'spam' (class 1) and abstain far more on ham: a row
    nobody voted on should then be ham, which majority vote cannot say."""
    rng = np.random.default_rng(0)
    truth = (rng.random(20_000) < 0.2).astype(np.int8)
    votes = np.zeros((len(truth), 4), np.int8)
    for j, (on_spam, on_ham) in enumerate([(0.6, 0.02), (0.5, 0.03), (0.4, 0.05), (0.7, 0.1)]):
        fires = rng.random(len(truth)) < np.where(truth == 1, on_spam, on_ham)
        votes[:, j] = np.where(fires, 2, 0)
    patterns = VotePatterns.from_rows(votes, k=2)
    fitted = DawidSkene(k=2).fit(patterns)
    silent = np.flatnonzero(patterns.n_votes() == 0)
    assert fitted.predict_proba(patterns)[silent[0]].argmax() == 0
    assert abs(fitted.class_balance[1] - 0.2) < 0.02
    assert np.allclose(MajorityVote(k=2).fit(patterns).predict_proba(patterns)[silent[0]], [0.5, 0.5])


def test_majority_vote_ties_give_no_label(con):
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1, 0, 1), (2, 1, 1), (3, NULL, NULL)) v(id, a, b)")
    con.execute("CREATE LABELING FUNCTION fa ON t AS a")
    con.execute("CREATE LABELING FUNCTION fb ON t AS b")
    con.execute("LABEL t USING fa, fb WITH (model = 'majority', classes = [0, 1]) INTO mv")
    assert con.execute("SELECT id, label, probs, n_votes, weight FROM mv ORDER BY id").fetchall() == [
        (1, None, [0.5, 0.5], 2, 0.0), (2, 1, [0.0, 1.0], 2, 1.0), (3, None, [0.5, 0.5], 0, 0.0)]


@pytest.mark.parametrize(("m", "k"), [(3, 2), (31, 3), (40, 7)])
def test_vote_codes_round_trip_through_the_sql_that_packs_them(m, k):
    """Votes in a DuckDB table -> the BIGINT code columns LABEL's query computes -> votes again."""
    import duckdb
    import pyarrow as pa
    from sqlglot import exp

    layout = CodeLayout(m, k)
    votes = np.random.default_rng(m).integers(0, k + 1, size=(50, m)).astype(np.int8)
    duck = duckdb.connect()
    duck.register("votes", pa.table({f"v{j}": votes[:, j] for j in range(m)}))
    query = exp.select(*layout.code_expressions([exp.column(f"v{j}") for j in range(m)])).from_("votes")
    packed = [np.array(c, dtype=np.int64) for c in zip(*duck.execute(query.sql("duckdb")).fetchall())]
    assert np.array_equal(layout.groups.decode(layout.group_codes(packed)), votes)
    assert np.array_equal(VotePatterns.each_row(votes, k).votes, votes)


def test_group_statistics_equal_dense_ones():
    votes = np.random.default_rng(5).integers(0, 4, size=(300, 14)).astype(np.int8)
    patterns = VotePatterns.each_row(votes, k=3)
    assert np.array_equal(patterns.tally().T, np.stack([(votes == y + 1).sum(axis=1) for y in range(3)], axis=1))
    weights = np.random.default_rng(6).random(300)
    dense = np.array([[weights[votes[:, j] == v].sum() for v in range(4)] for j in range(14)])
    assert np.allclose(patterns.marginals(weights)[:, :, 0], dense)
