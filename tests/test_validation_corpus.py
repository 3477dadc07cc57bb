"""The acceptance corpus: corrupted variants of the real flights data, each validated against a
schema inferred from the other half of the data; every test asserts exactly the anomalies
Mallard reports (column and kind), and a clean split reports none.

Training is the even rows of flights (168,388); serving is a 1-in-16 sample of the odd rows
(21,049), corrupted one way per case; a few cases run at full size (the 168,388 odd rows).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import engine
from tests.test_validation_flights import flights_path, load_flights  # noqa: F401

CLEAN = "SELECT * EXCLUDE rid FROM serving"


@pytest.fixture(scope="module")
def corpus(flights_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[engine.Connection]:
    path = tmp_path_factory.mktemp("corpus") / "corpus.duckdb"
    con = engine.connect(path, autocommit=True, progress="off")
    load_flights(con, flights_path, "raw")
    # speed (mph) is the one float feature: derived, as a feature pipeline would
    con.execute("CREATE TABLE flights AS SELECT *, round(distance / air_time * 60, 1) AS speed FROM raw")
    con.execute("CREATE TABLE training AS SELECT * FROM flights WHERE rowid % 2 = 0")
    con.execute("CREATE TABLE serving AS SELECT *, rowid AS rid FROM flights WHERE rowid % 2 = 1 AND (rowid // 2) % 8 = 0")
    con.execute("CREATE TABLE serving_full AS SELECT * FROM flights WHERE rowid % 2 = 1")
    con.execute("CREATE TABLE last_week AS SELECT * FROM flights WHERE rowid % 2 = 1 AND (rowid // 2) % 8 = 1")
    con.execute("INFER SCHEMA flights_schema FROM training")
    con.execute("ALTER SCHEMA flights_schema SET (environments = ['TRAINING', 'SERVING'],"
                " num_examples_drift_min_fraction = 0.5, num_examples_drift_max_fraction = 2)")
    con.execute("ALTER SCHEMA flights_schema ALTER COLUMN arr_delay SET (not_in_environment = ['SERVING'])")
    con.execute("ALTER SCHEMA flights_schema ALTER COLUMN carrier SET (drift_l_infinity = 0.1)")
    con.execute("ALTER SCHEMA flights_schema ALTER COLUMN speed SET (skew_jensen_shannon_divergence = 0.1,"
                " jensen_shannon_histogram = 'QUANTILES')")
    yield con
    con.close()


def found(con: engine.Connection, table_sql: str, options: str = "", name: str = "variant") -> set[tuple[str | None, str]]:
    con.execute(f"CREATE OR REPLACE TABLE {name} AS {table_sql}")
    rows = con.execute(f"VALIDATE {name} AGAINST flights_schema{options}").fetchall()
    return {(r[0], r[1]) for r in rows}


# (case, the variant's SQL over `serving` (rid = row id), VALIDATE options, expected anomalies)
CASES = [
    ("dropped_column", "SELECT * EXCLUDE (rid, carrier) FROM serving", "",
     {("carrier", "SCHEMA_MISSING_COLUMN")}),
    ("new_column", "SELECT * EXCLUDE rid, distance * 1.609344 AS distance_km FROM serving", "",
     {("distance_km", "SCHEMA_NEW_COLUMN")}),
    ("int_turned_string", "SELECT * EXCLUDE rid REPLACE (carrier || flight AS flight) FROM serving", "",
     {("flight", "UNEXPECTED_DATA_TYPE")}),
    ("nulls_in_required_column",
     "SELECT * EXCLUDE rid REPLACE (CASE WHEN rid % 20 = 1 THEN NULL ELSE carrier END AS carrier) FROM serving", "",
     {("carrier", "FEATURE_TYPE_LOW_FRACTION_PRESENT")}),
    ("unseen_category",
     "SELECT * EXCLUDE rid REPLACE (CASE WHEN rid % 30 = 1 THEN 'ZZ' ELSE carrier END AS carrier) FROM serving", "",
     {("carrier", "ENUM_TYPE_UNEXPECTED_STRING_VALUES")}),
    ("out_of_range_values",
     "SELECT * EXCLUDE rid REPLACE (CASE WHEN rid % 50 = 1 THEN 13 ELSE month END AS month,"
     " CASE WHEN rid % 50 = 3 THEN -distance ELSE distance END AS distance) FROM serving", "",
     {("month", "INT_TYPE_BIG_INT"), ("distance", "INT_TYPE_SMALL_INT")}),
    ("infinity_in_float",
     "SELECT * EXCLUDE rid REPLACE (CASE WHEN rid % 50 = 1 THEN 'inf'::DOUBLE ELSE speed END AS speed) FROM serving", "",
     {("speed", "FLOAT_TYPE_HAS_INF")}),
    ("nan_in_float",
     "SELECT * EXCLUDE rid REPLACE (CASE WHEN rid % 50 = 1 THEN 'nan'::DOUBLE ELSE speed END AS speed) FROM serving", "",
     {("speed", "FLOAT_TYPE_HAS_NAN")}),
    ("label_absent_in_training", "SELECT * EXCLUDE (rid, arr_delay) FROM serving", " WITH (environment = 'TRAINING')",
     {("arr_delay", "SCHEMA_MISSING_COLUMN")}),
    ("volume_drop", "SELECT * EXCLUDE rid FROM serving WHERE rid % 10 = 1", " WITH (previous = last_week)",
     {(None, "COMPARATOR_LOW_NUM_EXAMPLES")}),
    ("volume_spike", f"{CLEAN} UNION ALL SELECT * FROM last_week UNION ALL SELECT * FROM training LIMIT 50000",
     " WITH (previous = last_week)", {(None, "COMPARATOR_HIGH_NUM_EXAMPLES")}),
    ("category_collapse", "SELECT * EXCLUDE rid REPLACE ('UA' AS carrier) FROM serving", " WITH (previous = last_week)",
     {("carrier", "COMPARATOR_L_INFTY_HIGH")}),
    ("unit_change", "SELECT * EXCLUDE rid REPLACE (round(distance * 1.609344)::BIGINT AS distance) FROM serving", "",
     {("distance", "INT_TYPE_BIG_INT"), ("distance", "MALLARD_NUMERIC_SHIFT")}),
    ("duplicate_rows", f"{CLEAN} UNION ALL SELECT * EXCLUDE rid FROM serving WHERE rid % 20 = 1", "",
     {(None, "MALLARD_DUPLICATE_ROWS")}),
    ("format_change",
     "SELECT * EXCLUDE rid REPLACE (strftime(time_hour::TIMESTAMP, '%m/%d/%Y %H:%M') AS time_hour) FROM serving", "",
     {("time_hour", "MALLARD_FORMAT_CHANGE")}),
    ("high_cardinality_explosion",
     "SELECT * EXCLUDE rid REPLACE ('N' || lpad((rid // 16)::VARCHAR, 5, '0') AS tailnum) FROM serving", "",
     {("tailnum", "FEATURE_TYPE_HIGH_UNIQUE")}),
    ("missing_rise_in_optional_column",
     "SELECT * EXCLUDE rid REPLACE (CASE WHEN rid % 7 = 1 THEN NULL ELSE dep_time END AS dep_time) FROM serving", "",
     {("dep_time", "MALLARD_MISSING_RISE")}),
    ("numeric_shift_without_comparator", "SELECT * EXCLUDE rid REPLACE (dep_delay + 45 AS dep_delay) FROM serving", "",
     {("dep_delay", "MALLARD_NUMERIC_SHIFT")}),
]


@pytest.mark.parametrize("case, sql, options, expected", CASES, ids=[c[0] for c in CASES])
def test_corrupted_variant_reports_its_anomalies(corpus: engine.Connection, case: str, sql: str, options: str,
                                                 expected: set[tuple[str | None, str]]) -> None:
    assert found(corpus, sql, options) == expected


def test_corpus_has_at_least_fifteen_corruptions() -> None:
    assert len(CASES) >= 15


def test_clean_split_reports_nothing(corpus: engine.Connection) -> None:
    assert found(corpus, CLEAN) == set()
    assert found(corpus, CLEAN, " WITH (previous = last_week, training = last_week)") == set()


def test_label_absent_under_serving_is_expected(corpus: engine.Connection) -> None:
    serving_rows = "SELECT * EXCLUDE (rid, arr_delay) FROM serving"
    assert found(corpus, serving_rows, " WITH (environment = 'SERVING')") == set()
    assert found(corpus, serving_rows) == {("arr_delay", "SCHEMA_MISSING_COLUMN")}


def test_category_collapse_is_invisible_without_a_comparator_reference(corpus: engine.Connection) -> None:
    assert found(corpus, "SELECT * EXCLUDE rid REPLACE ('UA' AS carrier) FROM serving") == set()


def test_skew_between_months(corpus: engine.Connection) -> None:
    """Training on January, serving in July: speeds skew (TFDV's JSD comparator over quantile
    histograms), the month moves (MALLARD_NUMERIC_SHIFT), and July has a 1 a.m. departure no
    training row had."""
    corpus.execute("CREATE OR REPLACE TABLE january AS SELECT * FROM flights WHERE month = 1")
    anomalies = found(corpus, "SELECT * FROM flights WHERE month = 7", " WITH (training = january)")
    assert anomalies == {("speed", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"),
                         ("month", "MALLARD_NUMERIC_SHIFT"), ("hour", "INT_TYPE_SMALL_INT")}
    rows = corpus.execute("VALIDATE variant AGAINST flights_schema WITH (training = january)").fetchall()
    skew = next(r for r in rows if r[1] == "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH")
    assert skew[4] > skew[5] == 0.1 and "training" in skew[3]


def test_full_size_clean_half_and_duplicates(corpus: engine.Connection) -> None:
    assert found(corpus, "SELECT * FROM serving_full") == {("hour", "INT_TYPE_SMALL_INT")}  # one 1 a.m. flight
    assert corpus.execute("SELECT min(hour) FROM serving_full").fetchone()[0] == 1
    doubled = "SELECT * FROM serving_full UNION ALL SELECT * FROM serving_full WHERE rowid % 100 = 0"
    assert found(corpus, doubled) == {("hour", "INT_TYPE_SMALL_INT"), (None, "MALLARD_DUPLICATE_ROWS")}


def test_anomaly_rows_measure_against_thresholds(corpus: engine.Connection) -> None:
    corpus.execute("CREATE OR REPLACE TABLE variant AS SELECT * EXCLUDE rid REPLACE "
                   "(CASE WHEN rid % 30 = 1 THEN 'ZZ' ELSE carrier END AS carrier) FROM serving")
    cur = corpus.execute("VALIDATE variant AGAINST flights_schema")
    assert [d[0] for d in cur.description] == \
        ["column_name", "anomaly", "severity", "description", "measured", "threshold", "source"]
    column, kind, severity, description, measured, threshold, source = cur.fetchone()
    share = corpus.execute("SELECT avg((carrier = 'ZZ')::INT) FROM variant").fetchone()[0]
    assert (severity, source) == ("ERROR", "TFDV") and threshold == pytest.approx(0.001)  # the inferred margin
    assert measured == pytest.approx(share) and "'ZZ'" in description
    run = corpus.execute("SELECT run_id, anomaly_count, row_count FROM mallard.validation_runs ORDER BY run_id DESC LIMIT 1").fetchone()
    stored = corpus.execute("SELECT anomaly, measured FROM mallard.anomalies WHERE run_id = ?", [run[0]]).fetchall()
    assert stored == [(kind, measured)] and run[1:] == (1, 21049)


def test_thresholds_follow_settings_and_schema_fields(corpus: engine.Connection) -> None:
    shifted = "SELECT * EXCLUDE rid REPLACE (dep_delay + 45 AS dep_delay) FROM serving"
    corpus.execute("SET validation_shift_threshold = 1")
    try:
        assert found(corpus, shifted) == set()
    finally:
        corpus.execute("RESET validation_shift_threshold")
    corpus.execute("CREATE OR REPLACE TABLE doubled AS SELECT * EXCLUDE rid FROM serving UNION ALL "
                   "SELECT * EXCLUDE rid FROM serving WHERE rid % 500 = 1")
    assert {r[1] for r in corpus.execute("VALIDATE doubled AGAINST flights_schema").fetchall()} == {"MALLARD_DUPLICATE_ROWS"}
    corpus.execute("SET validation_duplicate_threshold = 0.01")
    try:
        assert corpus.execute("VALIDATE doubled AGAINST flights_schema").fetchall() == []
    finally:
        corpus.execute("RESET validation_duplicate_threshold")
