"""COMPUTE STATISTICS on a real two-node local Ray cluster: partitions summarized in tasks and
merged by the driver give the catalog rows of one node (exact, but for the float rounding of
the means and M2 of non-integer columns), on the real flights data and on synthetic data with
every kind of column; an unreachable cluster writes nothing."""
from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine
from tests.ray_cluster import LocalRayCluster, running_cluster
from tests.test_validation_flights import FLIGHTS_ROWS, flights_path, load_flights  # noqa: F401

#: Relative tolerance of the merged means and M2 (Chan's merge adds in another order than DuckDB).
FLOAT_REL = 1e-9

_SYNTHETIC = """
CREATE OR REPLACE TABLE kinds AS
SELECT i AS id,
       (i * 7919) % 101 - 50 AS small_int,
       CASE WHEN i % 13 = 0 THEN NULL ELSE (i * 104729) % 100003 END::BIGINT AS big_int,
       CASE WHEN i % 97 = 0 THEN 'nan'::DOUBLE WHEN i % 89 = 0 THEN 'inf'::DOUBLE WHEN i % 11 = 0 THEN NULL
            WHEN i % 10 = 0 THEN 0.0 ELSE sin(i) * 1000 END AS x,
       (i % 5 = 0) AS flag,
       CASE WHEN i % 17 = 0 THEN NULL ELSE 'w' || ((i * 31) % 250)::VARCHAR END AS word,
       TIMESTAMP '2024-01-01' + to_seconds(i * 3607) AS at,
       DATE '2020-02-29' + (i % 400)::INTEGER AS day,
       (i % 1000)::DECIMAL(9, 2) / 7 AS price,
       ['red', 'green', 'blue'][1 + i % 3]::ENUM('red', 'green', 'blue') AS colour,
       NULL::VARCHAR AS nothing
FROM range(5000) t(i)
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    with running_cluster(nodes=2) as running:
        yield running


@pytest.fixture(scope="module")
def db_path(flights_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cluster_stats") / "stats.duckdb"
    with engine.connect(str(path), autocommit=True, progress="off") as con:
        load_flights(con, flights_path)
        con.execute(_SYNTHETIC)
        con.execute("INSERT INTO kinds SELECT * FROM kinds WHERE id % 250 = 3")  # duplicates across partitions
    return path


def _connect(path: Path, cluster: str = "none") -> engine.Connection:
    return engine.connect(str(path), autocommit=True, progress="off", cluster=cluster, cluster_partition_rows=50_000)


@pytest.fixture
def local(db_path: Path) -> Iterator[engine.Connection]:
    con = _connect(db_path)
    yield con
    con.close()


@pytest.fixture
def on_cluster(db_path: Path, cluster: LocalRayCluster) -> Iterator[engine.Connection]:
    con = _connect(db_path, cluster.address)
    con.execute("SHOW CLUSTER").fetchall()  # connects
    cluster.wait_for_nodes(2)
    yield con
    con.close()


def catalog_rows(con: engine.Connection, name: str) -> dict[str, list[tuple[Any, ...]]]:
    """A set's rows in the three catalog tables, without its name and the times of the run."""
    return {
        "spans": con.execute("SELECT * EXCLUDE (statistics, computed_at, seconds) FROM mallard.statistics_spans"
                             " WHERE statistics = ? ORDER BY span", [name]).fetchall(),
        "columns": con.execute("SELECT * EXCLUDE (statistics) FROM mallard.statistics_columns WHERE statistics = ?"
                               " ORDER BY span, position", [name]).fetchall(),
        "values": con.execute("SELECT * EXCLUDE (statistics) FROM mallard.statistics_values WHERE statistics = ?"
                              " ORDER BY ALL", [name]).fetchall(),
    }


def assert_same_statistics(here: dict[str, list[tuple[Any, ...]]], there: dict[str, list[tuple[Any, ...]]]) -> None:
    """Equal rows, but for each column's mean and M2: within FLOAT_REL (sums of floats in another order)."""
    assert there["spans"] == here["spans"]
    assert there["values"] == here["values"]
    assert len(there["columns"]) == len(here["columns"])
    for a, b in zip(here["columns"], there["columns"]):
        for i in (10, 11):  # mean, m2 (after span, column_name, position, sql_type, kind, present, finite,
            # nan_count, inf_count, zeros)
            assert (a[i] is None) == (b[i] is None), (a[1], i)
            if a[i] is not None:
                assert b[i] == pytest.approx(a[i], rel=FLOAT_REL, abs=1e-9), (a[1], i)
        assert b[:10] + b[12:] == a[:10] + a[12:], a[1]


