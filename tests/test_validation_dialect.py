"""The validation statements' grammar: parse -> SQL round trips, error positions, and the
DuckDB statements that share their first words (which must stay DuckDB's)."""
from __future__ import annotations

import pytest

import engine
from engine.dialect import is_extended, parse_statements
from engine.dialect import validation as v
from engine.router import Router

CANONICAL = [
    ("COMPUTE STATISTICS FOR flights", v.ComputeStatistics),
    ("COMPUTE STATISTICS FOR main.flights AS flights_2013", v.ComputeStatistics),
    ("COMPUTE STATISTICS FOR february APPEND TO flights_2013", v.ComputeStatistics),
    ("COMPUTE STATISTICS FOR flights AS s WITH (max_values = 500)", v.ComputeStatistics),
    ("SHOW STATISTICS", v.ShowStatistics),
    ("SHOW STATISTICS flights_2013", v.ShowStatistics),
    ("DROP STATISTICS flights_2013", v.DropStatistics),
    ("DROP STATISTICS IF EXISTS flights_2013", v.DropStatistics),
    ("INFER SCHEMA flights_schema FROM flights", v.InferSchema),
    ("INFER OR REPLACE SCHEMA flights_schema FROM flights_2013 WITH (max_domain_size = 50, environments = ['TRAINING', 'SERVING'])",
     v.InferSchema),
    ("VALIDATE february AGAINST flights_schema", v.Validate),
    ("VALIDATE STATISTICS february_stats AGAINST flights_schema VERSION 2", v.Validate),
    ("VALIDATE february AGAINST flights_schema WITH (environment = 'SERVING', previous = january, training = flights)",
     v.Validate),
    ("ALTER SCHEMA flights_schema SET (environments = ['TRAINING', 'SERVING'], min_examples_count = 1000)", v.AlterSchema),
    ("ALTER SCHEMA flights_schema RESET (min_examples_count)", v.AlterSchema),
    ("ALTER SCHEMA flights_schema ALTER COLUMN carrier SET (domain = ['AA', 'UA'], drift_l_infinity = 0.1)", v.AlterSchema),
    ("ALTER SCHEMA flights_schema ALTER COLUMN distance SET (min = 0, max = NULL, skew_jensen_shannon_divergence = 0.1)",
     v.AlterSchema),
    ("ALTER SCHEMA flights_schema ALTER COLUMN arr_delay SET (not_in_environment = ['SERVING'])", v.AlterSchema),
    ("ALTER SCHEMA flights_schema ALTER COLUMN carrier RESET (domain, drift_l_infinity)", v.AlterSchema),
    ("ALTER SCHEMA flights_schema ADD COLUMN coupon STRING", v.AlterSchema),
    ("ALTER SCHEMA flights_schema DROP COLUMN coupon", v.AlterSchema),
    ("UPDATE SCHEMA flights_schema FROM february", v.UpdateSchema),
    ("UPDATE SCHEMA flights_schema FROM february WITH (environment = 'SERVING', accept_type_changes = TRUE)",
     v.UpdateSchema),
    ("SHOW SCHEMA flights_schema", v.ShowSchema),
    ("SHOW SCHEMA flights_schema VERSION 3", v.ShowSchema),
    ("EXPORT SCHEMA flights_schema TO 'schema.json'", v.ExportSchema),
    ("EXPORT SCHEMA flights_schema VERSION 1 TO 'schema.json'", v.ExportSchema),
    ("IMPORT SCHEMA flights_schema FROM 'schema.json'", v.ImportSchema),
    ("EXPORT SCHEMA flights_schema VERSION 2 TO 'schema.pbtxt' WITH (format = 'tfdv')", v.ExportSchema),
    ("IMPORT SCHEMA flights_schema FROM 'schema.txt' WITH (format = 'tfdv')", v.ImportSchema),
]


@pytest.mark.parametrize("sql, cls", CANONICAL, ids=[c[0][:60] for c in CANONICAL])
def test_round_trip(sql: str, cls: type) -> None:
    tree = parse_statements(sql)[0]
    assert type(tree) is cls
    assert tree.sql("mallard") == sql
    assert Router().needs_mallard(sql)


def test_lower_case_and_quoted_names_normalize() -> None:
    tree = parse_statements('alter schema "S" alter carrier set (drift_l_infinity = .1)')[0]
    assert tree.sql("mallard") == 'ALTER SCHEMA "S" ALTER COLUMN carrier SET (drift_l_infinity = 0.1)'
    assert parse_statements("validate t against s with (previous = 'other')")[0].sql("mallard") == \
        "VALIDATE t AGAINST s WITH (previous = 'other')"


