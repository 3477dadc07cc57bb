"""LABEL and its companions end to end: the label table, gold labels, LF analysis, the catalog
record, and every bad input failing clearly with nothing written."""
from __future__ import annotations

import json

import pytest

import engine

SMALL = """
CREATE TABLE t AS SELECT * FROM (VALUES
    (1, 'x', 'x', NULL), (2, 'x', 'y', 'y'), (3, NULL, 'y', 'y'),
    (4, 'y', NULL, NULL), (5, NULL, NULL, NULL), (6, 'x', 'x', 'x')) v(id, a, b, c);
CREATE LABELING FUNCTION fa ON t AS a;
CREATE LABELING FUNCTION fb ON t AS b;
CREATE LABELING FUNCTION fc ON t AS c;
"""


@pytest.fixture
def small(con):
    con.execute(SMALL)
    return con


def tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}


def runs(con) -> int:
    return con.execute("SELECT count(*) FROM mallard.label_runs").fetchone()[0]


def test_label_table_has_one_typed_row_per_input_row(small):
    cur = small.execute("LABEL t USING fa, fb, fc WITH (classes = ['x', 'y']) INTO labels")
    assert cur.rowcount == 6 and cur.message.startswith("LABEL: 6 rows of t into labels")
    described = small.execute("DESCRIBE labels").fetchall()
    assert [(r[0], r[1]) for r in described] == [
        ("id", "INTEGER"), ("label", "VARCHAR"), ("probs", "DOUBLE[]"), ("n_votes", "INTEGER"),
        ("provenance", "ENUM('weak', 'gold')"), ("weight", "DOUBLE")]
    rows = small.execute("SELECT id, label, probs, n_votes, provenance, weight FROM labels ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r[3] for r in rows] == [2, 3, 2, 1, 0, 3]
    for _, label, probs, _, provenance, weight in rows:
        assert provenance == "weak" and abs(sum(probs) - 1) < 1e-9
        assert label == ("x", "y")[probs.index(max(probs))] and weight == pytest.approx(max(probs))
    assert rows[5][1] == "x" and rows[2][1] == "y"  # unanimous rows


def assert_analysis(rows, expected):
    assert [r[:2] + r[5:7] for r in rows] == [e[:2] + e[5:7] for e in expected]
    assert [r[2:5] + r[7:8] for r in rows] == [pytest.approx(e[2:5] + e[7:8]) for e in expected]


def test_lf_analysis_equals_a_hand_computation(small):
    small.execute("ADD GOLD LABELS TO t FROM (SELECT * FROM (VALUES (1, 'x'), (2, 'y'), (4, 'x'), (6, 'x')) g(id, label))")
    # By hand, over the 6 rows (gold on rows 1, 2, 4, 6):
    #   fa votes rows 1 2 4 6: coverage 4/6; with another function on 1 2 6: overlaps 3/6; row 2 disagrees:
    #      conflicts 1/6; against gold: row 1 right, 2 wrong, 4 wrong, 6 right -> 2 correct, 2 incorrect
    #   fb votes rows 1 2 3 6 (all with another): 4/6, 4/6, 1/6; gold rows 1 2 6 all right -> 3, 0
    #   fc votes rows 2 3 6: 3/6, 3/6, 1/6; gold rows 2 6 right -> 2, 0
    expected = [
        ("fa", ["x", "y"], 4 / 6, 3 / 6, 1 / 6, 2, 2, 0.5),
        ("fb", ["x", "y"], 4 / 6, 4 / 6, 1 / 6, 3, 0, 1.0),
        ("fc", ["x", "y"], 3 / 6, 3 / 6, 1 / 6, 2, 0, 1.0),
    ]
    analyzed = small.execute("ANALYZE LABELING FUNCTIONS fa, fb, fc ON t").fetchall()
    assert_analysis(analyzed, expected)
    assert [r[8] for r in analyzed] == [None, None, None]  # no model, no learned accuracy
    small.execute("LABEL t USING fa, fb, fc WITH (model = 'majority') INTO labels")
    recorded = small.execute("SHOW LABEL ANALYSIS FOR labels").fetchall()
    assert_analysis(recorded, expected)
    assert [d[0] for d in small.execute("SHOW LABEL ANALYSIS FOR labels").description] == [
        "lf", "polarity", "coverage", "overlaps", "conflicts", "correct", "incorrect", "emp_acc", "learned_acc",
        "failures"]


def test_gold_labels_override_weak_ones(small):
    small.execute("LABEL t USING fa, fb, fc WITH (model = 'majority') INTO weak")
    assert small.execute("SELECT label FROM weak WHERE id = 4").fetchone() == ("y",)
    small.execute("ADD GOLD LABELS TO t FROM (SELECT 4 AS id, 'y' AS label)")
    cur = small.execute("ADD GOLD LABELS TO t FROM (SELECT 4 AS id, 'x' AS label UNION ALL SELECT 5, 'y')")
    assert cur.rowcount == 2  # the second gold label for row 4 replaces the first
    small.execute("LABEL t USING fa, fb, fc WITH (model = 'majority') INTO mixed")
    rows = small.execute("SELECT id, label, probs, provenance, weight FROM mixed WHERE id IN (3, 4, 5) ORDER BY id").fetchall()
    assert rows == [(3, "y", [0.0, 1.0], "weak", 1.0), (4, "x", [1.0, 0.0], "gold", 1.0), (5, "y", [0.0, 1.0], "gold", 1.0)]
    run = small.execute("SELECT n_gold, label_share FROM mallard.label_runs ORDER BY run_id DESC LIMIT 1").fetchone()
    assert run[0] == 2
    shares = dict(small.execute("SELECT label, count(*) / 6 FROM mixed GROUP BY label").fetchall())
    assert run[1] == pytest.approx([shares.get("x", 0), shares.get("y", 0)])


def test_each_run_is_recorded_with_definitions_options_and_timing(small):
    small.execute("LABEL t USING fc, fa, fb WITH (classes = ['x', 'y'], seed = 4, max_iter = 20) INTO labels")
    run = small.execute(
        "SELECT run_id, target_table, source_table, key_column, model, classes, label_type, seed, options, n_rows,"
        " n_covered, n_patterns, n_gold, iterations, class_balance, apply_seconds, fit_seconds, write_seconds,"
        " total_seconds FROM mallard.label_runs").fetchone()
    assert run[1:8] == ("labels", "t", "id", "label_model", ["x", "y"], "VARCHAR", 4)
    assert json.loads(run[8]) == {"classes": ["x", "y"], "fault_tolerant": False, "key": "id", "max_iter": 20,
                                  "model": "label_model", "seed": 4, "tol": 1e-5, "fit_on": "rows", "storage": "view"}
    assert run[9:13] == (6, 5, 6, 0)  # every row has its own vote pattern (so the fit read the rows)
    assert 1 <= run[13] <= 20 and sum(run[14]) == pytest.approx(1)
    assert all(s >= 0 for s in run[15:18]) and run[18] >= sum(run[15:18])
    functions = small.execute(
        "SELECT position, lf, kind, definition, learned_acc FROM mallard.label_run_functions WHERE run_id = ?"
        " ORDER BY position", [run[0]]).fetchall()
    assert [f[:4] for f in functions] == [(0, "fc", "sql", "c"), (1, "fa", "sql", "a"), (2, "fb", "sql", "b")]
    assert all(0 <= f[4] <= 1 for f in functions)
    small.execute("DROP LABELING FUNCTION fa")  # the run keeps the definition it used
    assert small.execute("SELECT count(*) FROM mallard.label_run_functions WHERE lf = 'fa'").fetchone() == (1,)


def test_labeling_function_catalog(con):
    con.execute("CREATE TABLE sms AS SELECT 1 AS id, 'Free entry' AS text")
    con.execute("CREATE LABELING FUNCTION Lf_Free ON sms AS CASE WHEN text ILIKE '%free%' THEN 'spam' END")
    assert con.execute("SHOW LABELING FUNCTIONS ON sms").fetchall() == [
        ("lf_free", "sms", "sql", "CASE WHEN text ILIKE '%free%' THEN 'spam' END")]
    with pytest.raises(engine.ProgrammingError, match="lf_free already exists; use CREATE OR REPLACE"):
        con.execute("CREATE LABELING FUNCTION lf_free ON sms AS NULL")
    con.execute("CREATE OR REPLACE LABELING FUNCTION lf_free ON sms AS CASE WHEN text LIKE 'F%' THEN 'spam' END")
    assert "LIKE 'F%'" in con.execute("SHOW LABELING FUNCTIONS").fetchall()[0][3]
    con.execute("DROP LABELING FUNCTION LF_FREE")
    assert con.execute("SHOW LABELING FUNCTIONS ON sms").fetchall() == []
    con.execute("DROP LABELING FUNCTION IF EXISTS lf_free")
    with pytest.raises(engine.ProgrammingError, match="labeling function lf_free does not exist"):
        con.execute("DROP LABELING FUNCTION lf_free")


def test_functions_may_use_subqueries_and_windows_but_not_bare_aggregates(small):
    small.execute("CREATE LABELING FUNCTION above_mean ON t AS CASE WHEN id > (SELECT avg(id) FROM t) THEN 'y' END")
    small.execute("CREATE LABELING FUNCTION first_half ON t AS CASE WHEN id <= count(*) OVER () / 2 THEN 'x' END")
    with pytest.raises(engine.ProgrammingError, match="expected a per-row expression, found an aggregate"):
        small.execute("CREATE LABELING FUNCTION total ON t AS CASE WHEN count(*) > 3 THEN 'x' END")
    small.execute("LABEL t USING above_mean, first_half, fb WITH (model = 'majority') INTO labels")
    assert small.execute("SELECT id, label FROM labels ORDER BY id").fetchall() == [
        (1, "x"), (2, None), (3, None), (4, "y"), (5, "y"), (6, None)]


def test_classes_are_inferred_and_rowid_is_the_default_key(con):
    con.execute("CREATE TABLE n AS SELECT range AS x FROM range(30)")
    for name, expression in (("small", "CASE WHEN x < 10 THEN 0 END"), ("big", "CASE WHEN x >= 20 THEN 2 END"),
                             ("middle", "CASE WHEN x BETWEEN 8 AND 22 THEN 1 END")):
        con.execute(f"CREATE LABELING FUNCTION {name} ON n AS {expression}")
    con.execute("LABEL n USING small, big, middle INTO n_labels")
    assert con.execute("SELECT classes, label_type, key_column FROM mallard.label_runs").fetchone() == (
        ["0", "1", "2"], "BIGINT", "rowid")
    assert con.execute("SELECT label FROM n_labels WHERE rowid = 25").fetchone() == (2,)
    assert con.execute("SELECT count(*) FROM n_labels l JOIN n ON l.rowid = n.rowid").fetchone() == (30,)


def test_labels_and_record_survive_reopening_the_file(db_path):
    with engine.connect(str(db_path), progress="off") as con:
        con.execute(SMALL)
        con.execute("LABEL t USING fa, fb, fc INTO labels")
    with engine.connect(str(db_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM labels").fetchone() == (6,)
        assert len(con.execute("SHOW LABEL ANALYSIS FOR labels").fetchall()) == 3
        assert len(con.execute("SHOW LABELING FUNCTIONS").fetchall()) == 3


# Bad input: a clear error, nothing written ------------------------------------------------------


@pytest.mark.parametrize(("statement", "error", "message"), [
    ("LABEL t USING fa, fb, fz INTO out", engine.ProgrammingError, "unknown labeling function fz; known: fa, fb, fc"),
    ("LABEL t USING fa, fb INTO out", engine.ProgrammingError,
     "the label model needs at least 3 labeling functions, found 2 (fa, fb)"),
    ("LABEL t USING fa, fb, fc WITH (classes = ['x', 'z']) INTO out", engine.DataError,
     "labeling function fa voted y on the row with key 4, which is not one of the classes ['x', 'z']"),
    ("LABEL t USING fa, fb, fc WITH (colour = 'red') INTO out", engine.ProgrammingError,
     "unknown LABEL option 'colour'; expected one of classes, fault_tolerant, fit_on, key"),
    ("LABEL t USING fa, fb, fc WITH (model = 'snorkel') INTO out", engine.DataError,
     "LABEL option model: expected one of 'label_model', 'majority', found 'snorkel'"),
    ("LABEL t USING fa, fb, fc WITH (classes = ['x']) INTO out", engine.DataError, "expected at least 2 classes"),
    ("LABEL t USING fa, fb, fa INTO out", engine.ProgrammingError, "labeling function fa is listed twice"),
    ("LABEL t USING fa, fb, fc WITH (key = a) INTO out", engine.DataError, "key column a of t has NULLs"),
    ("LABEL t USING fa, fb, fc WITH (key = nope) INTO out", engine.ProgrammingError,
     "key column nope is not a column of t (its columns: id, a, b, c)"),
    ("LABEL missing USING fa, fb, fc INTO out", engine.ProgrammingError, "LABEL: table missing does not exist"),
    ("LABEL t USING fa, fb, fc INTO t", engine.ProgrammingError, "cannot write its labels INTO the table it labels"),
])
def test_bad_label_statements_fail_clearly_and_write_nothing(small, statement, error, message):
    before = tables(small)
    with pytest.raises(error) as info:
        small.execute(statement)
    assert message in str(info.value)
    assert tables(small) == before and runs(small) == 0


def test_an_empty_table_has_nothing_to_label(small):
    small.execute("DELETE FROM t")
    with pytest.raises(engine.DataError, match="LABEL: table t has no rows to label"):
        small.execute("LABEL t USING fa, fb, fc WITH (classes = ['x', 'y']) INTO out")
    assert "out" not in tables(small) and runs(small) == 0


def test_a_view_needs_a_key_column(small):
    small.execute("CREATE VIEW keyless AS SELECT a, b, c FROM t")
    with pytest.raises(engine.ProgrammingError, match=r"keyless has no column named id and no rowid \(it is a view\)"):
        small.execute("LABEL keyless USING fa, fb, fc INTO out")
    small.execute("CREATE VIEW keyed AS SELECT id AS msg, a, b, c FROM t")
    small.execute("LABEL keyed USING fa, fb, fc WITH (key = msg) INTO out")
    assert small.execute("SELECT count(*) FROM out").fetchone() == (6,)


def test_label_into_an_existing_table_needs_or_replace(small):
    small.execute("CREATE TABLE out AS SELECT 42 AS answer")
    with pytest.raises(engine.ProgrammingError, match=r"table out already exists; use LABEL \.\.\. INTO OR REPLACE out"):
        small.execute("LABEL t USING fa, fb, fc INTO out")
    assert small.execute("SELECT * FROM out").fetchall() == [(42,)] and runs(small) == 0
    small.execute("LABEL t USING fa, fb, fc INTO OR REPLACE out")
    assert small.execute("SELECT count(*) FROM out").fetchone() == (6,)


def test_a_labeling_function_over_a_missing_column_is_named(small):
    with pytest.raises(engine.ProgrammingError, match=r"labeling function lf_d reads column d, which t does not have "
                                                      r"\(its columns: id, a, b, c\)"):
        small.execute("CREATE LABELING FUNCTION lf_d ON t AS CASE WHEN d > 1 THEN 'x' END")
    assert small.execute("SELECT count(*) FROM mallard.labeling_functions WHERE name = 'lf_d'").fetchone() == (0,)
    small.execute("CREATE TABLE narrow AS SELECT id, a, b FROM t")
    with pytest.raises(engine.ProgrammingError, match="labeling function fc reads column c, which narrow does not have"):
        small.execute("LABEL narrow USING fa, fb, fc INTO out")
    with pytest.raises(engine.ProgrammingError, match="labeling function bad does not run over t"):
        small.execute("CREATE LABELING FUNCTION bad ON t AS a + 1")
    assert "out" not in tables(small) and runs(small) == 0


def test_bad_gold_labels_fail_clearly_and_write_nothing(small):
    bad = [
        ("ADD GOLD LABELS TO t FROM (SELECT 99 AS id, 'x' AS label)", engine.DataError, "no row of t has id = 99"),
        ("ADD GOLD LABELS TO t FROM (SELECT 1 AS id, 'x' AS verdict)", engine.ProgrammingError,
         "the label column label is not among the source's columns (id, verdict)"),
        ("ADD GOLD LABELS TO t FROM (SELECT 1 AS id, 'x' AS label UNION ALL SELECT 1, 'y')", engine.DataError,
         "more than one gold label for the same key"),
        ("ADD GOLD LABELS TO t FROM (SELECT 1 AS id, NULL AS label)", engine.DataError, "NULL key or label"),
        ("ADD GOLD LABELS TO t FROM (SELECT 1 AS id, 'x' AS label) WITH (weight = 2)", engine.ProgrammingError,
         "unknown ADD GOLD LABELS option 'weight'"),
        ("ADD GOLD LABELS TO nowhere FROM (SELECT 1 AS id, 'x' AS label)", engine.ProgrammingError,
         "table nowhere does not exist"),
    ]
    for statement, error, message in bad:
        with pytest.raises(error) as info:
            small.execute(statement)
        assert message in str(info.value), statement
    assert small.execute("SELECT count(*) FROM mallard.gold_labels").fetchone() == (0,)
    small.execute("ADD GOLD LABELS TO t FROM (SELECT 1 AS id, 'maybe' AS label)")
    with pytest.raises(engine.DataError, match=r"the gold label maybe of the row with key 1 is not one of the classes"):
        small.execute("LABEL t USING fa, fb, fc WITH (classes = ['x', 'y']) INTO out")
    assert "out" not in tables(small) and runs(small) == 0


def test_statements_take_question_mark_parameters(small):
    cur = small.execute("ADD GOLD LABELS TO t FROM (SELECT id, a AS label FROM t WHERE a IS NOT NULL AND id < ?)", [3])
    assert cur.rowcount == 2
    small.execute("LABEL t USING fa, fb, fc WITH (seed = ?, model = ?) INTO labels", [5, "majority"])
    assert small.execute("SELECT seed, model, n_gold FROM mallard.label_runs").fetchone() == (5, "majority", 2)
    with pytest.raises(engine.ProgrammingError, match="expected 1 parameter"):
        small.execute("LABEL t USING fa, fb, fc WITH (seed = ?) INTO OR REPLACE labels", [1, 2])


def test_a_declared_primary_key_is_trusted_and_used(con):
    con.execute("CREATE TABLE p (msg INTEGER PRIMARY KEY, a VARCHAR, b VARCHAR, c VARCHAR)")
    con.execute("INSERT INTO p VALUES (10, 'x', 'x', NULL), (20, 'y', 'y', 'y'), (30, NULL, 'x', 'x')")
    for name in "abc":
        con.execute(f"CREATE LABELING FUNCTION p{name} ON p AS {name}")
    con.execute("LABEL p USING pa, pb, pc WITH (key = msg, model = 'majority') INTO p_labels")
    assert con.execute("SELECT msg, label FROM p_labels ORDER BY msg").fetchall() == [(10, "x"), (20, "y"), (30, "x")]


def test_show_label_analysis_of_a_table_no_label_run_wrote(small):
    with pytest.raises(engine.ProgrammingError, match="no LABEL run wrote t"):
        small.execute("SHOW LABEL ANALYSIS FOR t")


def test_a_failed_label_inside_a_manual_transaction_rolls_it_back(db_path):
    con = engine.connect(str(db_path), progress="off")
    try:
        con.execute(SMALL)
        con.commit()
        con.execute("CREATE TABLE scratch AS SELECT 1 AS x")
        with pytest.raises(engine.DataError):
            con.execute("LABEL t USING fa, fb, fc WITH (classes = ['x', 'q']) INTO out")
        con.rollback()
        assert "out" not in tables(con) and "scratch" not in tables(con)
        con.execute("LABEL t USING fa, fb, fc INTO out")
        con.commit()
        assert con.execute("SELECT count(*) FROM out").fetchone() == (6,)
    finally:
        con.close()
