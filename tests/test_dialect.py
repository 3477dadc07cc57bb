"""The Mallard dialect: round trips, error positions, routing and multi-statement scripts."""
from __future__ import annotations

import re

import pytest
from sqlglot import exp

import engine
from engine.dialect import parse_statements, split_statements
from engine.dialect.session_settings import ResetSetting, SetSetting, ShowSettings
from engine.dialect.video import LoadVideo
from engine.registry import STATEMENTS
from engine.router import Router, statement_kind


def validate_identity(sql: str, node_type: type[exp.Expression]) -> exp.Expression:
    """Parse, check the node class, regenerate, compare (sqlglot's validate_identity)."""
    trees = parse_statements(sql)
    assert len(trees) == 1
    assert type(trees[0]) is node_type
    assert trees[0].sql("mallard") == sql
    return trees[0]


ROUND_TRIPS = [
    ("LOAD VIDEO 'data/vtest.avi' INTO traffic", LoadVideo),
    ("LOAD OR REPLACE VIDEO 'v.mp4' INTO main.clips WITH (width = 224, height = 224, every = 5)", LoadVideo),
    ("LOAD VIDEO 'it''s.avi' INTO \"Mixed Case\" WITH (limit = 3)", LoadVideo),
    ("SET progress = 'off'", SetSetting),
    ("RESET progress", ResetSetting),
    ("SHOW MALLARD SETTINGS", ShowSettings),
]


@pytest.mark.parametrize(("sql", "node_type"), ROUND_TRIPS)
def test_round_trip(sql, node_type):
    validate_identity(sql, node_type)


def test_load_video_tree_has_named_children():
    tree = validate_identity("LOAD OR REPLACE VIDEO 'v.mp4' INTO s.t WITH (every = 2)", LoadVideo)
    assert tree.this.name == "v.mp4"
    assert tree.args["into"].name == "t" and tree.args["into"].db == "s"
    assert tree.args["replace"] is True
    assert [o.name for o in tree.args["options"]] == ["every"]


def test_keywords_are_case_insensitive():
    assert parse_statements("load or replace video 'a' into b")[0].sql("mallard") == "LOAD OR REPLACE VIDEO 'a' INTO b"


def test_every_statement_class_round_trips_at_least_once():
    own = {cls for cls in STATEMENTS if cls.__module__ in ("engine.dialect.video", "engine.dialect.session_settings")}
    tested = {node_type for _, node_type in ROUND_TRIPS}
    assert own and own <= tested, f"no round trip above for {sorted(c.__name__ for c in own - tested)}"


@pytest.mark.parametrize("cls", STATEMENTS, ids=[cls.__name__ for cls in STATEMENTS])
def test_every_statement_documents_a_round_trip_of_itself(cls):
    """Each statement's docstring parses an example of it back to the same class and text."""
    examples = re.findall(r'(?:parse_statements\(|>>> sql = )(["\'])(.+?)\1', cls.__doc__ or "")
    assert examples, f"{cls.__name__}'s docstring has no parse_statements(...) example"
    for _, sql in examples:
        tree = parse_statements(sql)[0]
        assert type(tree) is cls, (sql, type(tree).__name__)
        assert parse_statements(tree.sql("mallard"))[0] == tree


@pytest.mark.parametrize(("sql", "line", "col", "expected"), [
    ("LOAD VIDEO INTO t", 1, 12, "Expected a video file path (a quoted string) after LOAD VIDEO, found 'INTO'"),
    ("LOAD VIDEO 'x.avi' t", 1, 20, "Expected INTO after LOAD VIDEO '<path>', found 't'"),
    ("LOAD VIDEO 'x.avi' INTO", 1, 24, "Expected a table name after INTO, found the end of the statement"),
    ("LOAD VIDEO 'x.avi' INTO t WITH (every 2)", 1, 39, "Expected = after option every, found '2'"),
    ("LOAD VIDEO 'x.avi' INTO t WITH (every = 2", 1, 42, "Expected , or ) in WITH options, found the end"),
    ("LOAD OR REPLACE TABLE t", 1, 17, "Expected VIDEO after LOAD OR REPLACE, found 'TABLE'"),
    ("SELECT 1;\n  LOAD VIDEO 'x.avi' INTO t extra", 2, 29, "Expected the end of the statement, found 'extra'"),
    ("SET progress 'on'", 1, 14, "Expected = or TO after SET progress, found 'on'"),
])
def test_malformed_extended_statement_names_line_column_and_expectation(con, sql, line, col, expected):
    with pytest.raises(engine.ProgrammingError) as info:
        con.execute(sql)
    message = str(info.value)
    assert expected in message
    assert f"(line {line}, column {col})" in message
    assert "^" in message  # the offending text is pointed at


