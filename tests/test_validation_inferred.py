"""A blind run's findings on validation: an inferred schema raises no error on clean data of
the same source (inferred ranges and domains are soft), VALIDATE reads queries and table
functions, data schemas have a DROP of their own, and a typo'd environment is flagged."""
from __future__ import annotations

from pathlib import Path

import pytest

import engine
from tests.test_validation_flights import flights_path, load_flights  # noqa: F401


@pytest.fixture(scope="module")
def halves(flights_path: Path) -> engine.Connection:
    con = engine.connect(autocommit=True, progress="off")
    load_flights(con, flights_path, "flights")
    con.execute("CREATE TABLE jan_jun AS SELECT * FROM flights WHERE month <= 6")
    con.execute("CREATE TABLE jul_dec AS SELECT * FROM flights WHERE month > 6")
    con.execute("INFER SCHEMA bare FROM jan_jun")
    yield con
    con.close()


def test_an_inferred_schema_raises_no_error_on_clean_data_of_the_same_source(halves):
    rows = halves.execute("VALIDATE jul_dec AGAINST bare").fetchall()
    assert [r for r in rows if r[2] == "ERROR"] == []
    soft = {(r[0], r[1]): r[3] for r in rows}
    assert "ALTER SCHEMA bare ALTER COLUMN month SET (max = 12) widens it" in soft[("month", "INT_TYPE_BIG_INT")]
    assert "ALTER SCHEMA bare ALTER COLUMN hour SET (min = 1) widens it" in soft[("hour", "INT_TYPE_SMALL_INT")]
    assert ("dest", "ENUM_TYPE_UNEXPECTED_STRING_VALUES") not in soft  # 0.08% new airports: within the margin


def test_a_range_set_by_hand_is_an_error_again(halves):
    halves.execute("INFER OR REPLACE SCHEMA confirmed FROM jan_jun")
    halves.execute("ALTER SCHEMA confirmed ALTER COLUMN hour SET (min = 5)")
    rows = {(r[0], r[1]): r[2] for r in halves.execute("VALIDATE jul_dec AGAINST confirmed").fetchall()}
    assert rows[("hour", "INT_TYPE_SMALL_INT")] == "ERROR"
    assert rows[("month", "INT_TYPE_BIG_INT")] == "WARNING"


def test_validate_reads_a_query_and_a_table_function_and_leaves_no_view(halves, tmp_path):
    by_query = halves.execute("VALIDATE (SELECT * FROM jul_dec WHERE month = 12) AGAINST bare").fetchall()
    assert ("month", "INT_TYPE_BIG_INT") in {(r[0], r[1]) for r in by_query}
    parquet = tmp_path / "jan.parquet"
    halves.execute(f"COPY (SELECT * FROM jan_jun WHERE month = 1) TO '{parquet}' (FORMAT parquet)")
    by_function = halves.execute("VALIDATE read_parquet(?) AGAINST bare", [str(parquet)]).fetchall()
    assert [r for r in by_function if r[1] in ("INT_TYPE_BIG_INT", "INT_TYPE_SMALL_INT")] == []
    target = halves.execute("SELECT target FROM mallard.validation_runs ORDER BY run_id DESC LIMIT 1").fetchone()[0]
    assert target.startswith("READ_PARQUET(") or target.lower().startswith("read_parquet(")
    assert halves.execute("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'mallard_validate%'"
                          ).fetchone() == (0,)


def test_drop_data_schema_keeps_duckdb_drop_schema_for_namespaces(con):
    con.execute("CREATE TABLE t AS SELECT 1 AS x")
    con.execute("INFER SCHEMA s FROM t")
    con.execute("ALTER SCHEMA s ALTER COLUMN x SET (min = 0)")
    con.execute("CREATE SCHEMA s")  # a DuckDB namespace of the same name
    assert con.execute("DROP DATA SCHEMA s").rowcount == 2
    assert con.execute("SELECT count(*) FROM mallard.schemas WHERE name = 's'").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 's'").fetchone() == (1,)
    with pytest.raises(engine.ProgrammingError, match="data schema 's' does not exist"):
        con.execute("DROP DATA SCHEMA s")
    assert con.execute("DROP DATA SCHEMA IF EXISTS s").rowcount == 0
    con.execute("DROP SCHEMA s")
    assert con.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 's'").fetchone() == (0,)


def test_an_environment_named_by_one_column_only_is_flagged_as_a_likely_typo(con):
    con.execute("CREATE TABLE t AS SELECT 1 AS a, 2 AS b")
    con.execute("INFER SCHEMA s FROM t WITH (environments = ['TRAINING', 'SERVING'])")
    with pytest.warns(UserWarning, match="environment 'SERVNG' is named only by column a's not_in_environment"):
        cursor = con.execute("ALTER SCHEMA s ALTER COLUMN a SET (not_in_environment = ['SERVNG'])")
    assert "a typo?" in cursor.message
    cursor = con.execute("ALTER SCHEMA s ALTER COLUMN b SET (not_in_environment = ['SERVING'])")
    assert "warning" not in cursor.message
