"""How LABEL stores a label table (engine.labeling.storage): on the pattern path a view over the
rows' stored vote codes and the stored predictions per pattern, reading exactly as the joined
table would; replaced, dropped (as a table or a view) and swept without leaving storage
behind; atomic; readable by plain DuckDB."""
from __future__ import annotations

import duckdb
import numpy as np
import pytest

import engine
from engine.labeling.synthetic import synthetic_votes_query

N, M, K = 3000, 5, 3


def _setup(con: engine.Connection, gold: bool = True) -> None:
    con.execute(f"CREATE TABLE votes AS {synthetic_votes_query(N, M, K, seed=11)}")
    for j in range(M):
        con.execute(f"CREATE LABELING FUNCTION lf{j} ON votes AS lf{j}")
    if gold:  # gold labels unrelated to the votes: they must win over them anyway
        con.execute("ADD GOLD LABELS TO votes FROM (SELECT id, (id % 3) AS label FROM votes WHERE id % 97 = 0)")


LABEL = "LABEL votes USING lf0, lf1, lf2, lf3, lf4 WITH (classes = [0, 1, 2]{extra}) INTO {replace}{target}"


def _label(con: engine.Connection, target: str, extra: str = "", replace: bool = False) -> engine.Cursor:
    return con.execute(LABEL.format(extra=extra, target=target, replace="OR REPLACE " if replace else ""))


def _kind(con: engine.Connection, name: str) -> str | None:
    row = con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()
    return row[0] if row else None


def _stored(con: engine.Connection) -> list[str]:
    return sorted(r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'mallard' AND starts_with(table_name, '__label_')"
    ).fetchall())


