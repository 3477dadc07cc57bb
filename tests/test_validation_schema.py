"""Schemas: inference (TFDV's rules plus ranges and patterns), versions, ALTER SCHEMA, UPDATE
SCHEMA, JSON export/import, and bad input that must leave the database unchanged.

Synthetic tables with known truth: every value below is computed from ``range``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.validation import export_schema, import_schema

ORDERS = """
CREATE OR REPLACE TABLE orders AS SELECT
    range AS id,
    CASE WHEN range % 10 = 0 THEN NULL ELSE ['red', 'green', 'blue'][1 + range % 3] END AS color,
    'AB-' || lpad((range % 997)::VARCHAR, 3, '0') AS code,
    (range % 100) / 10.0 AS score,
    1 + range % 5 AS level,
    (range * 7) % 1000 AS amount,
    (range % 200) - 100 AS delta,
    TIMESTAMP '2024-01-01' + INTERVAL (range) MINUTE AS placed_at
FROM range(5000)
"""


@pytest.fixture
def orders(con: engine.Connection) -> engine.Connection:
    con.execute(ORDERS)
    return con


def schema_rows(con: engine.Connection, name: str, version: int | None = None) -> dict[str, dict[str, Any]]:
    cur = con.execute(f"SHOW SCHEMA {name}" + (f" VERSION {version}" if version else ""))
    names = [d[0] for d in cur.description]
    return {r[0]: dict(zip(names, r)) for r in cur.fetchall()}


def kinds(con: engine.Connection, sql: str) -> set[tuple[str | None, str]]:
    return {(r[0], r[1]) for r in con.execute(sql).fetchall()}


def counts(con: engine.Connection) -> tuple[int, ...]:
    return tuple(con.execute(f"SELECT count(*) FROM mallard.{t}").fetchone()[0]
                 for t in ("schemas", "validation_runs", "anomalies", "statistics"))


def test_inference_follows_tfdv_and_adds_ranges_and_patterns(orders: engine.Connection) -> None:
    rows = {r[0]: r for r in orders.execute("INFER SCHEMA s FROM orders").fetchall()}
    s = schema_rows(orders, "s")
    assert set(rows) == set(s)
    assert [s[c]["type"] for c in ("id", "color", "code", "score", "level", "placed_at")] == \
        ["INT", "STRING", "STRING", "FLOAT", "INT", "TIMESTAMP"]
    assert (s["id"]["min_fraction"], s["id"]["min_count"]) == (1.0, 1)          # never missing: required
    assert (s["color"]["min_fraction"], s["color"]["min_count"]) == (0.0, 1)    # sometimes missing: optional
    assert s["color"]["domain"] == ["blue", "green", "red"] and s["color"]["min_domain_mass"] == 0.999  # 0.1% margin
    assert s["code"]["domain"] is None and s["code"]["patterns"] == ["AA-999"]   # 997 values > 100
    assert (s["level"]["min"], s["level"]["max"]) == (1.0, 5.0)                 # small integer span: exact
    assert (s["amount"]["min"], s["amount"]["max"]) == (0.0, 1499.0)            # never negative: floor 0
    assert (s["delta"]["min"], s["delta"]["max"]) == (-200.0, 199.0)            # widened by half the span
    assert s["placed_at"]["min"] is None                                        # time moves on: no range
    assert s["score"]["disallow_nan"] and s["score"]["disallow_inf"]
    assert s["code"]["unique_max"] == 2 * 997 and s["id"]["unique_max"] is None


def test_inference_options(orders: engine.Connection) -> None:
    orders.execute("INFER SCHEMA s FROM orders WITH (max_domain_size = 2, infer_ranges = FALSE,"
                   " infer_patterns = FALSE, environments = ['TRAINING', 'SERVING'], range_margin = 0)")
    s = schema_rows(orders, "s")
    assert s["color"]["domain"] is None and s["code"]["patterns"] is None and s["amount"]["max"] is None
    body = json.loads(export_schema(orders, "s"))
    assert body["default_environment"] == ["TRAINING", "SERVING"]
    with pytest.raises(engine.ProgrammingError, match="unknown INFER SCHEMA option 'max_domain'"):
        orders.execute("INFER OR REPLACE SCHEMA s FROM orders WITH (max_domain = 2)")


def test_inferring_over_an_existing_schema_needs_or_replace(orders: engine.Connection) -> None:
    orders.execute("INFER SCHEMA s FROM orders")
    with pytest.raises(engine.ProgrammingError, match="data schema 's' exists .version 1.; UPDATE SCHEMA"):
        orders.execute("INFER SCHEMA s FROM orders")
    orders.execute("INFER OR REPLACE SCHEMA s FROM orders WITH (max_domain_size = 0)")
    assert orders.execute("SELECT list(version ORDER BY version) FROM mallard.schemas WHERE name = 's'").fetchone()[0] == [1, 2]
    assert schema_rows(orders, "s", 1)["color"]["domain"] == ["blue", "green", "red"]
    assert schema_rows(orders, "s")["color"]["domain"] is None


def test_infer_from_stored_statistics_reads_no_rows(orders: engine.Connection) -> None:
    orders.execute("COMPUTE STATISTICS FOR orders AS order_stats")
    orders.execute("CREATE TABLE gone AS SELECT * FROM orders")
    orders.execute("DROP TABLE orders")
    orders.execute("INFER SCHEMA s FROM order_stats")
    assert orders.execute("SELECT source FROM mallard.schemas WHERE name = 's'").fetchone()[0] == "order_stats"
    assert schema_rows(orders, "s")["level"]["max"] == 5.0
    assert kinds(orders, "VALIDATE gone AGAINST s") == set()
    assert kinds(orders, "VALIDATE STATISTICS order_stats AGAINST s") == set()


def test_alter_schema_edits_make_versions(orders: engine.Connection) -> None:
    orders.execute("INFER SCHEMA s FROM orders")
    orders.execute("ALTER SCHEMA s ALTER COLUMN color SET (domain = ['red', 'green'], min_domain_mass = 0.9, min_fraction = 0.5)")
    orders.execute("ALTER SCHEMA s ALTER COLUMN amount SET (min = 10, max = NULL, drift_jensen_shannon_divergence = 0.2)")
    orders.execute("ALTER SCHEMA s ALTER COLUMN color SET (skew_l_infinity = 0.05, in_environment = ['training'])")
    orders.execute("ALTER SCHEMA s ALTER COLUMN level RESET (min, max)")
    orders.execute("ALTER SCHEMA s ADD COLUMN coupon STRING")
    orders.execute("ALTER SCHEMA s DROP COLUMN delta")
    orders.execute("ALTER SCHEMA s SET (min_examples_count = 100, max_duplicate_fraction = 0)")
    s = schema_rows(orders, "s")
    assert (s["color"]["domain"], s["color"]["min_domain_mass"], s["color"]["min_fraction"]) == (["red", "green"], 0.9, 0.5)
    assert (s["amount"]["min"], s["amount"]["max"], s["amount"]["drift_comparator"]) == \
        (10.0, None, "jensen_shannon_divergence <= 0.2")
    assert s["color"]["skew_comparator"] == "l_infinity <= 0.05" and s["color"]["in_environment"] == ["TRAINING"]
    assert (s["level"]["min"], s["level"]["max"]) == (None, None)
    assert s["coupon"]["type"] == "STRING" and "delta" not in s
    versions = orders.execute("SELECT version, statement FROM mallard.schemas WHERE name = 's' ORDER BY version").fetchall()
    assert [v for v, _ in versions] == list(range(1, 9))
    assert versions[-1][1] == "ALTER SCHEMA s SET (min_examples_count = 100, max_duplicate_fraction = 0)"
    assert json.loads(export_schema(orders, "s"))["default_environment"] == ["TRAINING"]
    found = kinds(orders, "VALIDATE orders AGAINST s")
    assert found == {("color", "ENUM_TYPE_UNEXPECTED_STRING_VALUES"), ("amount", "INT_TYPE_SMALL_INT"),
                     ("coupon", "SCHEMA_MISSING_COLUMN"), ("delta", "SCHEMA_NEW_COLUMN")}


def test_changing_a_type_clears_what_no_longer_applies(orders: engine.Connection) -> None:
    orders.execute("INFER SCHEMA s FROM orders")
    cur = orders.execute("ALTER SCHEMA s ALTER COLUMN level SET (type = 'STRING')")
    assert "cleared min, max" in cur.message
    s = schema_rows(orders, "s")["level"]
    assert (s["type"], s["min"], s["max"]) == ("STRING", None, None)


@pytest.mark.parametrize("statement, error, match", [
    ("ALTER SCHEMA s ALTER COLUMN amount SET (drift_l_infinity = 0.1)", engine.ProgrammingError,
     "drift_l_infinity applies to STRING, BOOLEAN columns; column amount is INT .for it use drift_jensen_shannon_divergence."),
    ("ALTER SCHEMA s ALTER COLUMN color SET (skew_jensen_shannon_divergence = 0.1)", engine.ProgrammingError,
     "skew_jensen_shannon_divergence applies to INT, FLOAT, TIMESTAMP columns; column color is STRING"),
    ("ALTER SCHEMA s ALTER COLUMN color SET (domian = ['a'])", engine.ProgrammingError, "unknown column property 'domian'"),
    ("ALTER SCHEMA s ALTER COLUMN color SET (min_fraction = 2)", engine.DataError, r"expected a fraction in \[0, 1\], found 2"),
    ("ALTER SCHEMA s ALTER COLUMN amount SET (min = 5, max = 1)", engine.DataError, "min 5 is above max 1"),
    ("ALTER SCHEMA s ALTER COLUMN nothing SET (min = 1)", engine.ProgrammingError, "schema has no column 'nothing'"),
    ("ALTER SCHEMA s SET (environments = ['SERVING'])", engine.DataError, "environments must include TRAINING"),
    ("ALTER SCHEMA missing ALTER COLUMN a SET (min = 1)", engine.ProgrammingError, "expected a data schema named 'missing'"),
    ("ALTER SCHEMA s ADD COLUMN id INT", engine.ProgrammingError, "already has a column 'id'"),
    ("ALTER SCHEMA s ALTER COLUMN id RESET (type)", engine.ProgrammingError, "type cannot be reset"),
])
def test_bad_alter_writes_nothing(orders: engine.Connection, statement: str, error: type, match: str) -> None:
    orders.execute("INFER SCHEMA s FROM orders")
    orders.execute("ALTER SCHEMA s ALTER COLUMN color SET (not_in_environment = ['TRAINING'])")
    before = counts(orders)
    with pytest.raises(error, match=match):
        orders.execute(statement)
    assert counts(orders) == before


def test_bad_validate_writes_nothing(orders: engine.Connection) -> None:
    orders.execute("INFER SCHEMA s FROM orders")
    before = counts(orders)
    with pytest.raises(engine.ProgrammingError, match="expected a data schema named 'nope'; known schemas: s"):
        orders.execute("VALIDATE orders AGAINST nope")
    with pytest.raises(engine.ProgrammingError, match="unknown environment 'SERVING': schema s declares none"):
        orders.execute("VALIDATE orders AGAINST s WITH (environment = 'SERVING')")
    orders.execute("ALTER SCHEMA s SET (environments = ['TRAINING'])")
    before = counts(orders)
    with pytest.raises(engine.ProgrammingError, match="unknown environment 'serving': schema s declares TRAINING"):
        orders.execute("VALIDATE orders AGAINST s WITH (environment = serving)")
    with pytest.raises(engine.ProgrammingError, match="previous = ...\\): expected stored statistics or a table named last_month"):
        orders.execute("VALIDATE orders AGAINST s WITH (previous = last_month)")
    with pytest.raises(engine.ProgrammingError, match="expected a table or view named no_table"):
        orders.execute("VALIDATE no_table AGAINST s")
    with pytest.raises(engine.ProgrammingError, match="has no version 9"):
        orders.execute("VALIDATE orders AGAINST s VERSION 9")
    with pytest.raises(engine.ProgrammingError, match="unknown VALIDATE option 'enviroment'"):
        orders.execute("VALIDATE orders AGAINST s WITH (enviroment = 'TRAINING')")
    assert counts(orders) == before
    assert orders.execute("SHOW TABLES").fetchall() == [("orders",)]  # no staging left behind


def test_validate_an_older_version(orders: engine.Connection) -> None:
    orders.execute("INFER SCHEMA s FROM orders")
    orders.execute("ALTER SCHEMA s ALTER COLUMN level SET (max = 3)")
    assert kinds(orders, "VALIDATE orders AGAINST s") == {("level", "INT_TYPE_BIG_INT")}
    assert kinds(orders, "VALIDATE orders AGAINST s VERSION 1") == set()
    assert orders.execute("SELECT list(schema_version ORDER BY run_id) FROM mallard.validation_runs").fetchone()[0] == [2, 1]


NEWER_ORDERS = """
CREATE OR REPLACE TABLE newer AS SELECT * REPLACE (
    CASE WHEN id % 50 = 0 THEN 'purple' ELSE color END AS color,
    amount * 3 AS amount,
    CASE WHEN id % 100 = 0 THEN NULL ELSE level END AS level,
    CASE WHEN id % 100 = 1 THEN 'nan'::DOUBLE ELSE score END AS score,
    CASE WHEN id % 2 = 0 THEN 'AB-' || id ELSE code END AS code), id % 3 AS channel