def test_flights_statistics_on_the_cluster_equal_one_node(local: engine.Connection,
                                                           on_cluster: engine.Connection) -> None:
    local.execute("COMPUTE STATISTICS FOR flights AS flights_here")
    cursor = on_cluster.execute("COMPUTE STATISTICS FOR flights AS flights_there")
    assert cursor.rowcount == FLIGHTS_ROWS
    assert re.search(r"summarized in 7 partitions on 2 cluster nodes \(\d+\.\d\d s\)$", cursor.message), cursor.message
    here, there = catalog_rows(local, "flights_here"), catalog_rows(on_cluster, "flights_there")
    assert here["spans"] == [(1, "flights", FLIGHTS_ROWS, 0)]
    assert len(here["columns"]) == 19 and len(here["values"]) > 1000
    assert_same_statistics(here, there)
    shown_here = local.execute("SHOW STATISTICS flights_here").fetchall()
    shown_there = on_cluster.execute("SHOW STATISTICS flights_there").fetchall()
    assert [_rounded(r) for r in shown_there] == [_rounded(r) for r in shown_here]


def test_every_kind_of_column_on_the_cluster_equals_one_node(local: engine.Connection,
                                                             on_cluster: engine.Connection) -> None:
    on_cluster.execute("SET cluster_partition_rows = 700")
    local.execute("COMPUTE STATISTICS FOR kinds AS kinds_here WITH (max_values = 100)")
    cursor = on_cluster.execute("COMPUTE STATISTICS FOR kinds AS kinds_there WITH (max_values = 100)")
    assert "summarized in 8 partitions on 2 cluster nodes" in cursor.message
    here, there = catalog_rows(local, "kinds_here"), catalog_rows(on_cluster, "kinds_there")
    assert here["spans"] == [(1, "kinds", 5020, 20)]  # the 20 copies are duplicates, in other partitions
    kinds = {r[1]: r[4] for r in here["columns"]}
    assert kinds == {"id": "INT", "small_int": "INT", "big_int": "INT", "x": "FLOAT", "flag": "BOOLEAN",
                     "word": "STRING", "at": "TIMESTAMP", "day": "TIMESTAMP", "price": "FLOAT", "colour": "STRING",
                     "nothing": "STRING"}
    x = next(r for r in here["columns"] if r[1] == "x")
    exact = local.execute("SELECT count(*) FILTER (WHERE isnan(x)), count(*) FILTER (WHERE isinf(x)),"
                          " count(*) FILTER (WHERE x = 0) FROM kinds").fetchone()
    assert x[7:10] == exact and min(exact) > 0  # NaN, infinity and zeros counted
    assert_same_statistics(here, there)
    # the merged view over the set (quantiles, histograms, top values) is the same too
    shown_here = local.execute("SHOW STATISTICS kinds_here").fetchall()
    shown_there = on_cluster.execute("SHOW STATISTICS kinds_there").fetchall()
    assert [_rounded(r) for r in shown_there] == [_rounded(r) for r in shown_here]


def test_an_unreachable_cluster_writes_no_statistics(db_path: Path) -> None:
    con = _connect(db_path, "127.0.0.1:1")
    try:
        with pytest.raises(engine.OperationalError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1"):
            con.execute("COMPUTE STATISTICS FOR kinds AS kinds_unreachable")
        assert con.execute("SELECT count(*) FROM mallard.statistics WHERE name = 'kinds_unreachable'").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM mallard.statistics_columns WHERE statistics = 'kinds_unreachable'"
                           ).fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'mallard_span%'").fetchone() == (0,)
        with pytest.raises(engine.ProgrammingError, match="expected a table or view named missing"):
            con.execute("COMPUTE STATISTICS FOR missing")  # checked before the cluster is asked
    finally:
        con.close()


def _rounded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A SHOW STATISTICS row with its floats to 9 significant digits (means and deviations merge in
    another order on the cluster)."""
    def round_value(v: Any) -> Any:
        if isinstance(v, float) and math.isfinite(v) and v != 0:
            return float(f"{v:.9g}")
        if isinstance(v, list):
            return [round_value(x) for x in v]
        if isinstance(v, dict):
            return {k: round_value(x) for k, x in v.items()}
        return v
    return tuple(round_value(v) for v in row)