def _rows(con: engine.Connection, name: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM {name} ORDER BY id").fetchall()


def test_pattern_path_label_table_is_a_view_equal_to_the_joined_table(con):
    _setup(con)
    _label(con, "as_view")
    _label(con, "as_table", ", storage = 'table'")
    assert (_kind(con, "as_view"), _kind(con, "as_table")) == ("VIEW", "BASE TABLE")
    assert con.execute("DESCRIBE as_view").fetchall() == con.execute("DESCRIBE as_table").fetchall()
    view, table = _rows(con, "as_view"), _rows(con, "as_table")
    assert len(view) == N and view == table
    gold = {r[0]: r for r in view if r[4] == "gold"}
    assert len(gold) == len(range(0, N, 97))
    assert all(r[1] == r[0] % 3 and r[3 - 1][r[0] % 3] == 1.0 and r[5] == 1.0 for r in gold.values())
    assert len(_stored(con)) == 2  # the view's rows and patterns; the table stores nothing beside itself
    options = [r[0] for r in con.execute("SELECT json_extract_string(options, '$.storage') FROM mallard.label_runs"
                                         " ORDER BY run_id").fetchall()]
    assert options == ["view", "table"]


def test_label_share_without_gold_matches_the_view(con):
    _setup(con, gold=False)
    _label(con, "labels")
    share = con.execute("SELECT label_share FROM mallard.label_runs").fetchone()[0]
    counted = dict(con.execute("SELECT label, count(*) FROM labels WHERE label IS NOT NULL GROUP BY label").fetchall())
    assert share == pytest.approx([counted.get(c, 0) / N for c in range(K)])


def test_replacing_swaps_view_and_table_and_frees_the_old_storage(con):
    _setup(con)
    _label(con, "labels")
    first = _stored(con)
    expected = _rows(con, "labels")
    _label(con, "labels", ", storage = 'table'", replace=True)
    assert _kind(con, "labels") == "BASE TABLE" and _stored(con) == [] and _rows(con, "labels") == expected
    _label(con, "labels", replace=True)
    assert _kind(con, "labels") == "VIEW" and len(_stored(con)) == 2 and _stored(con) != first
    _label(con, "labels", replace=True)
    assert len(_stored(con)) == 2 and _rows(con, "labels") == expected
    with pytest.raises(engine.ProgrammingError, match="already exists"):
        _label(con, "labels")


def test_drop_table_or_view_of_a_label_view_drops_its_storage(con):
    _setup(con)
    _label(con, "a")
    _label(con, "b")
    con.execute("DROP TABLE a")
    assert _kind(con, "a") is None and len(_stored(con)) == 2
    con.execute("DROP TABLE IF EXISTS a")  # gone: nothing to do, no error
    con.execute("DROP VIEW b")
    assert _kind(con, "b") is None and _stored(con) == []
    con.execute("CREATE VIEW mine AS SELECT 1 AS x")  # not a label view: DuckDB's own refusal stands
    with pytest.raises(engine.ProgrammingError, match="is of type View"):
        con.execute("DROP TABLE mine")
    assert _kind(con, "mine") == "VIEW"


def test_rolled_back_drop_keeps_the_view_and_its_storage(db_path):
    with engine.connect(db_path, progress="off") as con:
        _setup(con)
        _label(con, "labels")
        con.commit()
        expected, stored = _rows(con, "labels"), _stored(con)
        con.execute("DROP TABLE labels")
        assert _kind(con, "labels") is None and _stored(con) == []
        con.rollback()
        assert _rows(con, "labels") == expected and _stored(con) == stored


def test_failed_label_leaves_no_storage(con):
    _setup(con, gold=False)
    con.execute("CREATE LABELING FUNCTION bad ON votes AS CASE WHEN id = 2999 THEN 7 ELSE lf0 END")
    with pytest.raises(engine.DataError, match="voted 7"):
        con.execute("LABEL votes USING bad, lf1, lf2 WITH (classes = [0, 1, 2], fit_on = 'patterns') INTO labels")
    assert _kind(con, "labels") is None and _stored(con) == []


def test_storage_no_view_reads_is_swept_at_connect_and_plain_duckdb_reads_the_view(db_path):
    with engine.connect(db_path, autocommit=True, progress="off") as con:
        _setup(con)
        _label(con, "kept")
        _label(con, "dropped")
        kept = _rows(con, "kept")
    raw = duckdb.connect(str(db_path))  # plain DuckDB, no Mallard: the view reads; a drop there leaves storage
    assert raw.execute("SELECT * FROM kept ORDER BY id").fetchall() == kept
    raw.execute("DROP VIEW dropped")
    assert len(raw.execute("SELECT * FROM duckdb_tables() WHERE starts_with(table_name, '__label_')").fetchall()) == 4
    raw.close()
    with engine.connect(db_path, autocommit=True, progress="off") as con:
        assert len(_stored(con)) == 2 and _rows(con, "kept") == kept


@pytest.mark.parametrize("k", [2, 3, 5])
def test_rows_path_label_view_computes_each_rows_label_as_the_table_does(con, k):
    """On the rows path the view computes probabilities from the rows' vote codes and the label
    model's lookup lists: the labels, votes and provenance equal the written table's, the
    probabilities within a rounding of exp."""
    con.execute(f"CREATE TABLE votes AS {synthetic_votes_query(4000, 14, k, seed=k)}")
    for j in range(14):
        con.execute(f"CREATE LABELING FUNCTION lf{j} ON votes AS lf{j}")
    con.execute("ADD GOLD LABELS TO votes FROM (SELECT id, (id % 2) AS label FROM votes WHERE id % 50 = 0)")
    lfs = ", ".join(f"lf{j}" for j in range(14))
    for name, extra in (("as_view", ""), ("as_table", ", storage = 'table'")):
        con.execute(f"LABEL votes USING {lfs} WITH (classes = {list(range(k))}, fit_on = 'rows'{extra}) INTO {name}")
    assert (_kind(con, "as_view"), _kind(con, "as_table")) == ("VIEW", "BASE TABLE")
    assert con.execute("DESCRIBE as_view").fetchall() == con.execute("DESCRIBE as_table").fetchall()
    view, table = _rows(con, "as_view"), _rows(con, "as_table")
    assert [(r[0], r[1], r[3], r[4]) for r in view] == [(r[0], r[1], r[3], r[4]) for r in table]
    assert np.allclose([r[2] for r in view], [r[2] for r in table], rtol=0, atol=1e-12)
    assert np.allclose([r[5] for r in view], [r[5] for r in table], rtol=0, atol=1e-12)
    shares = [r[0] for r in con.execute("SELECT label_share FROM mallard.label_runs ORDER BY run_id").fetchall()]
    assert np.allclose(shares[0], shares[1])
    assert len(_stored(con)) == 2  # the rows and the model's lookup lists


def test_majority_on_rows_writes_a_table_and_agrees_with_the_pattern_path(con):
    _setup(con, gold=False)
    _label(con, "per_row", ", model = 'majority', fit_on = 'rows'")
    _label(con, "by_pattern", ", model = 'majority', fit_on = 'patterns'")
    assert (_kind(con, "per_row"), _kind(con, "by_pattern")) == ("BASE TABLE", "VIEW")
    a, b = _rows(con, "per_row"), _rows(con, "by_pattern")
    assert [r[0] for r in a] == [r[0] for r in b] and [r[1] for r in a] == [r[1] for r in b]
    assert np.allclose([r[2] for r in a], [r[2] for r in b], atol=1e-9)
    assert _stored(con) and all("__label_model_" not in t for t in _stored(con))


@pytest.mark.parametrize("statement", ["INSERT INTO labels (id) VALUES (1)", "UPDATE labels SET label = 0",
                                       "DELETE FROM labels WHERE id < 10", "ALTER TABLE labels ADD COLUMN note TEXT"])
def test_changing_a_label_view_in_place_says_what_to_do_instead(con, statement):
    _setup(con, gold=False)
    _label(con, "labels")
    before = _rows(con, "labels")
    with pytest.raises(engine.ProgrammingError, match=r"labels is a label table stored as a view .* LABEL \.\.\. "
                                                      r"INTO OR REPLACE labels.*storage = 'table'"):
        con.execute(statement)
    assert _rows(con, "labels") == before and _kind(con, "labels") == "VIEW"
    con.execute("CREATE TABLE plain_table (id INTEGER)")  # any other refusal keeps DuckDB's words alone
    con.execute("CREATE VIEW plain_view AS SELECT * FROM plain_table")
    with pytest.raises(engine.ProgrammingError) as refused:
        con.execute("UPDATE plain_view SET id = 1")
    assert "label table" not in str(refused.value)