def test_duckdb_statements_sharing_our_leading_words_still_reach_duckdb(con):
    con.execute("SET threads = 1")
    assert con.execute("SELECT current_setting('threads')").fetchone() == (1,)
    con.execute("RESET threads")
    assert con.execute("SHOW TABLES").fetchall() == []


def test_split_statements_respects_strings_and_comments():
    assert split_statements("SELECT ';' AS s; /* ; */ SELECT 2 -- ;\n;;") == ["SELECT ';' AS s", "SELECT 2"]


def test_multi_statement_string_runs_statement_by_statement(con):
    cur = con.execute(
        "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1), (2);"
        "SET progress = 'off'; SELECT sum(x) FROM a"
    )
    assert cur.fetchall() == [(3,)]
    # a plain script (no Mallard statement) also keeps the last statement's result
    assert con.execute("CREATE TABLE b AS SELECT 5 AS y; SELECT y FROM b;").fetchall() == [(5,)]


def test_an_error_midway_through_a_script_stops_it(con):
    with pytest.raises(engine.ProgrammingError):
        con.execute("CREATE TABLE c (x INTEGER); SELECT * FROM missing; CREATE TABLE d (x INTEGER)")
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'd'").fetchone() == (0,)


def test_parameters_with_several_statements_are_refused(con):
    with pytest.raises(engine.ProgrammingError, match="single statement"):
        con.execute("SELECT ?; SELECT ?", [1])


# The fast path -------------------------------------------------------------------------------


def test_router_sends_plain_sql_to_duckdb_and_ours_to_the_parser():
    router = Router()
    for plain in ("SELECT 1", "LOAD httpfs", "SET threads = 2", "select 'LOAD VIDEO' as s",
                  "CREATE TABLE load_video (x INT)"):
        assert not router.needs_mallard(plain), plain
    for ours in ("LOAD VIDEO 'a' INTO b", "  -- note\n load  or  replace video 'a' into b",
                 "SELECT 1; LOAD VIDEO 'a' INTO b", "SET progress = 'on'", "show mallard settings"):
        assert router.needs_mallard(ours), ours
    assert Router(frozenset({"mobilenet"})).needs_mallard("SELECT mobilenet(frame) FROM t")


def test_fast_path_does_not_parse_plain_sql(con, monkeypatch):
    import sqlglot

    import engine.dialect as dialect

    def no_parse(*args, **kwargs):
        raise AssertionError("plain SQL must not be parsed")

    monkeypatch.setattr(dialect, "parse_in_script", no_parse)
    monkeypatch.setattr(dialect, "statement_spans", no_parse)
    monkeypatch.setattr(sqlglot, "parse", no_parse)
    assert con.execute("SELECT ? * 2", [21]).fetchone() == (42,)


@pytest.mark.parametrize(("sql", "kind"), [
    ("SELECT 1", "rows"), ("  (SELECT 1)", "rows"), ("WITH a AS (SELECT 1) SELECT * FROM a", "rows"),
    ("/* c */ INSERT INTO t VALUES (1)", "dml"), ("INSERT INTO t VALUES (1) RETURNING *", "rows"),
    ("begin transaction", "begin"), ("COMMIT", "end"), ("CREATE TABLE t (x INT)", "other"),
])
def test_statement_kind(sql, kind):
    assert statement_kind(sql) == kind
