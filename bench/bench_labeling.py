"""Weak supervision: Mallard's LABEL versus Snorkel 0.10 (LabelModel, PandasLFApplier), side by side.

    .venv/bin/python bench/bench_labeling.py                      # everything (about 5 minutes)
    .venv/bin/python bench/bench_labeling.py --sizes 10000,100000 --sms-replicas 5   # quicker

1. Synthetic label matrices with known truth (conditionally independent functions,
   accuracies 0.55-0.95, coverages 0.1-0.6, seeded) stored as a DuckDB table
   ``votes(id, lf0, ...)`` (class index, NULL abstains), for 10 and 30 functions, k = 2 and 3,
   and each size, ``id`` its declared primary key.  Timed end to end, from the table to the
   written label table:
   - Mallard: ``LABEL votes USING lf0, ... INTO mallard_labels`` (each lf<j> is the column);
   - Snorkel: fetch L from DuckDB, ``LabelModel.fit`` (500 epochs, as its tutorials) and
     ``predict_proba``, write the labels back to DuckDB; torch pinned to one thread.
   Each system runs in its own subprocess so its peak resident memory (VmHWM) is its own; the
   first run in the process (what a script pays) and the best of BENCH_REPEAT runs are both
   reported.
2. The SMS spam collection with the dozen functions of tests/labeling_sms.py, as SQL for
   Mallard and as Python for Snorkel's PandasLFApplier: accuracy and spam F1 of the labels
   (a tie counts as a coin flip), and the time to apply the functions (also on the
   collection replicated ``--sms-replicas`` times).

Prints every figure and the ratios Snorkel / Mallard (time, memory) and Mallard - Snorkel
(accuracy).  Needs ``pip install -r bench/requirements.txt`` (snorkel).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EPOCHS = 500
#: Each side is timed this many times in its process; the best time is reported.
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, it starts afresh at exec,
    so a worker does not inherit its parent's peak)."""
    return _status_mb("VmHWM")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def _status_mb(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(text.split(f"{field}:")[1].split()[0]) / 1024


# Workers (each in its own process) -----------------------------------------------------------------


def mallard_synthetic(db: str, m: int, k: int) -> dict[str, Any]:
    import pandas  # noqa: F401  (DuckDB imports it on first use; Snorkel's side imports it before its timer too)

    import engine

    con = engine.connect(db, autocommit=True, progress="off")
    names = [f"lf{j}" for j in range(m)]
    for name in names:
        con.execute(f"CREATE OR REPLACE LABELING FUNCTION {name} ON votes AS {name}")
    base = rss_mb()
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        con.execute(f"LABEL votes USING {', '.join(names)} WITH (classes = {list(range(k))}, seed = 0) "
                    "INTO OR REPLACE mallard_labels")
        times.append(time.perf_counter() - started)
    learned = [r[8] for r in con.execute("SHOW LABEL ANALYSIS FOR mallard_labels").fetchall()]
    run = con.execute("SELECT n_patterns, iterations, apply_seconds, fit_seconds, write_seconds FROM mallard.label_runs"
                      " ORDER BY run_id DESC LIMIT 1").fetchone()
    con.close()
    return {"first": times[0], "seconds": min(times), "learned": learned, "peak_mb": peak_mb(), "base_mb": base,
            "patterns": run[0],
            "iterations": run[1], "apply_s": run[2], "fit_s": run[3], "write_s": run[4]}


def snorkel_synthetic(db: str, m: int, k: int) -> dict[str, Any]:
    import duckdb
    import numpy as np
    import torch
    from snorkel.labeling.model import LabelModel

    torch.set_num_threads(1)
    con = duckdb.connect(db)
    base = rss_mb()
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        columns = ", ".join(f"coalesce(lf{j}, -1)::TINYINT AS lf{j}" for j in range(m))
        data = con.execute(f"SELECT id, {columns} FROM votes").fetchnumpy()
        L = np.stack([data[f"lf{j}"] for j in range(m)], axis=1).astype(np.int64)
        model = LabelModel(cardinality=k, verbose=False)
        model.fit(L, n_epochs=EPOCHS, seed=0, progress_bar=False)
        probs = model.predict_proba(L)
        _write_labels(con, "snorkel_labels", data["id"], probs)
        times.append(time.perf_counter() - started)
        learned = [float(a) for a in model.get_weights()]
        del data, L, model, probs
    con.close()
    return {"first": times[0], "seconds": min(times), "learned": learned, "peak_mb": peak_mb(), "base_mb": base}


def _write_labels(con: Any, table: str, ids: Any, probs: Any) -> None:
    """(id, label, probs) into DuckDB; a tie gives no label."""
    import numpy as np
    import pyarrow as pa

    label = probs.argmax(axis=1)
    tied = np.isclose(probs, probs.max(axis=1, keepdims=True)).sum(axis=1) > 1
    k = probs.shape[1]
    table_data = pa.table({
        "id": pa.array(ids),
        "label": pa.array(label, mask=tied),
        "probs": pa.ListArray.from_arrays(pa.array(np.arange(0, len(ids) * k + 1, k, dtype=np.int32)),
                                          pa.array(probs.ravel())),
    })
    con.register("labels_arrow", table_data)
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM labels_arrow")
    con.unregister("labels_arrow")


def mallard_sms(db: str, replicas: int) -> dict[str, Any]:
    import pandas  # noqa: F401  (as above)

    import engine
    from tests.labeling_sms import create_sms_lfs

    con = engine.connect(db, autocommit=True, progress="off")
    names = ", ".join(create_sms_lfs(con))
    base = rss_mb()
    started = time.perf_counter()
    con.execute(f"LABEL sms USING {names} WITH (classes = ['ham', 'spam']) INTO OR REPLACE mallard_sms")
    seconds = time.perf_counter() - started
    apply_s = con.execute("SELECT apply_seconds FROM mallard.label_runs ORDER BY run_id DESC LIMIT 1").fetchone()[0]
    coverage = [r[2] for r in con.execute("SHOW LABEL ANALYSIS FOR mallard_sms").fetchall()]
    con.execute(f"CREATE OR REPLACE TABLE sms_big AS SELECT row_number() OVER () AS id, text FROM sms, range({replicas})")
    con.execute(f"LABEL sms_big USING {names} WITH (classes = ['ham', 'spam']) INTO OR REPLACE mallard_sms_big")
    apply_big = con.execute("SELECT apply_seconds FROM mallard.label_runs ORDER BY run_id DESC LIMIT 1").fetchone()[0]
    con.close()
    return {"seconds": seconds, "apply_s": apply_s, "apply_big_s": apply_big, "coverage": coverage,
            "peak_mb": peak_mb(), "base_mb": base}


def snorkel_sms(db: str, replicas: int) -> dict[str, Any]:
    import duckdb
    import numpy as np
    import torch
    from snorkel.labeling import LabelingFunction, PandasLFApplier
    from snorkel.labeling.model import LabelModel

    from tests.labeling_sms import SMS_LFS, sms_lf_python

    torch.set_num_threads(1)
    codes = {"ham": 0, "spam": 1, None: -1}

    def snorkel_lf(name: str, vote: str, kind: str, argument: Any) -> LabelingFunction:
        fn = sms_lf_python(vote, kind, argument)
        return LabelingFunction(name, f=lambda x, fn=fn: codes[fn(x.text)])

    lfs = [snorkel_lf(*spec) for spec in SMS_LFS]
    con = duckdb.connect(db)
    frame = con.execute("SELECT id, text FROM sms ORDER BY id").fetch_df()
    big = frame.loc[frame.index.repeat(replicas)].reset_index(drop=True)
    base = rss_mb()
    started = time.perf_counter()
    L = PandasLFApplier(lfs).apply(frame, progress_bar=False)
    applied = time.perf_counter()
    model = LabelModel(cardinality=2, verbose=False)
    model.fit(L, n_epochs=EPOCHS, seed=0, progress_bar=False)
    _write_labels(con, "snorkel_sms", frame["id"].to_numpy(), model.predict_proba(L))
    seconds = time.perf_counter() - started
    truth_spam = con.execute("SELECT avg((truth = 'spam')::INT) FROM sms").fetchall()[0][0]
    told = LabelModel(cardinality=2, verbose=False)
    told.fit(L, n_epochs=EPOCHS, seed=0, progress_bar=False, class_balance=np.array([1 - truth_spam, truth_spam]))
    _write_labels(con, "snorkel_sms_told", frame["id"].to_numpy(), told.predict_proba(L))
    big_started = time.perf_counter()
    PandasLFApplier(lfs).apply(big, progress_bar=False)
    apply_big = time.perf_counter() - big_started
    con.close()
    return {"seconds": seconds, "apply_s": applied - started, "apply_big_s": apply_big,
            "coverage": [float(c) for c in (L != -1).mean(axis=0)], "peak_mb": peak_mb(), "base_mb": base}


WORKERS = {"mallard_synthetic": mallard_synthetic, "snorkel_synthetic": snorkel_synthetic,
           "mallard_sms": mallard_sms, "snorkel_sms": snorkel_sms}


def run_worker(name: str, *args: Any) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", name, *[str(a) for a in args]]
    env = {**os.environ, "CI": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# The parent: data, accuracy, and the table of ratios --------------------------------------------------


def synthetic(sizes: list[int], lf_counts: list[int], ks: list[int], workdir: str) -> list[dict[str, Any]]:
    import duckdb
    import numpy as np
    import pyarrow as pa

    from engine.labeling.synthetic import synthetic_votes

    rows = []
    for m in lf_counts:
        for k in ks:
            for n in sizes:
                data = synthetic_votes(n=n, m=m, k=k, seed=n + 10 * m + k)
                db = os.path.join(workdir, f"synthetic_{n}_{m}_{k}.duckdb")
                setup = duckdb.connect(db)
                setup.register("votes_arrow", data.to_arrow())
                columns = ", ".join(f"lf{j} BIGINT" for j in range(m))
                setup.execute(f"CREATE TABLE votes (id BIGINT PRIMARY KEY, {columns})")  # a keyed label matrix
                setup.execute("INSERT INTO votes SELECT * FROM votes_arrow")
                setup.register("truth_arrow", pa.table({"id": np.arange(n), "y": data.truth.astype(np.int64)}))
                setup.execute("CREATE TABLE truth AS SELECT * FROM truth_arrow")
                setup.close()
                ours = run_worker("mallard_synthetic", db, m, k)
                theirs = run_worker("snorkel_synthetic", db, m, k)
                check = duckdb.connect(db, read_only=True)
                accuracy = {name: check.execute(f"SELECT avg(coalesce((l.label = t.y)::INT, 1.0 / {k})) FROM {name} l"
                                                " JOIN truth t USING (id)").fetchone()[0]
                            for name in ("mallard_labels", "snorkel_labels")}
                check.close()
                os.remove(db)
                empirical, generating = data.empirical_accuracies(), data.accuracy
                row = {"n": n, "m": m, "k": k, "mallard": ours, "snorkel": theirs, "accuracy": accuracy,
                       "learned_err": {who: float(np.abs(np.array(r["learned"]) - empirical).max())
                                       for who, r in (("mallard", ours), ("snorkel", theirs))},
                       "learned_err_generating": {who: float(np.abs(np.array(r["learned"]) - generating).max())
                                                  for who, r in (("mallard", ours), ("snorkel", theirs))}}
                rows.append(row)
                print_synthetic_row(row)
    return rows


def print_synthetic_row(row: dict[str, Any]) -> None:
    ours, theirs = row["mallard"], row["snorkel"]
    acc, err = row["accuracy"], row["learned_err"]
    print(f"n={row['n']:>8} m={row['m']:>2} k={row['k']} | first run: mallard {ours['first']:6.2f} s, snorkel "
          f"{theirs['first']:6.2f} s -> {theirs['first'] / ours['first']:5.1f}x | best of {REPEAT}: mallard "
          f"{ours['seconds']:6.2f} s (apply {ours['apply_s']:.2f} fit {ours['fit_s']:.2f} write {ours['write_s']:.2f}; "
          f"{ours['patterns']} patterns, {ours['iterations']} EM iterations), snorkel {theirs['seconds']:6.2f} s -> "
          f"{theirs['seconds'] / ours['seconds']:5.1f}x"
          f" | accuracy mallard {acc['mallard_labels']:.4f} snorkel {acc['snorkel_labels']:.4f} "
          f"(diff {100 * (acc['mallard_labels'] - acc['snorkel_labels']):+.2f} points)"
          f" | learned-accuracy max error vs sample truth mallard {err['mallard']:.4f} snorkel {err['snorkel']:.4f}"
          f" (vs generating: {row['learned_err_generating']['mallard']:.4f} / {row['learned_err_generating']['snorkel']:.4f})"
          f" | peak RSS mallard {ours['peak_mb']:.0f} MB snorkel {theirs['peak_mb']:.0f} MB -> "
          f"{ours['peak_mb'] / theirs['peak_mb']:.2f} (above the process after imports: {ours['peak_mb'] - ours['base_mb']:.0f}"
          f" / {theirs['peak_mb'] - theirs['base_mb']:.0f} MB -> "
          f"{(ours['peak_mb'] - ours['base_mb']) / (theirs['peak_mb'] - theirs['base_mb']):.2f})", flush=True)


def sms(replicas: int, workdir: str) -> None:
    import engine
    from tests.labeling_sms import load_sms

    db = os.path.join(workdir, "sms.duckdb")
    with engine.connect(db, progress="off") as con:
        load_sms(con, ROOT / "data" / "spam_collection.tsv")
    ours = run_worker("mallard_sms", db, replicas)
    theirs = run_worker("snorkel_sms", db, replicas)
    with engine.connect(db, read_only=True) as con:
        for table, who in (("mallard_sms", "mallard label model"), ("snorkel_sms", "snorkel LabelModel (default)"),
                           ("snorkel_sms_told", "snorkel LabelModel told the true class balance")):
            accuracy, tp, fp, fn = con.execute(
                "SELECT avg(CASE WHEN l.label IS NULL THEN 0.5 ELSE ((l.label::VARCHAR IN ('spam', '1')) ="
                f" (s.truth = 'spam'))::DOUBLE END), sum((l.label::VARCHAR IN ('spam', '1') AND s.truth = 'spam')::INT),"
                f" sum((l.label::VARCHAR IN ('spam', '1') AND s.truth = 'ham')::INT),"
                f" sum((coalesce(l.label::VARCHAR NOT IN ('spam', '1'), TRUE) AND s.truth = 'spam')::INT)"
                f" FROM {table} l JOIN sms s USING (id)").fetchone()
            print(f"SMS {who:48s} accuracy {accuracy:.4f}  spam F1 {2 * tp / (2 * tp + fp + fn):.4f}")
    same = max(abs(a - b) for a, b in zip(ours["coverage"], theirs["coverage"]))
    print(f"SMS functions agree (max coverage difference SQL vs Python: {same:.4f})")
    print(f"SMS apply 4,862 rows: mallard {ours['apply_s']:.3f} s, PandasLFApplier {theirs['apply_s']:.3f} s -> "
          f"{theirs['apply_s'] / ours['apply_s']:.0f}x")
    rows = 4862 * replicas
    print(f"SMS apply {rows:,} rows: mallard {ours['apply_big_s']:.3f} s ({rows / ours['apply_big_s']:,.0f} rows/s), "
          f"PandasLFApplier {theirs['apply_big_s']:.2f} s ({rows / theirs['apply_big_s']:,.0f} rows/s) -> "
          f"{theirs['apply_big_s'] / ours['apply_big_s']:.0f}x")
    print(f"SMS end to end (apply, fit, write): mallard {ours['seconds']:.3f} s, snorkel {theirs['seconds']:.3f} s -> "
          f"{theirs['seconds'] / ours['seconds']:.0f}x")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        name, args = sys.argv[2], sys.argv[3:]
        print(json.dumps(WORKERS[name](args[0], *[int(a) for a in args[1:]])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--lfs", default="10,30")
    parser.add_argument("--classes", default="2,3")
    parser.add_argument("--sms-replicas", type=int, default=20)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; Snorkel with torch.set_num_threads(1), {EPOCHS} epochs; "
          "DuckDB with its default threads", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_labeling_") as workdir:  # removed at the end, whatever happens
        sms(args.sms_replicas, workdir)
        synthetic([int(s) for s in args.sizes.split(",")], [int(s) for s in args.lfs.split(",")],
                  [int(s) for s in args.classes.split(",")], workdir)


if __name__ == "__main__":
    main()
