"""Random text fed to cursor.execute raises only engine.Error subclasses, never anything else."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine

WORDS = [
    "LOAD", "VIDEO", "OR", "REPLACE", "INTO", "WITH", "SELECT", "FROM", "WHERE", "SET", "RESET", "SHOW",
    "MALLARD", "SETTINGS", "progress", "CREATE", "TABLE", "DROP", "INSERT", "VALUES", "BEGIN", "COMMIT",
    "ROLLBACK", "EXPLAIN", "t", "x", "frame", "(", ")", ",", ";", "=", "'data/carphone.mp4'", "'nope.avi'",
    "'", '"', "1", "-2", "0.5", "'on'", "NULL", "TRUE", "[1, 2]", "*", "--", "/*", "*/", "width", "every",
    "frame_diff", "frame_mean", "?", "$1", "\n",
]

token_soup = st.lists(st.sampled_from(WORDS), min_size=0, max_size=12).map(" ".join)
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


def _run(sql: str) -> None:
    con = engine.connect(progress="off", autocommit=True)
    try:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
        try:
            cursor = con.execute(sql)
            if cursor.description is not None:
                cursor.fetchmany(5)
        except engine.Error:
            pass  # the only kind of exception allowed
    finally:
        con.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_soup)
def test_token_soup_raises_only_engine_errors(sql):
    _run(sql)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_random_text_raises_only_engine_errors(sql):
    _run(sql)


def test_the_fuzzer_reaches_real_errors():
    """The property above is not vacuous: malformed input does raise engine errors."""
    con = engine.connect()
    for sql in ("LOAD VIDEO", "SELECT FROM WHERE", "'", "SET progress = 'loud'"):
        try:
            con.execute(sql)
        except engine.Error:
            continue
        raise AssertionError(f"{sql!r} should have failed")


# Grammar-aware fuzzing: each statement's slots filled with hostile values ------------------------

#: One template per extended statement; {name} {table} {value} {path} {options} are slots.
TEMPLATES = {
    "SetSetting": "SET progress = {value}",
    "ResetSetting": "RESET progress",
    "ShowSettings": "SHOW MALLARD SETTINGS",
    "LoadVideo": "LOAD VIDEO {path} INTO {table} {options}",
    "CreateModel": "CREATE MODEL {name} FROM {path} {options}",
    "TrainModel": "CREATE MODEL {name} {options} AS SELECT * FROM {table}",
    "ExportModel": "EXPORT MODEL {name} TO {path} {options}",
    "EvaluateModel": "EVALUATE MODEL {name} ON {table} {options}",
    "DropModel": "DROP MODEL {name}",
    "ShowModels": "SHOW MODELS",
    "ShowStorage": "SHOW STORAGE",
    "ExplainInference": "EXPLAIN SELECT * FROM {table}",
    "CreateLabelingFunction": "CREATE LABELING FUNCTION {name} ON {table} AS {value}",
    "DropLabelingFunction": "DROP LABELING FUNCTION {name}",
    "ShowLabelingFunctions": "SHOW LABELING FUNCTIONS ON {table}",
    "Label": "LABEL {table} USING {name} {options} INTO {table}",
    "AddGoldLabels": "ADD GOLD LABELS TO {table} FROM {table} {options}",
    "AnalyzeLabelingFunctions": "ANALYZE LABELING FUNCTIONS {name} ON {table} {options}",
    "ShowLabelAnalysis": "SHOW LABEL ANALYSIS FOR {table}",
    "ShowClassBalance": "SHOW CLASS BALANCE FOR {table}",
    "ComputeStatistics": "COMPUTE STATISTICS FOR {table} AS {name} {options}",
    "ShowStatistics": "SHOW STATISTICS {name}",
    "DropStatistics": "DROP STATISTICS {name}",
    "InferSchema": "INFER SCHEMA {name} FROM {table} {options}",
    "Validate": "VALIDATE {table} AGAINST {name} {options}",
    "AlterSchema": "ALTER SCHEMA {name} ALTER COLUMN {name} SET ({name} = {value})",
    "UpdateSchema": "UPDATE SCHEMA {name} FROM {table} {options}",
    "ShowSchema": "SHOW SCHEMA {name}",
    "DropDataSchema": "DROP DATA SCHEMA {name}",
    "ExportSchema": "EXPORT SCHEMA {name} TO {path} {options}",
    "ImportSchema": "IMPORT SCHEMA {name} FROM {path} {options}",
    "ShowCluster": "SHOW CLUSTER",
}

NAMES = st.sampled_from(["t", "x", "..x", "a..b", '""', '"we""ird"', "mallard.meta", "main.t", "select", "ü",
                         "a" * 300, "t.frame", "?", "1x", "features", "__mallard_result_1"])
VALUES = st.one_of(
    st.sampled_from(["1", "-0", "1e309", "-1e309", "'nan'", "10000000000000000000000000000000", "NULL", "TRUE",
                     "[1, [2, [3]]]", "[]", "'''", "'it''s'", "x.y.z.w", "?", "(SELECT 1)", "{'a': 1}", "[1, 'a']"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20).map(lambda s: "'" + s.replace("'", "''") + "'"),
)
PATHS = st.sampled_from(["'/dev/null'", "'/dev/zero'", "'/'", "''", "'data/carphone.mp4'", "'no/such.file'", "?", "'data/vtest.avi'"])
OPTION_NAMES = st.sampled_from(["width", "every", "classes", "model", "key", "seed", "max_values", "environment",
                                "architecture", "labels", "input_size", "mean", "previous", "tol", "format", "bogus"])
OPTIONS = st.one_of(st.just(""), st.lists(st.tuples(OPTION_NAMES, VALUES), min_size=1, max_size=3).map(
    lambda pairs: "WITH (" + ", ".join(f"{k} = {v}" for k, v in pairs) + ")"))
PARAMETERS = st.lists(st.sampled_from([None, 1, -1, 2**80, 1.5, float("nan"), "x", b"\x00", bytearray(b"a"),
                                       __import__("uuid").UUID(int=1), [1, 2], {"a": 1}, {1}, object()]), max_size=3)


@st.composite
def statements(draw: st.DrawFn) -> tuple[str, list[object]]:
    template = draw(st.sampled_from(sorted(TEMPLATES.values())))
    sql = template.format(name=draw(NAMES), table=draw(NAMES), value=draw(VALUES), path=draw(PATHS),
                          options=draw(OPTIONS))
    return sql, draw(PARAMETERS)


def test_every_statement_has_a_fuzz_template():
    from engine.registry import STATEMENTS

    assert set(TEMPLATES) == {cls.__name__ for cls in STATEMENTS}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statements())
def test_statement_slots_filled_with_hostile_values_raise_only_engine_errors(statement):
    import os
    import tempfile

    sql, parameters = statement
    path = os.path.join(tempfile.mkdtemp(), "fuzz.duckdb")
    con = engine.connect(path, progress="off", autocommit=True)
    try:
        con.execute("CREATE TABLE t AS SELECT 1 AS id, 'x' AS text, 1 AS x")
        for params in (None, parameters):
            try:
                cursor = con.execute(sql, params)
                if cursor.description is not None:
                    cursor.fetchmany(5)
            except engine.Error:
                pass  # the only kind of exception allowed
    finally:
        con.close()
    engine.connect(path).close()  # whatever happened, the database opens again
