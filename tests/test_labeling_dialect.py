"""The weak-supervision statements: round trips, named children, error positions, routing."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

import engine
from engine.dialect import parse_statements
from engine.dialect.labeling import (
    AddGoldLabels,
    AnalyzeLabelingFunctions,
    CreateLabelingFunction,
    DropLabelingFunction,
    Label,
    ShowClassBalance,
    ShowLabelAnalysis,
    ShowLabelingFunctions,
)
from engine.registry import STATEMENTS
from engine.router import Router


def validate_identity(sql: str, node_type: type[exp.Expression]) -> exp.Expression:
    """Parse, check the node class, regenerate, compare."""
    trees = parse_statements(sql)
    assert len(trees) == 1
    assert type(trees[0]) is node_type
    assert trees[0].sql("mallard") == sql
    return trees[0]


ROUND_TRIPS = [
    ("CREATE LABELING FUNCTION lf_free ON sms AS CASE WHEN text ILIKE '%free%' THEN 'spam' END", CreateLabelingFunction),
    ("CREATE OR REPLACE LABELING FUNCTION lf_short ON main.sms AS CASE WHEN LENGTH(text) < 20 THEN 'ham' END",
     CreateLabelingFunction),
    ("CREATE LABELING FUNCTION \"Mixed\" ON sms AS CASE WHEN id IN (SELECT id FROM blocked) THEN 1 END",
     CreateLabelingFunction),
    ("DROP LABELING FUNCTION lf_free", DropLabelingFunction),
    ("DROP LABELING FUNCTION IF EXISTS lf_free", DropLabelingFunction),
    ("SHOW LABELING FUNCTIONS", ShowLabelingFunctions),
    ("SHOW LABELING FUNCTIONS ON sms", ShowLabelingFunctions),
    ("LABEL sms USING lf_free INTO sms_labels", Label),
    ("LABEL main.sms USING a, b, c WITH (classes = ['ham', 'spam'], model = 'majority', seed = 3, key = msg_id) "
     "INTO OR REPLACE labels.sms", Label),
    ("LABEL t USING a, b, c WITH (classes = [0, 1, 2], max_iter = 50, tol = 0.001, fault_tolerant = TRUE) INTO l",
     Label),
    ("ADD GOLD LABELS TO sms FROM truth", AddGoldLabels),
    ("ADD GOLD LABELS TO sms FROM (SELECT id, truth AS label FROM sms WHERE id % 10 = 0) WITH (key = id, label = label)",
     AddGoldLabels),
    ("ANALYZE LABELING FUNCTIONS lf_a ON sms", AnalyzeLabelingFunctions),
    ("ANALYZE LABELING FUNCTIONS lf_a, lf_b ON sms WITH (classes = ['ham', 'spam'])", AnalyzeLabelingFunctions),
    ("SHOW LABEL ANALYSIS FOR sms_labels", ShowLabelAnalysis),
    ("SHOW CLASS BALANCE FOR main.sms_labels", ShowClassBalance),
]


@pytest.mark.parametrize(("sql", "node_type"), ROUND_TRIPS)
def test_round_trip(sql, node_type):
    validate_identity(sql, node_type)


def test_every_labeling_statement_round_trips_above():
    own = {cls for cls in STATEMENTS if cls.__module__ == "engine.dialect.labeling"}
    tested = {node_type for _, node_type in ROUND_TRIPS}
    assert own and own <= tested, f"no round trip above for {sorted(c.__name__ for c in own - tested)}"


def test_label_tree_has_named_children():
    tree = validate_identity("LABEL s.sms USING lf_a, lf_b, lf_c WITH (seed = 1) INTO OR REPLACE out", Label)
    assert tree.this.name == "sms" and tree.this.db == "s"
    assert [e.name for e in tree.expressions] == ["lf_a", "lf_b", "lf_c"]
    assert tree.args["into"].name == "out" and tree.args["replace"] is True
    assert [o.name for o in tree.args["options"]] == ["seed"]


def test_create_labeling_function_keeps_the_expression_as_an_ast():
    tree = validate_identity("CREATE LABELING FUNCTION lf ON sms AS CASE WHEN text LIKE '%win%' THEN 'spam' END",
                             CreateLabelingFunction)
    assert isinstance(tree.args["expression"], exp.Case)
    assert tree.args["table"].name == "sms" and tree.args["replace"] is False


def test_keywords_are_case_insensitive():
    assert (parse_statements("label sms using a, b, c with (seed = 1) into or replace x")[0].sql("mallard")
            == "LABEL sms USING a, b, c WITH (seed = 1) INTO OR REPLACE x")
    assert parse_statements("add gold labels to t from g")[0].sql("mallard") == "ADD GOLD LABELS TO t FROM g"


@pytest.mark.parametrize(("sql", "line", "col", "expected"), [
    ("LABEL sms lf_a INTO out", 1, 11, "Expected USING after LABEL sms, found 'lf_a'"),
    ("LABEL sms USING INTO out", 1, 17, "Expected a labeling function name after USING, found 'INTO'"),
    ("LABEL sms USING a, WITH (seed = 1) INTO out", 1, 20, "Expected a labeling function name after a comma, found 'WITH'"),
    ("LABEL sms USING a, b", 1, 21, "Expected INTO after LABEL <table> USING <labeling functions>, found the end"),
    ("LABEL sms USING a INTO OR out", 1, 27, "Expected REPLACE after INTO OR, found 'out'"),
    ("LABEL sms USING a WITH (seed 1) INTO out", 1, 30, "Expected = after option seed, found '1'"),
    ("CREATE LABELING FUNCTION lf AS 1", 1, 29, "Expected ON after CREATE LABELING FUNCTION lf, found 'AS'"),
    ("CREATE LABELING FUNCTION lf ON sms", 1, 35, "Expected AS after CREATE LABELING FUNCTION lf ON sms, found the end"),
    ("CREATE LABELING FUNCTION lf ON sms AS", 1, 38, "Expected a SQL expression after AS, found the end"),
    ("CREATE OR REPLACE LABELING FUNCTION lf ON sms AS 1 2", 1, 52, "Expected the end of the statement, found '2'"),
    ("DROP LABELING FUNCTION", 1, 23, "Expected a labeling function name after DROP LABELING FUNCTION, found the end"),
    ("ADD GOLD LABELS sms FROM g", 1, 17, "Expected TO after ADD GOLD LABELS, found 'sms'"),
    ("ADD GOLD LABELS TO sms FROM (oops)", 1, 30, "Expected a query (SELECT ...) after FROM (, found 'oops'"),
    ("ADD GOLD LABELS TO sms", 1, 23, "Expected FROM after ADD GOLD LABELS TO sms, found the end"),
    ("ANALYZE LABELING FUNCTIONS ON sms", 1, 28, "Expected a labeling function name after ANALYZE LABELING FUNCTIONS"),
    ("SHOW LABEL ANALYSIS sms_labels", 1, 21, "Expected FOR after SHOW LABEL ANALYSIS, found 'sms_labels'"),
    ("SHOW CLASS BALANCE", 1, 19, "Expected FOR after SHOW CLASS BALANCE, found the end"),
    ("SELECT 1;\nLABEL sms USING a INTO", 2, 23, "Expected a table name for the labels after INTO, found the end"),
])
def test_malformed_statement_names_line_column_and_expectation(con, sql, line, col, expected):
    with pytest.raises(engine.ProgrammingError) as info:
        con.execute(sql)
    message = str(info.value)
    assert expected in message
    assert f"(line {line}, column {col})" in message
    assert "^" in message


def test_router_notices_labeling_statements_but_not_lookalikes():
    router = Router()
    for ours in ("LABEL sms USING a INTO b", "create or replace labeling function f on t as 1",
                 "DROP LABELING FUNCTION f", "show labeling functions", "ADD GOLD LABELS TO t FROM g",
                 "ANALYZE LABELING FUNCTIONS f ON t", "SHOW LABEL ANALYSIS FOR l", "SHOW CLASS BALANCE FOR l"):
        assert router.needs_mallard(ours), ours
    for plain in ("SELECT 'LABEL sms USING a INTO b'", "CREATE TABLE labels (x INT)", "ANALYZE sms",
                  "DROP FUNCTION f", "SHOW TABLES"):
        assert not router.needs_mallard(plain), plain


def test_duckdb_statements_with_our_leading_words_still_reach_duckdb(con):
    con.execute("CREATE TABLE labels (x INTEGER)")
    con.execute("CREATE OR REPLACE MACRO twice(x) AS x * 2")
    con.execute("ANALYZE labels")
    assert con.execute("SELECT twice(21)").fetchone() == (42,)
    con.execute("DROP TABLE labels")


# Fuzzing: any arrangement of the labeling words raises only engine errors -----------------------

LABELING_WORDS = [
    "LABEL", "USING", "INTO", "OR", "REPLACE", "WITH", "(", ")", ",", "=", "CREATE", "DROP", "SHOW", "ADD", "GOLD",
    "LABELS", "LABELING", "FUNCTION", "FUNCTIONS", "ANALYZE", "ANALYSIS", "CLASS", "BALANCE", "FOR", "ON", "AS", "TO",
    "FROM", "IF", "EXISTS", "t", "fa", "fb", "fc", "out", "a", "id", "classes", "model", "seed", "key", "tol",
    "max_iter", "fault_tolerant", "'majority'", "'x'", "['x', 'y']", "[0, 1]", "[[1]]", "NULL", "TRUE", "-1", "0.5",
    "(SELECT 1 AS id, 'x' AS label)", "CASE", "WHEN", "THEN", "END", "?", ";",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(LABELING_WORDS), min_size=1, max_size=14).map(" ".join))
def test_labeling_token_soup_raises_only_engine_errors(labeling_con, sql):
    try:
        cursor = labeling_con.execute(sql)
        if cursor.description is not None:
            cursor.fetchmany(5)
    except engine.Error:
        pass


@pytest.fixture(scope="module")
def labeling_con():
    con = engine.connect(progress="off", autocommit=True)
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1, 'x', 'x', NULL), (2, 'y', 'y', 'y'), (3, NULL, 'x', 'x'))"
                " v(id, a, b, c)")
    for name in "abc":
        con.execute(f"CREATE LABELING FUNCTION f{name} ON t AS {name}")
    yield con
    con.close()


OPTION_NAMES = ["classes", "model", "seed", "key", "max_iter", "tol", "fault_tolerant", "colour"]
OPTION_VALUES = ["['x', 'y']", "['x']", "[0, 1]", "'majority'", "'label_model'", "0", "-1", "0.5", "TRUE", "id", "a",
                 "NULL", "[[1]]", "'x'", "[]", "['y', 'x', 'y']", "1e-9"]
VALID_OPTIONS = [("classes", "['x', 'y']"), ("model", "'majority'"), ("seed", "3"), ("key", "id"), ("max_iter", "5"),
                 ("tol", "0.5"), ("fault_tolerant", "TRUE")]
label_statements = st.builds(
    lambda lfs, options, replace: (
        f"LABEL t USING {', '.join(lfs)}"
        + (f" WITH ({', '.join(f'{k} = {v}' for k, v in options)})" if options else "")
        + f" INTO {'OR REPLACE ' if replace else ''}out"),
    st.one_of(st.permutations(["fa", "fb", "fc"]), st.lists(st.sampled_from(["fa", "fb", "fc", "fz"]), min_size=1, max_size=4)),
    st.lists(st.one_of(st.sampled_from(VALID_OPTIONS), st.tuples(st.sampled_from(OPTION_NAMES), st.sampled_from(OPTION_VALUES))),
             max_size=3, unique_by=lambda option: option[0]),
    st.booleans(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(label_statements)
def test_label_statements_with_any_options_raise_only_engine_errors(labeling_con, sql):
    try:
        labeling_con.execute(sql)
    except engine.Error:
        return
    assert labeling_con.execute("SELECT count(*) FROM out").fetchone() == (3,)