def test_every_statement_has_a_name() -> None:
    names = {cls.NAME for _, cls in CANONICAL}
    assert names == {"COMPUTE STATISTICS", "SHOW STATISTICS", "DROP STATISTICS", "INFER SCHEMA", "VALIDATE",
                     "ALTER SCHEMA", "UPDATE SCHEMA", "SHOW SCHEMA", "EXPORT SCHEMA", "IMPORT SCHEMA"}


@pytest.mark.parametrize("sql, message", [
    ("COMPUTE STATISTICS flights", "Expected FOR after COMPUTE STATISTICS, found 'flights' (line 1, column 20)"),
    ("COMPUTE STATISTICS FOR t APPEND s", "Expected TO after APPEND, found 's' (line 1, column 33)"),
    ("INFER SCHEMA s flights", "Expected FROM after INFER SCHEMA <name>, found 'flights' (line 1, column 16)"),
    ("INFER SCHEMA FROM t", "Expected FROM after INFER SCHEMA <name>, found 't' (line 1, column 19)"),
    ("VALIDATE t WITH s", "Expected AGAINST after VALIDATE <table or query>, found 'WITH' (line 1, column 12)"),
    ("VALIDATE t\n  AGAINST", "Expected a schema name after AGAINST, found the end of the statement (line 2, column 10)"),
    ("VALIDATE t AGAINST s VERSION x", "Expected a version number after AGAINST <schema> VERSION, found 'x' (line 1, column 30)"),
    ("ALTER SCHEMA s ALTER COLUMN c SET domain", "Expected ( after ALTER COLUMN c SET, found 'domain' (line 1, column 35)"),
    ("ALTER SCHEMA s ALTER COLUMN c SET (min 1)", "Expected = after property min, found '1' (line 1, column 40)"),
    ("ALTER SCHEMA s ALTER COLUMN c DROP (min)", "Expected SET (...) or RESET (...) after ALTER COLUMN c, found 'DROP' (line 1, column 31)"),
    ("ALTER SCHEMA s ADD COLUMN c", "Expected a column type (INT, FLOAT, STRING, BOOLEAN, TIMESTAMP or BYTES) after ADD COLUMN c, found the end"),
    ("EXPORT SCHEMA s TO schema.json", "Expected a schema file path (a quoted string) after TO, found 'schema' (line 1, column 20)"),
    ("IMPORT SCHEMA s 'x.json'", "Expected FROM after IMPORT SCHEMA <name>, found 'x.json' (line 1, column 17)"),
    ("DROP STATISTICS IF EXISTS", "Expected a statistics name after DROP STATISTICS IF EXISTS, found the end"),
])
def test_errors_point_at_the_offending_token(sql: str, message: str) -> None:
    with pytest.raises(engine.ProgrammingError) as caught:
        parse_statements(sql)
    assert str(caught.value).startswith(message)
    if "(line" in message:
        line, column = message.rsplit("(line ", 1)[1].rstrip(")").split(", column ")
        pointer = str(caught.value).splitlines()[-1]
        assert pointer.index("^") - 2 == int(column) - 1  # the caret sits under the token


@pytest.mark.parametrize("sql", [
    "ALTER SCHEMA main RENAME TO other",    # DuckDB's (a namespace), not a data schema
    "SHOW SCHEMAS",
    "DROP SCHEMA IF EXISTS staging",
    "UPDATE schema SET x = 1",              # an UPDATE of a table named "schema"
    "SHOW schema",
])
def test_duckdb_forms_stay_duckdbs(sql: str) -> None:
    assert not any(is_extended(t) for t in parse_statements(sql))


def test_duckdb_forms_still_run(con: engine.Connection) -> None:
    con.execute("CREATE TABLE schema (x INTEGER)")
    con.execute("INSERT INTO schema VALUES (1)")
    con.execute("UPDATE schema SET x = 2")
    assert con.execute("SELECT x FROM schema").fetchall() == [(2,)]
    con.execute("CREATE SCHEMA staging")
    assert ("staging",) in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
    con.execute("DROP SCHEMA staging")
    with pytest.raises(engine.NotSupportedError):
        con.execute("ALTER SCHEMA main RENAME TO other")
