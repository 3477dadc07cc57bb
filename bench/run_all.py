"""Run every benchmark of ``bench/`` one after the other (what ``make bench`` does).

Each benchmark runs Mallard and its baseline side by side and prints the ratio; this script
only starts them in turn, with their default sizes, tees each one's output to
``bench/out/<name>.log`` and prints a summary of which ran and how long each took.  The
figures in ``bench/RESULTS.md`` come from the commands written there (some with larger
sizes or baselines installed in venvs of their own).

    .venv/bin/python bench/run_all.py                       # everything (about an hour on 2 cores)
    .venv/bin/python bench/run_all.py fastpath video_load   # a selection
    .venv/bin/python bench/run_all.py --quick               # reduced sizes (about 2 minutes)

The validation benchmark's baselines (TFDV, Great Expectations, whylogs) need venvs of their
own (their pins conflict with Mallard's); pass their interpreters through the environment
(``TFDV_PYTHON``, ``GX_PYTHON``, ``WHYLOGS_PYTHON``; RESULTS.md has the commands that make
them), or they are reported as not run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

#: name -> (full arguments, --quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "fastpath": ([], ["--rows", "1000000", "--statements", "2000", "--repeat", "2"]),
    "video_load": ([], ["--repeat", "1"]),
    "video_long": ([], ["--copies", "3", "--no-sql-scan", "--sample", "500"]),
    "video_motion": ([], []),
    "labeling": ([], ["--sizes", "10000", "--sms-replicas", "1"]),
    "validation": ([], ["--copies", "1"]),
    "inference": ([], ["--frames", "64", "--native-frames", "0", "--bikes-frames", "32", "--cache-frames", "32"]),
    "incremental": ([], ["--frames", "64", "--native-frames", "0", "--bikes-frames", "0", "--no-sweep",
                         "--no-occlusion"]),
    "training": ([], ["--quick"]),
    "cascades": (["--copies", "3"], ["--contracts", "0.9"]),
    "predict": ([], ["--frames", "64", "--udf-frames", "16", "--rows", "200000", "--udf-rows", "5000", "--repeat", "1"]),
    "serving": ([], ["--quick"]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run, of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="reduced sizes, to check that each one runs")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; expected one of {', '.join(BENCHMARKS)}")
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    summary = []
    for name in names:
        full, quick = BENCHMARKS[name]
        command = [sys.executable, str(BENCH / f"bench_{name}.py"), *(quick if args.quick else full)]
        if name == "validation":
            for tool in ("tfdv", "gx", "whylogs"):
                if os.environ.get(f"{tool.upper()}_PYTHON"):
                    command += [f"--{tool}-python", os.environ[f"{tool.upper()}_PYTHON"]]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        with open(out / f"{name}.log", "w") as log:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert process.stdout is not None
            for line in process.stdout:
                sys.stdout.write(line)
                log.write(line)
            code = process.wait()
        summary.append((name, code, time.perf_counter() - started))
    print("\n=== summary")
    for name, code, seconds in summary:
        print(f"  {name:12s} {'ok' if code == 0 else f'failed ({code})':12s} {seconds:7.0f} s   log: bench/out/{name}.log")
    return 0 if all(code == 0 for _, code, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
