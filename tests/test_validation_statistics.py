"""COMPUTE / SHOW / DROP STATISTICS: TFDV's statistics computed by SQL, stored in the catalog,
merged across spans without rescanning them, checked against exact DuckDB aggregates."""
from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine
from tests.test_validation_flights import FLIGHTS_ROWS, flights_path, load_flights  # noqa: F401

NUMERIC = ["dep_time", "dep_delay", "arr_delay", "air_time", "distance", "hour", "month"]
STRINGS = ["carrier", "tailnum", "origin", "dest"]


@pytest.fixture(scope="module")
def flights_db(flights_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[engine.Connection]:
    """A database file with flights, its statistics, and one table per month."""
    path = tmp_path_factory.mktemp("stats") / "flights.duckdb"
    con = engine.connect(path, autocommit=True, progress="off")
    load_flights(con, flights_path)
    con.execute("COMPUTE STATISTICS FOR flights")
    yield con
    con.close()


def stats(con: engine.Connection, name: str) -> dict[str, dict[str, Any]]:
    cur = con.execute(f"SHOW STATISTICS {name}")
    names = [d[0] for d in cur.description]
    return {row[0]: dict(zip(names, row)) for row in cur.fetchall()}


def test_numeric_statistics_match_exact_aggregates(flights_db: engine.Connection) -> None:
    shown = stats(flights_db, "flights")
    for column in NUMERIC:
        exact = flights_db.execute(
            f"SELECT count(*), count(*) - count({column}), avg({column}), stddev_pop({column}), min({column}),"
            f" max({column}), count(*) FILTER (WHERE {column} = 0) FROM flights").fetchone()
        row = shown[column]
        assert (row["count"], row["missing"]) == (exact[0], exact[1]), column
        assert row["mean"] == pytest.approx(exact[2], rel=1e-9)
        assert row["std_dev"] == pytest.approx(exact[3], rel=1e-9)
        assert (row["min"], row["max"], row["num_zeros"]) == (exact[4], exact[5], exact[6])
        assert row["type"] == "INT" and row["nan_count"] == 0 and row["inf_count"] == 0


def test_quantiles_are_within_one_percent_of_rank(flights_db: engine.Connection) -> None:
    shown = stats(flights_db, "flights")
    for column in ("dep_delay", "distance", "air_time", "sched_dep_time"):
        row = shown[column]
        below_median = flights_db.execute(
            f"SELECT count(*) FILTER (WHERE {column} < ?) / count({column}),"
            f" count(*) FILTER (WHERE {column} <= ?) / count({column}) FROM flights", [row["median"], row["median"]]).fetchone()
        assert below_median[0] - 0.01 <= 0.5 <= below_median[1] + 0.01, (column, below_median)
        edges = [b["low"] for b in row["quantile_histogram"]] + [row["quantile_histogram"][-1]["high"]]
        assert edges[0] == row["min"] and edges[-1] == row["max"] and edges == sorted(edges)
        assert len(row["quantile_histogram"]) == 10


def test_equal_width_histogram_covers_the_values(flights_db: engine.Connection) -> None:
    row = stats(flights_db, "flights")["distance"]
    buckets = row["histogram"]
    assert len(buckets) == 10
    assert buckets[0]["low"] == row["min"] and buckets[-1]["high"] == row["max"]
    width = (row["max"] - row["min"]) / 10
    assert all(b["high"] - b["low"] == pytest.approx(width) for b in buckets)
    assert sum(b["count"] for b in buckets) == pytest.approx(row["count"] - row["missing"])
    exact_first = flights_db.execute("SELECT count(*) FROM flights WHERE distance <= ?", [buckets[0]["high"]]).fetchone()[0]
    assert buckets[0]["count"] == pytest.approx(exact_first, rel=0.03)


def test_string_statistics_match_exact_aggregates(flights_db: engine.Connection) -> None:
    shown = stats(flights_db, "flights")
    for column in STRINGS:
        distinct, length, missing = flights_db.execute(
            f"SELECT count(DISTINCT {column}), avg(length({column})), count(*) - count({column}) FROM flights").fetchone()
        row = shown[column]
        assert (row["type"], row["distinct_count"], row["missing"]) == ("STRING", distinct, missing)
        assert row["avg_length"] == pytest.approx(length)
        top = flights_db.execute(
            f"SELECT {column}, count(*) FROM flights WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20"
        ).fetchall()
        assert [(v["value"], v["count"]) for v in row["top_values"]] == top


def test_value_counts_and_patterns_are_readable_as_tables(flights_db: engine.Connection) -> None:
    ranked = flights_db.execute(
        "SELECT value, count FROM validation_values('flights') WHERE column_name = 'dest' AND kind = 'value' ORDER BY rank"
    ).fetchall()
    assert len(ranked) == 105 and sum(c for _, c in ranked) == FLIGHTS_ROWS
    shapes = dict(flights_db.execute(
        "SELECT value, count FROM validation_values('flights') WHERE column_name = 'time_hour' AND kind = 'pattern'"
    ).fetchall())
    assert shapes == {"9999-99-99A99:99:99A": FLIGHTS_ROWS}


def test_nan_and_infinity_are_counted_apart(con: engine.Connection) -> None:
    con.execute("CREATE TABLE readings AS SELECT CASE WHEN range % 10 = 0 THEN 'nan'::DOUBLE"
                " WHEN range % 10 = 1 THEN 'inf'::DOUBLE WHEN range % 10 = 2 THEN NULL ELSE range::DOUBLE END AS v"
                " FROM range(1000)")
    con.execute("COMPUTE STATISTICS FOR readings AS r")
    row = stats(con, "r")["v"]
    assert (row["type"], row["nan_count"], row["inf_count"], row["missing"]) == ("FLOAT", 100, 100, 100)
    finite = con.execute("SELECT avg(v), min(v), max(v) FROM readings WHERE isfinite(v)").fetchone()
    assert (row["mean"], row["min"], row["max"]) == pytest.approx(finite)


def test_appended_spans_merge_like_one_scan(flights_db: engine.Connection) -> None:
    con = flights_db
    for month in range(1, 13):
        con.execute(f"CREATE OR REPLACE TABLE span_{month} AS SELECT * FROM flights WHERE month = {month}")
        if month == 1:
            con.execute("COMPUTE STATISTICS FOR span_1 AS by_month")
        else:
            con.execute(f"COMPUTE STATISTICS FOR span_{month} APPEND TO by_month")
        con.execute(f"DROP TABLE span_{month}")  # a later span cannot rescan it
    merged, whole = stats(con, "by_month"), stats(con, "flights")
    assert con.execute("SELECT count(*) FROM mallard.statistics_spans WHERE statistics = 'by_month'").fetchone()[0] == 12
    for column in NUMERIC + STRINGS:
        m, w = merged[column], whole[column]
        assert (m["count"], m["missing"], m["min"], m["max"], m["spans"]) == (w["count"], w["missing"], w["min"], w["max"], 12)
        for key in ("mean", "std_dev", "avg_length"):
            assert (m[key] is None and w[key] is None) or m[key] == pytest.approx(w[key], rel=1e-9), (column, key)
        assert m["distinct_count"] == w["distinct_count"]
        assert m["top_values"] == w["top_values"]
    for column in ("dep_delay", "distance"):
        rank = con.execute(f"SELECT count(*) FILTER (WHERE {column} <= ?) / count({column}) FROM flights",
                           [merged[column]["median"]]).fetchone()[0]
        assert abs(rank - 0.5) < 0.02, (column, rank)


def test_distinct_count_of_merged_high_cardinality_spans_is_estimated(con: engine.Connection) -> None:
    con.execute("CREATE TABLE ids_a AS SELECT 'id-' || range AS id FROM range(150000)")
    con.execute("CREATE TABLE ids_b AS SELECT 'id-' || (range + 100000) AS id FROM range(150000)")
    con.execute("COMPUTE STATISTICS FOR ids_a AS ids")
    con.execute("COMPUTE STATISTICS FOR ids_b APPEND TO ids")
    row = stats(con, "ids")["id"]
    assert row["distinct_count"] == pytest.approx(250000, rel=0.08)
    assert row["count"] == 300000


def test_statistics_survive_reopening(flights_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "reopen.duckdb"
    with engine.connect(path, progress="off") as con:
        load_flights(con, flights_path)
        con.execute("CREATE TABLE january AS SELECT * FROM flights WHERE month = 1")
        con.execute("COMPUTE STATISTICS FOR january")
    with engine.connect(path, autocommit=True, read_only=True) as con:
        row = stats(con, "january")["carrier"]
        assert row["count"] == 27004 and row["distinct_count"] == 16
        assert con.execute("SHOW STATISTICS").fetchall()[0][:3] == ("january", 1, 27004)


def test_bad_statistics_statements_write_nothing(flights_db: engine.Connection) -> None:
    con = flights_db
    before = con.execute("SELECT count(*) FROM mallard.statistics_columns").fetchone()[0]
    with pytest.raises(engine.ProgrammingError, match="expected a table or view named no_such_table"):
        con.execute("COMPUTE STATISTICS FOR no_such_table")
    con.execute("CREATE OR REPLACE TABLE narrower AS SELECT carrier, CAST(distance AS VARCHAR) AS distance FROM flights")
    with pytest.raises(engine.ProgrammingError, match=r"missing year.*changed type distance \(INT -> STRING\)"):
        con.execute("COMPUTE STATISTICS FOR narrower APPEND TO flights")
    with pytest.raises(engine.ProgrammingError, match="expected statistics named 'nothing'"):
        con.execute("COMPUTE STATISTICS FOR narrower APPEND TO nothing")
    with pytest.raises(engine.ProgrammingError, match="expected statistics named 'nothing'"):
        con.execute("SHOW STATISTICS nothing")
    with pytest.raises(engine.DataError, match="max_values"):
        con.execute("COMPUTE STATISTICS FOR narrower AS n WITH (max_values = 0)")
    assert con.execute("SELECT count(*) FROM mallard.statistics_columns").fetchone()[0] == before
    assert not [t for (t,) in con.execute("SHOW TABLES").fetchall() if t.startswith("mallard")]
    assert [r[0] for r in con.execute("SELECT name FROM mallard.statistics ORDER BY 1").fetchall()] == \
        sorted(r[0] for r in con.execute("SELECT DISTINCT statistics FROM mallard.statistics_spans").fetchall())


def test_drop_statistics(con: engine.Connection) -> None:
    con.execute("CREATE TABLE t AS SELECT range AS x, 'v' || (range % 3) AS s FROM range(100)")
    con.execute("COMPUTE STATISTICS FOR t AS t_stats")
    con.execute("DROP STATISTICS t_stats")
    remaining = [con.execute(f"SELECT count(*) FROM mallard.{t}").fetchone()[0]
                 for t in ("statistics", "statistics_spans", "statistics_columns", "statistics_values")]
    assert remaining == [0, 0, 0, 0]
    con.execute("DROP STATISTICS IF EXISTS t_stats")
    with pytest.raises(engine.ProgrammingError, match="expected statistics named 't_stats'"):
        con.execute("DROP STATISTICS t_stats")


def test_empty_and_all_null_columns(con: engine.Connection) -> None:
    con.execute("CREATE TABLE empty_t (x INTEGER, s VARCHAR)")
    con.execute("COMPUTE STATISTICS FOR empty_t")
    rows = stats(con, "empty_t")
    assert rows["x"]["count"] == 0 and rows["x"]["mean"] is None and rows["x"]["histogram"] == []
    con.execute("CREATE TABLE nulls AS SELECT NULL::DOUBLE AS x, NULL::VARCHAR AS s FROM range(10)")
    con.execute("COMPUTE STATISTICS FOR nulls")
    rows = stats(con, "nulls")
    assert (rows["x"]["missing"], rows["s"]["missing"], rows["s"]["distinct_count"]) == (10, 10, 0)
    assert not math.isnan(rows["x"]["count"])