FROM orders
"""


def test_update_schema_relaxes_so_the_data_conforms(orders: engine.Connection) -> None:
    orders.execute("INFER SCHEMA s FROM orders")
    orders.execute(NEWER_ORDERS)
    before = kinds(orders, "VALIDATE newer AGAINST s")
    assert before == {("color", "ENUM_TYPE_UNEXPECTED_STRING_VALUES"), ("amount", "INT_TYPE_BIG_INT"),
                      ("amount", "MALLARD_NUMERIC_SHIFT"), ("level", "FEATURE_TYPE_LOW_FRACTION_PRESENT"),
                      ("score", "FLOAT_TYPE_HAS_NAN"), ("code", "MALLARD_FORMAT_CHANGE"),
                      ("code", "FEATURE_TYPE_HIGH_UNIQUE"), ("channel", "SCHEMA_NEW_COLUMN")}
    changes = orders.execute("UPDATE SCHEMA s FROM newer").fetchall()
    assert {(c[0], c[1]) for c in changes} == before
    assert ("color", "ENUM_TYPE_UNEXPECTED_STRING_VALUES", "domain extended with 'purple'", "3 values", "4 values") in changes
    assert kinds(orders, "VALIDATE newer AGAINST s") == set()
    assert kinds(orders, "VALIDATE orders AGAINST s VERSION 1") == set()
    assert orders.execute("SELECT max(version) FROM mallard.schemas WHERE name = 's'").fetchone()[0] == 2
    channel = schema_rows(orders, "s")["channel"]
    assert (channel["type"], channel["min"], channel["max"], channel["min_fraction"]) == ("INT", 0.0, 2.0, 1.0)


def test_update_schema_keeps_checking_a_changed_type(orders: engine.Connection) -> None:
    """TFDV's update_schema deprecates a column whose type changed, so validation passes silently
    afterwards; Mallard keeps the type and keeps reporting until the change is accepted."""
    orders.execute("INFER SCHEMA s FROM orders")
    orders.execute("CREATE TABLE recoded AS SELECT * REPLACE ('L' || level AS level) FROM orders")
    changes = orders.execute("UPDATE SCHEMA s FROM recoded").fetchall()
    assert [(c[0], c[1], c[3], c[4]) for c in changes] == [("level", "UNEXPECTED_DATA_TYPE", "INT", "STRING")]
    assert "NOT applied" in changes[0][2]
    assert orders.execute("SELECT max(version) FROM mallard.schemas").fetchone()[0] == 1  # nothing applied
    assert kinds(orders, "VALIDATE recoded AGAINST s") == {("level", "UNEXPECTED_DATA_TYPE")}
    assert not schema_rows(orders, "s")["level"]["deprecated"]
    changes = orders.execute("UPDATE SCHEMA s FROM recoded WITH (accept_type_changes = TRUE)").fetchall()
    assert [(c[0], c[3], c[4]) for c in changes] == [("level", "INT", "STRING")]
    level = schema_rows(orders, "s")["level"]
    assert (level["type"], level["domain"]) == ("STRING", ["L1", "L2", "L3", "L4", "L5"])
    assert kinds(orders, "VALIDATE recoded AGAINST s") == set()


def test_update_schema_under_an_environment(orders: engine.Connection) -> None:
    orders.execute("INFER SCHEMA s FROM orders WITH (environments = ['TRAINING', 'SERVING'])")
    orders.execute("ALTER SCHEMA s ALTER COLUMN score SET (not_in_environment = ['SERVING'])")
    orders.execute("CREATE TABLE served AS SELECT * EXCLUDE (score) FROM orders")
    assert orders.execute("UPDATE SCHEMA s FROM served WITH (environment = 'SERVING')").fetchall() == []
    changes = orders.execute("UPDATE SCHEMA s FROM served").fetchall()
    assert [(c[0], c[1]) for c in changes] == [("score", "SCHEMA_MISSING_COLUMN")]


def test_export_and_import_round_trip(orders: engine.Connection, tmp_path: Path) -> None:
    orders.execute("INFER SCHEMA s FROM orders WITH (environments = ['TRAINING', 'SERVING'])")
    orders.execute("ALTER SCHEMA s ALTER COLUMN color SET (drift_l_infinity = 0.1, not_in_environment = ['SERVING'])")
    orders.execute("ALTER SCHEMA s ALTER COLUMN score SET (skew_jensen_shannon_divergence = 0.2, jensen_shannon_histogram = 'QUANTILES')")
    path = tmp_path / "s.json"
    orders.execute(f"EXPORT SCHEMA s TO '{path}'")
    document = json.loads(path.read_text())
    color = next(f for f in document["feature"] if f["name"] == "color")
    assert color["drift_comparator"] == {"infinity_norm": {"threshold": 0.1}}
    assert color["string_domain"] == {"value": ["blue", "green", "red"]} and color["not_in_environment"] == ["SERVING"]
    score = next(f for f in document["feature"] if f["name"] == "score")
    assert score["skew_comparator"]["jensen_shannon_divergence"] == {"threshold": 0.2, "source": {"type": "QUANTILES"}}
    orders.execute(f"IMPORT SCHEMA copied FROM '{path}'")
    assert schema_rows(orders, "copied") == schema_rows(orders, "s")
    assert import_schema(orders, "copied", export_schema(orders, "s", version=1)) == 2
    assert schema_rows(orders, "copied") == schema_rows(orders, "s", 1)
    orders.execute(f"EXPORT SCHEMA s VERSION 1 TO '{path}'")
    assert json.loads(path.read_text()) == json.loads(export_schema(orders, "s", 1))


@pytest.mark.parametrize("text, match", [
    ("{not json", "expected a JSON schema document, found invalid JSON"),
    ('{"feature": [{"name": "x", "type": "INT", "colour": 1}]}', "unknown key 'colour' at feature\\[0\\]"),
    ('{"feature": [{"name": "x", "type": "DECIMAL"}]}', "feature 'x'.type: expected a type among INT"),
    ('{"feature": [{"name": "x", "type": "INT", "presence": {"min_fraction": 3}}]}', "min_fraction: expected a fraction"),
    ('{"feature": [{"name": "x", "type": "INT"}, {"name": "X", "type": "INT"}]}', "column 'x' appears twice"),
    ('{"feature": [{"name": "x", "type": "INT", "drift_comparator": {"infinity_norm": {"threshold": 0.1}}}]}',
     "drift_l_infinity applies to BOOLEAN, STRING columns, the column is INT"),
    ('{"feature": [{"name": "x", "type": "INT", "int_domain": {"min": 9, "max": 0}}]}',
     "bad.json: column x: min 9 is above max 0"),
])
def test_import_rejects_bad_documents(con: engine.Connection, tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(engine.DataError, match=match):
        con.execute(f"IMPORT SCHEMA s FROM '{path}'")
    with pytest.raises(engine.DataError, match="schema file not found: .*missing.json"):
        con.execute(f"IMPORT SCHEMA s FROM '{tmp_path / 'missing.json'}'")
    assert con.execute("SELECT count(*) FROM mallard.schemas").fetchone()[0] == 0


def test_schemas_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with engine.connect(path, progress="off") as con:
        con.execute(ORDERS)
        con.execute("INFER SCHEMA s FROM orders")
        con.execute("ALTER SCHEMA s ALTER COLUMN level SET (max = 4)")
    with engine.connect(path, autocommit=True, progress="off") as con:
        assert schema_rows(con, "s")["level"]["max"] == 4.0
        assert kinds(con, "VALIDATE orders AGAINST s") == {("level", "INT_TYPE_BIG_INT")}
    with engine.connect(path, read_only=True) as con:
        assert kinds(con, "VALIDATE orders AGAINST s VERSION 1") == set()


def test_validate_stored_statistics_and_previous_spans(orders: engine.Connection) -> None:
    orders.execute("INFER SCHEMA s FROM orders")
    orders.execute("ALTER SCHEMA s SET (num_examples_drift_min_fraction = 0.8)")
    orders.execute("CREATE TABLE small AS SELECT * FROM orders WHERE id < 1000")
    orders.execute("COMPUTE STATISTICS FOR orders AS last_span")
    orders.execute("DROP TABLE orders")  # the previous span is read from its statistics only
    alone = kinds(orders, "VALIDATE small AGAINST s")
    assert (None, "COMPARATOR_LOW_NUM_EXAMPLES") not in alone
    assert kinds(orders, "VALIDATE small AGAINST s WITH (previous = last_span)") == \
        alone | {(None, "COMPARATOR_LOW_NUM_EXAMPLES")}
    orders.execute("COMPUTE STATISTICS FOR small AS small_stats")
    assert kinds(orders, "VALIDATE STATISTICS small_stats AGAINST s WITH (previous = last_span)") == \
        kinds(orders, "VALIDATE small AGAINST s WITH (previous = last_span)")
