"""Python labeling functions: the decorator's guards, agreement with SQL functions on the
real SMS data, vectorized batches, strict and fault-tolerant failures, atomicity."""
from __future__ import annotations

import pyarrow as pa
import pytest

import engine
from engine.extensions import DECLARED
from tests.conftest import data_file
from tests.labeling_sms import SMS_LFS, create_sms_lfs, load_sms, sms_lf_python
from udfs.labeling import labeling_function, register_labeling_function


@pytest.fixture(autouse=True)
def clean_registry():
    """Functions declared by a test are forgotten after it."""
    before = dict(DECLARED.labeling_functions)
    yield
    DECLARED.labeling_functions.clear()
    DECLARED.labeling_functions.update(before)


@pytest.fixture
def sms(con):
    load_sms(con, data_file("spam_collection.tsv"))
    return con


def tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}


def test_decorator_without_parentheses_is_a_clear_type_error():
    with pytest.raises(TypeError, match=r"needs parentheses and a table: write @labeling_function\(on='<table>'\)"):
        @labeling_function
        def lf_oops(text):
            return None


def test_decorator_needs_a_table_and_plain_column_parameters():
    with pytest.raises(TypeError, match="needs on='<table name>'"):
        labeling_function(name="lf_nowhere")
    with pytest.raises(TypeError, match="expected plain parameters named after the columns"):
        labeling_function(name="lf_star", on="sms")(lambda *columns: None)


def test_duplicate_names_are_refused_unless_replacing():
    labeling_function(name="lf_twice", on="sms")(lambda text: None)
    with pytest.raises(ValueError, match="a labeling function named 'lf_twice' is already registered; pass replace=True"):
        labeling_function(name="lf_twice", on="sms")(lambda text: "spam")
    replaced = labeling_function(name="LF_Twice", on="sms", replace=True)(lambda text: "spam")
    assert DECLARED.labeling_functions["lf_twice"] is replaced and replaced("anything") == "spam"


def test_sql_and_python_functions_give_the_same_labels(sms):
    sql_names = create_sms_lfs(sms)
    for name, vote, kind, argument in SMS_LFS:
        labeling_function(name=f"py_{name}", on="sms")(_named(sms_lf_python(vote, kind, argument)))
    py_names = [f"py_{name}" for name in sql_names]
    options = "WITH (classes = ['ham', 'spam'])"
    sms.execute(f"LABEL sms USING {', '.join(sql_names)} {options} INTO by_sql")
    sms.execute(f"LABEL sms USING {', '.join(py_names)} {options} INTO by_python")
    differ = sms.execute(
        "SELECT count(*) FROM by_sql s JOIN by_python p USING (id)"
        " WHERE s.label <> p.label OR s.probs <> p.probs OR s.n_votes <> p.n_votes").fetchone()
    assert differ == (0,)
    coverage = sms.execute(
        "SELECT r.lf, r.coverage, r.conflicts FROM mallard.label_run_functions r ORDER BY run_id, position").fetchall()
    assert [c[1:] for c in coverage[:12]] == [c[1:] for c in coverage[12:]]
    assert {r[2] for r in sms.execute("SHOW LABELING FUNCTIONS ON sms").fetchall()} == {"sql", "python"}


def test_vectorized_functions_get_arrow_batches(sms):
    seen: list[int] = []

    @labeling_function(name="lf_vec_digits", on="sms", vectorized=True)
    def digits(text):
        assert isinstance(text, (pa.Array, pa.ChunkedArray))
        seen.append(len(text))
        return ["spam" if sum(ch.isdigit() for ch in t) >= 5 else None for t in text.to_pylist()]

    @labeling_function(name="lf_row_digits", on="sms")
    def digits_row(text):
        return "spam" if sum(ch.isdigit() for ch in text) >= 5 else None

    create_sms_lfs(sms)
    sms.execute("LABEL sms USING lf_vec_digits, lf_free, lf_short WITH (classes = ['ham', 'spam']) INTO vec")
    sms.execute("LABEL sms USING lf_row_digits, lf_free, lf_short WITH (classes = ['ham', 'spam']) INTO row")
    assert sum(seen) == 4862 and len(seen) < 10
    assert sms.execute("SELECT count(*) FROM vec JOIN row USING (id) WHERE vec.probs <> row.probs").fetchone() == (0,)


