"""Data validation benchmark: Mallard's pipeline (statistics, schema inference, validation) on
the flights data replicated to about 5M rows, side by side with TFDV, Great Expectations,
whylogs and a plain DuckDB statistics query, in one run; prints wall times, peak memory and
the ratios to Mallard.

Each tool runs in its own Python process (this file, started with ``--worker <tool>``), so
its import time and peak resident memory are its own, and so that baselines whose pins
conflict with Mallard's (TFDV needs pyarrow 10 and pandas 1.5) run from their own venvs:

    python3 -m venv /work/bench-venvs/tfdv && /work/bench-venvs/tfdv/bin/pip install uv
    /work/bench-venvs/tfdv/bin/uv pip install --python /work/bench-venvs/tfdv/bin/python \\
        tensorflow-data-validation==1.16.1 dill
    (likewise great_expectations pyarrow into /work/bench-venvs/gx, whylogs pyarrow pandas
    into /work/bench-venvs/whylogs)

    .venv/bin/python bench/bench_validation.py --tfdv-python /work/bench-venvs/tfdv/bin/python \\
        --gx-python /work/bench-venvs/gx/bin/python --whylogs-python /work/bench-venvs/whylogs/bin/python

A baseline whose interpreter is missing or fails is reported with its error, and the others
are still measured.  Not part of CI (minutes of work, several GB of baselines).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# The data ------------------------------------------------------------------------------------
def prepare(workdir: Path, copies: int) -> tuple[Path, Path]:
    """flights x ``copies`` as a DuckDB table (for Mallard and DuckDB) and a Parquet file (for
    the pandas-based baselines); built once per work folder."""
    database, parquet = workdir / f"flights_x{copies}.duckdb", workdir / f"flights_x{copies}.parquet"
    if database.exists() and parquet.exists():
        return database, parquet
    import duckdb

    with zipfile.ZipFile(ROOT / "data" / "flights.csv.zip") as z:
        csv = Path(z.extract("flights.csv", workdir))
    con = duckdb.connect(str(database))
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE OR REPLACE TABLE flights AS SELECT f.* FROM read_csv(?, nullstr = 'NA',"
                " types = {'time_hour': 'VARCHAR'}) f, range(?)", [str(csv), copies])
    con.execute("COPY flights TO ? (FORMAT parquet)", [str(parquet)])
    con.close()
    csv.unlink()
    return database, parquet


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike getrusage's maxrss it does not carry
    over the parent's peak across fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Workers: each prints one JSON line --------------------------------------------------------
def worker_mallard(database: Path, parquet: Path, workdir: Path) -> dict:
    """COMPUTE STATISTICS, INFER SCHEMA, VALIDATE STATISTICS: TFDV's generate_statistics,
    infer_schema, validate_statistics."""
    started = time.perf_counter()
    import engine

    imported = time.perf_counter()
    con = engine.connect(database, autocommit=True, progress="off")
    con.execute("DROP STATISTICS IF EXISTS bench_stats")
    con.execute("DELETE FROM mallard.schemas WHERE name = 'bench_schema'")
    t0 = time.perf_counter()
    con.execute("COMPUTE STATISTICS FOR flights AS bench_stats")
    t1 = time.perf_counter()
    con.execute("INFER SCHEMA bench_schema FROM bench_stats")
    t2 = time.perf_counter()
    anomalies = con.execute("VALIDATE STATISTICS bench_stats AGAINST bench_schema").fetchall()
    t3 = time.perf_counter()
    (workdir / "bench_schema.json").write_text(engine.validation.export_schema(con, "bench_schema"))
    rows = con.execute("SELECT sum(row_count) FROM mallard.statistics_spans WHERE statistics = 'bench_stats'").fetchone()[0]
    con.close()
    return {"import_s": imported - started, "load_s": 0.0, "statistics_s": t1 - t0, "infer_s": t2 - t1,
            "validate_s": t3 - t2, "pipeline_s": t3 - t0, "rows": rows, "anomalies": len(anomalies),
            "peak_rss_mb": peak_rss_mb()}


def worker_mallard_table(database: Path, parquet: Path, workdir: Path) -> dict:
    """VALIDATE <table> AGAINST <schema>: statistics of the table computed within the statement."""
    started = time.perf_counter()
    import engine

    imported = time.perf_counter()
    con = engine.connect(database, autocommit=True, progress="off")
    t0 = time.perf_counter()
    anomalies = con.execute("VALIDATE flights AGAINST bench_schema").fetchall()
    t1 = time.perf_counter()
    con.close()
    return {"import_s": imported - started, "load_s": 0.0, "validate_s": t1 - t0, "pipeline_s": t1 - t0,
            "anomalies": len(anomalies), "peak_rss_mb": peak_rss_mb()}


def worker_duckdb(database: Path, parquet: Path, workdir: Path) -> dict:
    started = time.perf_counter()
    import duckdb

    imported = time.perf_counter()
    con = duckdb.connect(str(database), read_only=True)
    con.execute("SET enable_progress_bar = false")
    t0 = time.perf_counter()
    rows = con.execute("SUMMARIZE flights").fetchall()
    t1 = time.perf_counter()
    return {"import_s": imported - started, "load_s": 0.0, "statistics_s": t1 - t0, "pipeline_s": t1 - t0,
            "columns": len(rows), "peak_rss_mb": peak_rss_mb()}


def worker_tfdv(database: Path, parquet: Path, workdir: Path) -> dict:
    started = time.perf_counter()
    import pandas as pd
    import tensorflow_data_validation as tfdv

    imported = time.perf_counter()
    frame = pd.read_parquet(parquet)
    loaded = time.perf_counter()
    stats = tfdv.generate_statistics_from_dataframe(frame)
    t1 = time.perf_counter()
    schema = tfdv.infer_schema(stats)
    t2 = time.perf_counter()
    anomalies = tfdv.validate_statistics(stats, schema)
    t3 = time.perf_counter()
    return {"import_s": imported - started, "load_s": loaded - imported, "statistics_s": t1 - loaded,
            "infer_s": t2 - t1, "validate_s": t3 - t2, "pipeline_s": t3 - loaded, "rows": len(frame),
            "anomalies": len(anomalies.anomaly_info), "peak_rss_mb": peak_rss_mb()}


def worker_gx(database: Path, parquet: Path, workdir: Path) -> dict:
    """Great Expectations validating the rows against the checks of Mallard's inferred schema
    (existence, non-null for required columns, value sets, ranges): GX has no inference."""
    started = time.perf_counter()
    import great_expectations as gx
    import pandas as pd

    imported = time.perf_counter()
    frame = pd.read_parquet(parquet)
    loaded = time.perf_counter()
    schema = json.loads((workdir / "bench_schema.json").read_text())
    context = gx.get_context(mode="ephemeral")
    batch = (context.data_sources.add_pandas("flights").add_dataframe_asset("flights")
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame}))
    suite = gx.ExpectationSuite(name="flights")
    for feature in schema["feature"]:
        name = feature["name"]
        suite.add_expectation(gx.expectations.ExpectColumnToExist(column=name))
        if feature.get("presence", {}).get("min_fraction") == 1.0:
            suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=name))
        if "string_domain" in feature:
            suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(
                column=name, value_set=feature["string_domain"]["value"]))
        bounds = feature.get("int_domain") or feature.get("float_domain") or {}
        if "min" in bounds or "max" in bounds:
            suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(
                column=name, min_value=bounds.get("min"), max_value=bounds.get("max")))
    suite = context.suites.add(suite)
    t0 = time.perf_counter()
    result = batch.validate(suite)
    t1 = time.perf_counter()
    failed = sum(1 for r in result.results if not r.success)
    return {"import_s": imported - started, "load_s": loaded - imported, "validate_s": t1 - t0,
            "pipeline_s": t1 - loaded, "checks": len(result.results), "failed_checks": failed,
            "rows": len(frame), "peak_rss_mb": peak_rss_mb()}


def worker_whylogs(database: Path, parquet: Path, workdir: Path) -> dict:
    started = time.perf_counter()
    import pandas as pd
    import whylogs as why

    imported = time.perf_counter()
    frame = pd.read_parquet(parquet)
    loaded = time.perf_counter()
    view = why.log(pandas=frame).view()
    t1 = time.perf_counter()
    summary = view.to_pandas()
    return {"import_s": imported - started, "load_s": loaded - imported, "statistics_s": t1 - loaded,
            "pipeline_s": t1 - loaded, "columns": len(summary), "rows": len(frame), "peak_rss_mb": peak_rss_mb()}


WORKERS = {"mallard": worker_mallard, "mallard_table": worker_mallard_table, "duckdb": worker_duckdb, "tfdv": worker_tfdv, "gx": worker_gx,
           "whylogs": worker_whylogs}


# The run -------------------------------------------------------------------------------------
def run_worker(python: str, tool: str, database: Path, parquet: Path, workdir: Path) -> dict:
    command = [python, str(Path(__file__).resolve()), "--worker", tool, "--workdir", str(workdir),
               "--database", str(database), "--parquet", str(parquet)]
    env = {**os.environ, "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)}
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return {**json.loads(lines[-1]), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=15, help="flights copies (15: 5,051,640 rows)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mallard_bench_validation")
    parser.add_argument("--tfdv-python", default=None)
    parser.add_argument("--gx-python", default=None)
    parser.add_argument("--whylogs-python", default=None)
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--database", type=Path)
    parser.add_argument("--parquet", type=Path)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.database, args.parquet, args.workdir)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    database, parquet = prepare(args.workdir, args.copies)
    print(f"data: flights x {args.copies} in {args.workdir} (prepared in {time.perf_counter() - started:.1f} s); "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    pythons = {"mallard": sys.executable, "mallard_table": sys.executable, "duckdb": sys.executable,
               "tfdv": args.tfdv_python, "gx": args.gx_python, "whylogs": args.whylogs_python}
    results: dict[str, dict] = {}
    for tool in ("mallard", "mallard_table", "duckdb", "tfdv", "gx", "whylogs"):
        if pythons[tool] is None:
            results[tool] = {"error": f"not run: pass --{tool}-python"}
        else:
            results[tool] = run_worker(pythons[tool], tool, database, parquet, args.workdir)
        print(f"{tool:13s} {json.dumps(results[tool])}", flush=True)
    report(results)


def report(results: dict[str, dict]) -> None:
    mallard = results["mallard"]
    print()
    print(f"{'tool':13s} {'wall s':>8s} {'import s':>9s} {'load s':>7s} {'work s':>7s} {'peak MB':>8s} "
          f"{'wall / Mallard':>15s} {'peak / Mallard':>15s}")
    for tool, r in results.items():
        if "error" in r:
            print(f"{tool:13s} error: {r['error']}")
            continue
        ratios = ("", "") if "error" in mallard else (
            f"{r['wall_s'] / mallard['wall_s']:15.2f}", f"{r['peak_rss_mb'] / mallard['peak_rss_mb']:15.2f}")
        print(f"{tool:13s} {r['wall_s']:8.2f} {r['import_s']:9.2f} {r['load_s']:7.2f} {r['pipeline_s']:7.2f} "
              f"{r['peak_rss_mb']:8.0f} {ratios[0]} {ratios[1]}")
    if "error" in mallard:
        return
    print(f"\nMallard: statistics {mallard['statistics_s']:.2f} s, inference {mallard['infer_s']:.2f} s, "
          f"validation of the statistics {mallard['validate_s']:.2f} s ({mallard['anomalies']} anomalies)")
    tfdv = results.get("tfdv", {})
    if "error" not in tfdv:
        print(f"TFDV / Mallard: wall {tfdv['wall_s'] / mallard['wall_s']:.1f}x faster, "
              f"statistics+schema+validation alone {tfdv['pipeline_s'] / mallard['pipeline_s']:.1f}x faster; "
              f"Mallard's peak memory is {mallard['peak_rss_mb'] / tfdv['peak_rss_mb']:.2f} of TFDV's "
              f"(targets: >= 5x, <= 0.33)")


if __name__ == "__main__":
    main()
