"""Fast path: plain SQL through `engine` versus raw `duckdb`, side by side in one run.

    .venv/bin/python bench/bench_fastpath.py [--rows 10000000] [--statements 10000] [--repeat 5]

Prints the median time of each and the ratio engine / duckdb (targets: <= 1.05 on the
aggregate, <= 1.3 on tiny statements).  Both sides use the same DuckDB database file and
autocommit; repetitions alternate between the two to share the machine's noise.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import duckdb

import engine

AGGREGATE = "SELECT g, count(*), sum(x), avg(y), max(s) FROM big GROUP BY g ORDER BY g"


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--statements", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    path = os.path.join(tempfile.mkdtemp(), "fastpath.duckdb")
    setup = duckdb.connect(path)
    setup.execute(f"CREATE TABLE big AS SELECT range % 100 AS g, range AS x, random() AS y, "
                  f"'s' || (range % 1000) AS s FROM range({args.rows})")
    setup.execute("CREATE TABLE kv AS SELECT range AS k, 'v' || range AS v FROM range(100000)")
    setup.close()
    raw = duckdb.connect(path)
    mal = engine.connect(path, autocommit=True)
    n = args.statements

    def raw_aggregate():
        raw.execute(AGGREGATE).fetchall()

    def mal_aggregate():
        mal.execute(AGGREGATE).fetchall()

    def raw_tiny():
        for i in range(n):
            raw.execute("SELECT v FROM kv WHERE k = ?", [i]).fetchone()

    mal_cursor = mal.cursor()

    def mal_tiny():
        for i in range(n):
            mal_cursor.execute("SELECT v FROM kv WHERE k = ?", [i]).fetchone()

    def raw_insert():
        raw.execute("CREATE OR REPLACE TEMP TABLE sink (i INTEGER, s VARCHAR)")
        for i in range(n):
            raw.execute("INSERT INTO sink VALUES (?, ?)", [i, "x"])

    def mal_insert():
        mal_cursor.execute("CREATE OR REPLACE TEMP TABLE sink (i INTEGER, s VARCHAR)")
        for i in range(n):
            mal_cursor.execute("INSERT INTO sink VALUES (?, ?)", [i, "x"])

    results = []
    for label, raw_fn, mal_fn in (
        (f"aggregate over {args.rows:,} rows", raw_aggregate, mal_aggregate),
        (f"{n:,} tiny parameterized SELECTs", raw_tiny, mal_tiny),
        (f"{n:,} tiny parameterized INSERTs", raw_insert, mal_insert),
    ):
        raw_fn(), mal_fn()  # warm up
        raw_times, mal_times = [], []
        for _ in range(args.repeat):
            raw_times.append(timed(raw_fn))
            mal_times.append(timed(mal_fn))
        r, m = statistics.median(raw_times), statistics.median(mal_times)
        results.append((label, r, m))
        print(f"{label:40s} duckdb {r:8.3f} s   engine {m:8.3f} s   ratio engine/duckdb {m / r:5.3f}", flush=True)
    raw.close()
    mal.close()


if __name__ == "__main__":
    main()