def test_a_vote_outside_the_classes_names_the_function_and_value(sms):
    create_sms_lfs(sms)
    labeling_function(name="lf_snorkel_style", on="sms")(lambda text: 1 if "free" in text.lower() else -1)
    with pytest.raises(engine.DataError, match=r"labeling function lf_snorkel_style voted -1 on the row with key 1, "
                                               r"which is not one of the classes \['ham', 'spam'\] \(return None"):
        sms.execute("LABEL sms USING lf_snorkel_style, lf_free, lf_short WITH (classes = ['ham', 'spam']) INTO out")
    assert "out" not in tables(sms)


def test_strict_mode_names_the_function_and_row_and_writes_nothing(sms):
    create_sms_lfs(sms)

    @labeling_function(name="lf_fragile", on="sms")
    def fragile(id, text):
        if id == 3000:  # midway through the table
            raise ValueError("cannot read this message")
        return None

    with pytest.raises(engine.DataError, match=r"labeling function lf_fragile raised ValueError: cannot read this "
                                               r"message on the row with key 3000 \(use WITH \(fault_tolerant = true\)"):
        sms.execute("LABEL sms USING lf_fragile, lf_free, lf_short WITH (classes = ['ham', 'spam']) INTO out")
    assert "out" not in tables(sms)
    assert sms.execute("SELECT count(*) FROM mallard.label_runs").fetchone() == (0,)
    assert not [t for t in sms.execute("SELECT table_name FROM duckdb_tables()").fetchall() if "__mallard" in t[0]]


def test_fault_tolerant_mode_counts_failures_per_function(sms):
    create_sms_lfs(sms)
    labeling_function(name="lf_every_7th", on="sms")(lambda id: 1 / 0 if id % 7 == 0 else None)

    @labeling_function(name="lf_vec_fragile", on="sms", vectorized=True)
    def vec_fragile(id, text):
        ids = id.to_pylist()
        if any(i % 100 == 0 for i in ids):
            if len(ids) == 1:
                raise RuntimeError("bad row")
            raise RuntimeError("bad batch")
        return ["spam" if "win" in t.lower() else None for t in text.to_pylist()]

    sms.execute("LABEL sms USING lf_every_7th, lf_vec_fragile, lf_free, lf_short "
                "WITH (classes = ['ham', 'spam'], fault_tolerant = true) INTO out")
    failures = {r[0]: r[9] for r in sms.execute("SHOW LABEL ANALYSIS FOR out").fetchall()}
    assert failures == {"lf_every_7th": 4862 // 7, "lf_vec_fragile": 4862 // 100, "lf_free": 0, "lf_short": 0}
    assert sms.execute("SELECT count(*) FROM out").fetchone() == (4862,)


def test_python_functions_need_classes_and_distinct_names(sms):
    labeling_function(name="lf_free", on="sms")(lambda text: None)
    with pytest.raises(engine.ProgrammingError, match="lf_free is already a Python labeling function"):
        sms.execute("CREATE LABELING FUNCTION lf_free ON sms AS NULL")
    labeling_function(name="lf_a", on="sms")(lambda text: None)
    labeling_function(name="lf_b", on="sms")(lambda text: None)
    with pytest.raises(engine.ProgrammingError, match=r"need the classes given: add WITH \(classes = \[\.\.\.\]\)"):
        sms.execute("LABEL sms USING lf_free, lf_a, lf_b INTO out")
    labeling_function(name="lf_bad_column", on="sms")(lambda body: None)
    with pytest.raises(engine.ProgrammingError, match="labeling function lf_bad_column reads column body, which sms"):
        sms.execute("LABEL sms USING lf_bad_column, lf_a, lf_b WITH (classes = ['ham', 'spam']) INTO out")


def test_a_function_registered_on_one_connection_only(sms):
    local = labeling_function(name="lf_local", on="sms", register=False)(lambda text: "ham" if len(text) < 10 else None)
    register_labeling_function(sms, local)
    assert ("lf_local", "sms", "python") in [r[:3] for r in sms.execute("SHOW LABELING FUNCTIONS").fetchall()]
    with engine.connect(progress="off") as other:
        assert "lf_local" not in [r[0] for r in other.execute("SHOW LABELING FUNCTIONS").fetchall()]
    with pytest.raises(TypeError, match="expected a function made by @labeling_function"):
        register_labeling_function(sms, lambda text: None)


def _named(fn):
    """A Python function whose parameter is the column it reads (``text``)."""
    def lf(text):
        return fn(text)
    return lf
