"""LABEL past one machine's memory: 100M rows x 10 functions, 10M rows x 30, peak RSS measured.

    .venv/bin/python bench/bench_labeling_scale.py --rows 10000000 --lfs 10            # about a minute
    nice -n 10 .venv/bin/python bench/bench_labeling_scale.py --rows 100000000 --lfs 10  # many minutes, ~15 GB of disk
    nice -n 10 .venv/bin/python bench/bench_labeling_scale.py --rows 10000000 --lfs 30

1. The synthetic label matrix is generated inside DuckDB (no row passes through Python):
   ``votes(id, truth, lf0, ...)`` by :func:`engine.labeling.synthetic.synthetic_votes_query`
   (conditionally independent functions, accuracies 0.55-0.95, coverages 0.1-0.6, uniform
   classes, each vote drawn from DuckDB's ``hash``), ``id`` a plain BIGINT column (not a
   declared key, so LABEL checks that it is unique: a COUNT DISTINCT over every row).
2. ``LABEL votes USING lf0, ... INTO labels`` runs in a fresh process connected with DuckDB's
   ``memory_limit`` (``--memory-limit``, default 2GB; DuckDB spills to ``<db>.tmp`` past it);
   the process reads its own peak resident memory (VmHWM of /proc/self/status) at the end.
3. Prints rows, functions, classes, the vote patterns (exact on the pattern path, DuckDB's
   estimate on the rows path), the path the label model took (``fit_on``: patterns or rows),
   the time (and its apply / fit / write parts), the peak RSS, the accuracy of the labels
   against the hidden truth and the largest |learned - true| function accuracy.

Snorkel is not run: its ``LabelModel`` takes the label matrix as a dense int64 array (8 bytes a
vote: 8 GB at 100M x 10, 2.4 GB at 10M x 30, before its own copies), which the printed size
shows.  The database file is removed at the end unless ``--keep``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

def peak_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    text = Path("/proc/self/status").read_text()
    return int(text.split("VmHWM:")[1].split()[0]) / 1024


def generate(db: str, n: int, m: int, k: int, seed: int, memory_limit: str) -> None:
    """``votes(id, truth, lf0, ...)`` with ``n`` rows, built by one DuckDB query."""
    import duckdb

    from engine.labeling.synthetic import synthetic_votes_query

    con = duckdb.connect(db, config={"memory_limit": memory_limit})
    con.execute(f"CREATE TABLE votes AS {synthetic_votes_query(n, m, k, seed=seed)}")
    con.close()


def label_worker(db: str, m: int, k: int, memory_limit: str, fit_on: str) -> dict[str, Any]:
    """LABEL in this (fresh) process; its time and peak RSS."""
    import engine

    con = engine.connect(db, autocommit=True, progress="off", memory_limit=memory_limit)
    names = [f"lf{j}" for j in range(m)]
    for name in names:
        con.execute(f"CREATE OR REPLACE LABELING FUNCTION {name} ON votes AS {name}")
    started = time.perf_counter()
    con.execute(f"LABEL votes USING {', '.join(names)} WITH (classes = {list(range(k))}, seed = 0, fit_on = '{fit_on}')"
                " INTO OR REPLACE labels")
    seconds = time.perf_counter() - started
    run = con.execute("SELECT n_patterns, iterations, apply_seconds, fit_seconds, write_seconds, options"
                      " FROM mallard.label_runs ORDER BY run_id DESC LIMIT 1").fetchone()
    learned = [r[8] for r in con.execute("SHOW LABEL ANALYSIS FOR labels").fetchall()]
    con.close()
    return {"seconds": seconds, "peak_mb": peak_mb(), "patterns": run[0], "iterations": run[1], "apply_s": run[2],
            "fit_s": run[3], "write_s": run[4], "path": json.loads(run[5])["fit_on"], "learned": learned}


def evaluate(db: str, m: int, memory_limit: str) -> tuple[float, np.ndarray]:
    """The labels' accuracy against the hidden truth, and each function's accuracy on the sample."""
    import duckdb

    con = duckdb.connect(db, read_only=True, config={"memory_limit": memory_limit})
    accuracy = con.execute("SELECT avg((l.label = v.truth)::DOUBLE) FROM labels l JOIN votes v USING (id)").fetchone()[0]
    per_lf = con.execute("SELECT " + ", ".join(f"avg((lf{j} = truth)::DOUBLE)" for j in range(m)) + " FROM votes").fetchone()
    con.close()
    return float(accuracy), np.array(per_lf, dtype=np.float64)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        db, m, k, memory_limit, fit_on = sys.argv[2:7]
        print(json.dumps(label_worker(db, int(m), int(k), memory_limit, fit_on)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--lfs", type=int, default=10)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB's memory_limit for the LABEL process")
    parser.add_argument("--fit-on", default="auto", choices=("auto", "patterns", "rows"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="where the database goes (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_labeling_scale_")
    os.makedirs(workdir, exist_ok=True)
    db = os.path.join(workdir, f"votes_{args.rows}_{args.lfs}_{args.classes}.duckdb")
    n, m, k = args.rows, args.lfs, args.classes
    print(f"load average {os.getloadavg()[0]:.2f}; {n:,} rows x {m} functions x {k} classes; DuckDB memory_limit "
          f"{args.memory_limit}; {db}", flush=True)
    try:
        started = time.perf_counter()
        generate(db, n, m, k, args.seed, args.memory_limit)
        print(f"generated in DuckDB in {time.perf_counter() - started:.1f} s "
              f"({os.path.getsize(db) / 2**30:.2f} GiB on disk)", flush=True)
        command = [sys.executable, __file__, "--worker", db, str(m), str(k), args.memory_limit, args.fit_on]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "CI": "1"})
        if done.returncode != 0:
            raise SystemExit(f"LABEL failed:\n{done.stderr[-4000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        accuracy, empirical = evaluate(db, m, args.memory_limit)
        learned_err = float(np.nanmax(np.abs(np.array(result["learned"], dtype=np.float64) - empirical)))
        print(f"rows {n:,} | LFs {m} | k {k} | patterns {result['patterns']:,} | path {result['path']} | "
              f"LABEL {result['seconds']:.1f} s (apply {result['apply_s']:.1f}, fit {result['fit_s']:.1f} in "
              f"{result['iterations']} EM iterations, write {result['write_s']:.1f}) | peak RSS {result['peak_mb']:,.0f} MB"
              f" | accuracy {accuracy:.4f} | LF acc. error {learned_err:.4f} | Snorkel's L alone (int64): "
              f"{n * m * 8 / 2**30:.1f} GiB", flush=True)
    finally:
        if not args.keep:
            for path in (db, db + ".wal", db + ".tmp"):
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                elif os.path.exists(path):
                    os.remove(path)
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
